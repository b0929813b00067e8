"""Dead letters end to end: a poison change set on the memory bus and on the real Redis bus, seen by a real
`websockets` client and replayed over the REST API of a real uvicorn server (in this process, so the fault can be
put in the seam between the dispatcher and the hub).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from sheetstream.buses.base import Bus
from sheetstream.buses.redis import RedisBus
from sheetstream.buses.registry import open_bus
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab
from sheetstream.gateways.local import Hub
from sheetstream.runtime.dead_letters import DeadLetters
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.server import create_app
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource, Retention
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import RecordingControl
from tests.buses.redis_keys import drop_redis_keys
from tests.contracts.conftest import redis_bus

TRIES = 3
POISON = 3
WAIT_S = 15.0
NOW = datetime(2026, 3, 1, tzinfo=UTC)


class FaultyHub:
    """Stands between the dispatcher and the hub: refuses version `POISON` of `source` while `broken`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.source = ""
        self.broken = True
        self.tries = 0

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        if changeset.source == self.source and changeset.version == POISON:
            self.tries += 1
            if self.broken:
                raise ValueError(f"version {POISON} cannot be handled")
        await self.hub.publish(changeset, frame)


@dataclass
class Client:
    """A real `websockets` client subscribed to some sources, recording every message."""

    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)

    async def read(self) -> None:
        async for frame in self.ws:
            self.messages.append(orjson.loads(frame))

    def versions(self, source: str) -> list[int]:
        return [m["version"] for m in self.messages if m.get("type") == "change" and m["source"] == source]


@dataclass
class Deployment:
    store: MemoryStore
    bus: Bus
    fault: FaultyHub
    http: httpx.AsyncClient
    ws_url: str
    values: dict[str, int] = field(default_factory=dict)

    async def source(self) -> str:
        record = await self.store.create_source(NewSource(kind="file", config={"path": "x.csv"}), now=NOW)
        return record.id

    async def change(self, source: str) -> int:
        """Commit the next version of `source` and publish it, as the monitor does; the version."""
        head = await self.store.get_source(source)
        version = head.version + 1
        cs = ChangeSet(
            source, head.epoch, version, NOW, (SetCell(1, 0, 0, "A1", str(version - 1), str(version)),)
        )
        await self.store.commit(Snapshot((Tab(1, "Sheet1", ((str(version),),)),)), cs, retention=Retention())
        await self.bus.publish(cs)
        return version


async def until(condition: Any, what: str) -> None:
    """Poll an async or plain condition until it holds, failing after WAIT_S."""
    async with asyncio.timeout(WAIT_S):
        while True:
            value = condition()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(what)  # pragma: no cover  (the timeout raises first)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """An open bus of each kind: the in-process one, and Redis on 127.0.0.1:6379 with a fresh prefix."""
    url = "memory://" if request.param == "memory" else redis_bus(tmp_path)
    opened = open_bus(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
        await drop_redis_keys(opened)


@pytest.fixture
async def deployment(bus: Bus) -> AsyncIterator[Deployment]:
    """Store, bus, hub behind the fault, dispatcher with dead letters, REST API and `/v1/ws` on a real port."""
    settings = Settings(anonymous=True, max_deliveries=TRIES)
    store = MemoryStore()
    hub = Hub(store, settings)
    fault = FaultyHub(hub)
    services = Services(settings, store, bus, RecordingControl(), Retention(), hub=hub)
    dead_letters = DeadLetters.of(services)
    bus.dead_letter_sink = dead_letters.bus_gave_up
    dispatcher = Dispatcher(
        bus,
        fault,
        consumer=f"node-{uuid.uuid4().hex[:8]}",
        store=store,
        dead_letters=dead_letters,
        max_deliveries=TRIES,
    )
    dispatching = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)  # the dispatcher's consumer exists: it sees everything published from here on
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(services, hub),
            host="127.0.0.1",
            port=0,
            ws="websockets-sansio",
            lifespan="off",
            log_level="warning",
        )
    )
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started or serving.done(), "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield Deployment(store, bus, fault, http, f"ws://127.0.0.1:{port}/v1/ws")
    await hub.close()
    server.should_exit = True
    await serving
    dispatching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await dispatching


@contextlib.asynccontextmanager
async def subscribed(url: str, *sources: str) -> AsyncIterator[Client]:
    async with connect(url) as ws:
        client = Client(ws)
        reading = asyncio.create_task(client.read())
        for n, source in enumerate(sources):
            await ws.send(orjson.dumps({"type": "subscribe", "id": f"s{n}", "source": source}).decode())
        await until(
            lambda: len([m for m in client.messages if m.get("type") == "subscribed"]) == len(sources),
            "the subscriptions",
        )
        try:
            yield client
        finally:
            await ws.close()
            await asyncio.gather(reading, return_exceptions=True)


async def letters(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get("/v1/dead-letters")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_poison_change_set_is_set_aside_after_n_tries_and_replayed_once_fixed(
    deployment: Deployment,
) -> None:
    d = deployment
    a, b = await d.source(), await d.source()
    d.fault.source = a
    async with subscribed(d.ws_url, a, b) as client:
        for _ in range(POISON):
            await d.change(a)  # versions 1, 2 and the poison 3
        await until(lambda: letters(d.http), "the dead letter")
        [letter] = await letters(d.http)
        assert d.fault.tries == TRIES
        assert (letter["kind"], letter["source"], letter["attempts"]) == ("changeset", a, TRIES)
        assert letter["error"] == f"ValueError: version {POISON} cannot be handled"
        shown = (await d.http.get(f"/v1/dead-letters/{letter['id']}")).json()
        assert (shown["payload"]["source"], shown["payload"]["version"]) == (a, POISON)

        # The dispatcher moved on: the other source's changes reach the client while the letter waits.
        for _ in range(2):
            await d.change(b)
        await until(lambda: client.versions(b) == [1, 2], "the other source's changes")
        assert client.versions(a) == [1, 2]
        if isinstance(d.bus, RedisBus):  # acked, and set aside once: in the store, not in Redis's own stream
            group = next(iter(await d.bus.client.xinfo_groups(d.bus.streams[0])))
            assert group["pending"] == 0
            assert await d.bus.client.xlen(d.bus.dead_letter_stream) == 0

        d.fault.broken = False
        replay = await d.http.post(f"/v1/dead-letters/{letter['id']}/replay")
        assert (replay.status_code, replay.json()) == (200, {"replayed": True})
        assert (await d.http.get(f"/v1/dead-letters/{letter['id']}")).status_code == 404
        await until(lambda: client.versions(a) == [1, 2, 3], "the replayed version")

        await d.change(a)
        await until(lambda: client.versions(a)[-1:] == [4], "the next version")
        assert client.versions(a) == [1, 2, 3, 4]
        assert client.versions(b) == [1, 2]
        assert d.fault.tries == TRIES + 1
        assert await letters(d.http) == []
        assert not [m for m in client.messages if m.get("type") == "error"]


async def test_a_replayed_version_the_client_already_has_is_not_sent_twice(deployment: Deployment) -> None:
    d = deployment
    a = await d.source()
    d.fault.source = a
    async with subscribed(d.ws_url, a) as client:
        for _ in range(POISON):
            await d.change(a)
        await until(lambda: letters(d.http), "the dead letter")
        await d.change(a)  # version 4 shows the gap: the client reads version 3 from the store
        await until(lambda: client.versions(a) == [1, 2, 3, 4], "the gap filled from the store")
        [letter] = await letters(d.http)
        d.fault.broken = False
        assert (await d.http.post(f"/v1/dead-letters/{letter['id']}/replay")).status_code == 200
        await until(lambda: d.fault.tries == TRIES + 1, "the replay to reach the hub")
        await d.change(a)
        await until(lambda: client.versions(a)[-1:] == [5], "the next version")
        assert client.versions(a) == [1, 2, 3, 4, 5]


async def test_an_undecodable_redis_entry_reaches_the_store_once(deployment: Deployment) -> None:
    d = deployment
    if not isinstance(d.bus, RedisBus):
        pytest.skip("only a bus with an encoding can carry an undecodable entry")
    entry = await d.bus.client.xadd(d.bus.streams[0], {b"cs": b"{not json"})
    await until(lambda: letters(d.http), "the dead letter")
    [letter] = await letters(d.http)
    assert (letter["kind"], letter["source"], letter["attempts"]) == ("changeset", None, 1)
    assert letter["error"].startswith("cannot decode: invalid JSON")
    shown = (await d.http.get(f"/v1/dead-letters/{letter['id']}")).json()
    assert shown["payload"] == {"entry": f"{d.bus.streams[0]}/{entry.decode()}", "data": "{not json"}
    assert await d.bus.client.xlen(d.bus.dead_letter_stream) == 0
    failed = await d.http.post(f"/v1/dead-letters/{letter['id']}/replay")
    assert failed.status_code == 409 and failed.json()["error"]["code"] == "replay_failed"
    assert (await d.http.get(f"/v1/dead-letters/{letter['id']}")).json()["attempts"] == 2
