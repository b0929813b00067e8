"""Structured logs: a real server writes one JSON object per line, and log lines carry their source and connection."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket
from structlog.contextvars import merge_contextvars

from sheetstream.core.model import VersionedSnapshot
from sheetstream.gateways.local import Hub
from sheetstream.runtime.monitor import Monitor
from sheetstream.runtime.settings import Settings
from sheetstream.sources.base import Fetched, Source
from sheetstream.stores.base import NewSource, Retention
from sheetstream.stores.memory import MemoryStore
from tests.e2e.harness import ServerProcess, wait_for
from tests.observability.test_metrics_inprocess import NOW, eventually

adapter_log = structlog.get_logger("tests.adapter")


def test_a_real_server_writes_json_lines_with_level_event_and_timestamp(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--log-level", "info").start()
    try:
        broken = server.add_source("file", {"path": str(tmp_path / "missing.csv")}, poll_interval_s=30)["id"]
        wait_for(lambda: server.source(broken)["status"]["state"] == "error", what="the broken source's error")
    finally:
        server.stop()  # SIGTERM: the shutdown is logged too
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]  # every line, uvicorn's included
    for record in records:
        assert {"level", "event", "timestamp"} <= record.keys(), record
        assert record["level"] in ("debug", "info", "warning", "error", "critical")
        assert datetime.fromisoformat(record["timestamp"]).utcoffset() is not None
    failed = [r for r in records if r["event"] == "source read failed"]
    assert failed and all(r["source"] == broken for r in failed)
    assert "missing.csv" in failed[0]["error"]
    assert any(r.get("logger", "").startswith("uvicorn") for r in records)  # the standard library's records too
    assert any(r["event"] == "serving" for r in records)


class ChattySource(Source):
    """A source that logs, as adapters do, without naming the source it belongs to."""

    kind = "chatty"

    async def fetch(self, previous: Any) -> Fetched:
        adapter_log.warning("adapter noticed something")
        return Fetched(None)


async def test_log_lines_of_a_watch_carry_its_source_id() -> None:
    store = MemoryStore()
    await store.open()
    record = await store.create_source(NewSource(kind="chatty", config={}, poll_interval_s=30), now=NOW)
    monitor = Monitor(store, None, retention=Retention(), source_factory=lambda k, c: ChattySource(c))  # type: ignore[arg-type]
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        await monitor.start()
        try:
            await eventually(lambda: any(e["event"] == "adapter noticed something" for e in logs))
        finally:
            await monitor.stop()
            await store.close()
    noticed = next(e for e in logs if e["event"] == "adapter noticed something")
    assert noticed["source"] == record.id
    assert "source" not in structlog.contextvars.get_contextvars()  # bound in the watch's task only


class ChattyStore(MemoryStore):
    """A store that logs during a subscription's read without naming the connection."""

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        adapter_log.info("store read", source=source_id)
        return await super().snapshot(source_id)


async def _one_connection(hub: Hub, source: str) -> None:
    """Drive `hub.endpoint` as an ASGI server would: connect, subscribe, read the answer, disconnect."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "websocket", "path": "/v1/ws", "headers": [], "query_string": b"", "subprotocols": []}
    await inbox.put({"type": "websocket.connect"})
    endpoint = asyncio.create_task(hub.endpoint(WebSocket(scope, inbox.get, outbox.put)))
    assert (await outbox.get())["type"] == "websocket.accept"
    subscribe = orjson.dumps({"type": "subscribe", "id": 1, "source": source}).decode()
    await inbox.put({"type": "websocket.receive", "text": subscribe})
    assert orjson.loads((await outbox.get())["text"])["type"] == "subscribed"
    await inbox.put({"type": "websocket.disconnect", "code": 1000})
    await endpoint


async def test_log_lines_during_a_websocket_connection_carry_its_connection_id() -> None:
    store = ChattyStore()
    await store.open()
    record = await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=NOW)
    hub = Hub(store, Settings(anonymous=True))
    with structlog.testing.capture_logs(processors=[merge_contextvars]) as logs:
        for _ in range(2):
            await _one_connection(hub, record.id)
    reads = [e for e in logs if e["event"] == "store read"]
    assert [e["connection"] for e in reads] == ["c1", "c2"]
    assert "connection" not in structlog.contextvars.get_contextvars()  # bound in the connection's task only
