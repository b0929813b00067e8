"""A gateway that misses bus messages still delivers every version: the hub and the dispatcher read the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn

from sheetstream.buses.base import Bus, Delivery
from sheetstream.buses.registry import open_bus
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab
from sheetstream.gateways.registry import Holdings
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.roles import NodeOptions, hub_holdings, running_roles
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource, Retention, Store
from sheetstream.stores.memory import MemoryStore
from tests.buses.redis_keys import drop_prefix
from tests.contracts.conftest import require_service
from tests.e2e.harness import Subscriber
from tests.scaleout.harness import until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def commit_next(store: Store, source: str) -> ChangeSet:
    """Commit the next version of `source` (cell A1 becomes its version number)."""
    head = await store.get_source(source)
    version = head.version + 1
    cs = ChangeSet(source, head.epoch, version, NOW, (SetCell(0, 0, 0, "A1", str(version - 1), str(version)),))
    await store.commit(Snapshot((Tab(0, "Sheet1", ((str(version),),)),)), cs, retention=Retention())
    return cs


async def test_a_gateway_on_redis_fills_a_missed_message_from_the_store(tmp_path: Path) -> None:
    redis_url = require_service("SHEETSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"sheetstream-test-{uuid.uuid4().hex}"
    bus_url = f"{redis_url}?stream_prefix={prefix}"
    settings = Settings(
        store=f"sqlite:///{tmp_path / 'store.db'}", bus=bus_url, port=0, log_level="warning", anonymous=True
    )
    publisher = open_bus(bus_url)
    await publisher.open()
    try:
        async with running_roles(settings, ["gateway"], NodeOptions(node_id="gw-gap")) as (app, services):
            server = uvicorn.Server(uvicorn.Config(app, port=0, lifespan="off", log_level="warning"))
            serving = asyncio.create_task(server.serve())
            try:
                await until(lambda: server.started, "uvicorn to start")
                port = server.servers[0].sockets[0].getsockname()[1]
                record = await services.store.create_source(NewSource("file", {"path": "x.csv"}), now=NOW)
                await publisher.publish(await commit_next(services.store, record.id))
                sub = await Subscriber(f"ws://127.0.0.1:{port}/v1/ws", record.id).subscribe()
                await sub.wait_version(1)
                assert hub_holdings(services.hub) == Holdings(1, {record.id: 1})  # what the registry reports
                await commit_next(services.store, record.id)  # version 2: its news is lost
                await publisher.publish(await commit_next(services.store, record.id))
                await sub.wait_version(3)
                await sub.close()
            finally:
                server.should_exit = True
                await serving
    finally:
        await publisher.close()
        await drop_prefix(redis_url, prefix)
    base = sub.of_type("snapshot")[0]["version"]
    assert sub.versions() == list(range(base + 1, 4))
    assert [c["ops"][0]["new"] for c in sub.of_type("change")] == [str(v) for v in range(base + 1, 4)]


class RecordingHub:
    def __init__(self) -> None:
        self.versions: list[int] = []

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        self.versions.append(changeset.version)


class BreakingBus(Bus):
    """Delivers `first`, then fails (as a lost Redis); later consumes wait until the bus closes."""

    def __init__(self, first: ChangeSet) -> None:
        self.first = first
        self.consumes = 0
        self.closed = asyncio.Event()

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        self.closed.set()

    async def publish(self, changeset: ChangeSet) -> None:
        raise ConnectionError("bus down")

    def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        self.consumes += 1
        return self._iterate(self.consumes)

    async def _iterate(self, attempt: int) -> AsyncIterator[Delivery]:
        if attempt == 1:
            yield Delivery(self.first)
            raise ConnectionError("connection lost")
        await self.closed.wait()


@pytest.mark.parametrize("watched", [True, False])
async def test_after_a_bus_failure_the_dispatcher_sends_what_the_store_has_since(watched: bool) -> None:
    store = MemoryStore()
    source = (await store.create_source(NewSource("file", {"path": "x.csv"}), now=NOW)).id
    first = await commit_next(store, source)
    bus = BreakingBus(first)
    hub = RecordingHub()
    dispatcher = Dispatcher(bus, hub, store=store, is_watched=lambda _source: watched)
    dispatcher.retry_initial_s = 0.0
    for _ in range(2):  # committed while the bus is down: their news never comes
        await commit_next(store, source)
    running = asyncio.create_task(dispatcher.run())
    try:
        await until(lambda: bus.consumes >= 2, "the second consume", 5.0)
    finally:
        await bus.close()
        await running
    assert hub.versions == ([1, 2, 3] if watched else [1])
    assert dispatcher.heads[source] == (first.epoch, 3 if watched else 1)
