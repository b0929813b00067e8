"""The metrics move where the work happens: hub fan-out, slow consumers, monitor reads and commits, dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from sheetstream.api import create_api_app
from sheetstream.auth.tokens import ANONYMOUS
from sheetstream.buses.base import Bus, Delivery
from sheetstream.buses.memory import MemoryBus
from sheetstream.core.messages import CLOSE_SLOW_CONSUMER, encode_change_frame
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab
from sheetstream.errors import SourceError, VersionConflict
from sheetstream.gateways.local import Hub
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.monitor import Monitor
from sheetstream.runtime.settings import Settings
from sheetstream.sources.base import Fetched, Source
from sheetstream.stores.base import NewSource, Retention
from sheetstream.stores.memory import MemoryStore
from tests.gateway.peers import RecordingPeer as FakePeer
from tests.observability.samples import parse, sample, value

NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    store = MemoryStore()
    await store.open()
    yield store
    await store.close()


def _change(source: str, epoch: str, version: int) -> ChangeSet:
    return ChangeSet(source, epoch, version, NOW, (SetCell(tab=0, row=0, col=0, a1="A1", old="", new=version),))


async def test_hub_counts_connections_subscriptions_deliveries_errors_and_slow_consumers(store: MemoryStore) -> None:
    record = await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=NOW)
    hub = Hub(store, Settings(anonymous=True))
    conns, subs = value("sheetstream_connections_open"), value("sheetstream_subscriptions_open")
    deliveries, slow = value("sheetstream_deliveries_total"), value("sheetstream_slow_consumer_closes_total")
    bad_json = value("sheetstream_protocol_errors_total", code="bad_json")
    snapshot_reads = value("sheetstream_store_read_seconds_count", read="snapshot")

    peers = [hub.attach_peer(FakePeer, ANONYMOUS) for _ in range(3)]
    assert value("sheetstream_connections_open") == conns + 3
    for peer in peers:
        hub.receive(peer.id, orjson.dumps({"type": "subscribe", "id": 1, "source": record.id}).decode())
    await eventually(lambda: all(len(p.sent) == 2 for p in peers))  # subscribed + snapshot
    assert value("sheetstream_subscriptions_open") == subs + 3
    assert value("sheetstream_store_read_seconds_count", read="snapshot") == snapshot_reads + 3
    assert value("sheetstream_deliveries_total") == deliveries + 6

    hub.receive(peers[0].id, "{not json")
    assert peers[0].sent[-1]["code"] == "bad_json"
    assert value("sheetstream_protocol_errors_total", code="bad_json") == bad_json + 1

    first = _change(record.id, record.epoch, 1)
    await hub.publish(first, encode_change_frame(first))
    assert value("sheetstream_deliveries_total") == deliveries + 6 + 1 + 3

    peers[1].full = True
    second = _change(record.id, record.epoch, 2)
    await hub.publish(second, encode_change_frame(second))
    assert peers[1].close_code == CLOSE_SLOW_CONSUMER
    assert value("sheetstream_slow_consumer_closes_total") == slow + 1
    assert value("sheetstream_deliveries_total") == deliveries + 6 + 1 + 3 + 2  # not the refused one
    assert value("sheetstream_subscriptions_open") == subs + 2

    closed_slow = value("sheetstream_connections_closed_total", code=str(CLOSE_SLOW_CONSUMER))
    closed_by_client = value("sheetstream_connections_closed_total", code="client")
    for peer in peers:
        hub.detach(peer.id)
    assert value("sheetstream_connections_open") == conns
    assert value("sheetstream_connections_closed_total", code=str(CLOSE_SLOW_CONSUMER)) == closed_slow + 1
    assert value("sheetstream_connections_closed_total", code="client") == closed_by_client + 2
    assert value("sheetstream_subscriptions_open") == subs


class ScriptedSource(Source):
    """A source whose next answers the test sets: snapshots, None (unchanged) or exceptions."""

    kind = "scripted"

    def __init__(self, answers: list[Snapshot | Exception | None]) -> None:
        super().__init__({})
        self.answers = answers

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return Fetched(answer)


class RefusingStore(MemoryStore):
    """A store whose first commit is refused, as when another writer moved the head."""

    refusals = 1

    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        if self.refusals:
            self.refusals -= 1
            raise VersionConflict(changeset.source, changeset.version, changeset.version)
        await super().commit(snapshot, changeset, retention=retention)


class DownBus(MemoryBus):
    """A bus that cannot publish."""

    async def publish(self, changeset: ChangeSet) -> None:
        raise ConnectionError("bus down")


async def test_monitor_counts_reads_by_outcome_commits_ops_refusals_and_publish_failures() -> None:
    store, bus = RefusingStore(), DownBus()
    await store.open()
    await bus.open()
    rows = Snapshot((Tab(0, "Sheet1", (("a", "b"), ("1", "2"))),))
    source = ScriptedSource([SourceError("flaky"), rows, rows, None])
    before = {
        "error": value("sheetstream_source_reads_total", kind="scripted", outcome="error"),
        "ok": value("sheetstream_source_reads_total", kind="scripted", outcome="ok"),
        "not_modified": value("sheetstream_source_reads_total", kind="scripted", outcome="not_modified"),
        "latency": value("sheetstream_source_read_seconds_count", kind="scripted"),
        "detected": value("sheetstream_changes_detected_total", kind="scripted"),
        "committed": value("sheetstream_changes_committed_total", kind="scripted"),
        "ops": value("sheetstream_change_ops_count"),
        "refusals": value("sheetstream_commit_refusals_total"),
        "publish": value("sheetstream_publish_failures_total"),
    }
    await store.create_source(NewSource(kind="scripted", config={}, poll_interval_s=0.01), now=NOW)
    monitor = Monitor(
        store, bus, retention=Retention(), backoff_max_s=0.01, clock=lambda: NOW, source_factory=lambda k, c: source
    )
    await monitor.start()
    try:
        await eventually(lambda: value("sheetstream_source_reads_total", kind="scripted", outcome="not_modified") > before["not_modified"])
    finally:
        await monitor.stop()
        await bus.close()
        await store.close()
    # error, then a change refused by the fence, then the same change committed, then unchanged
    assert value("sheetstream_source_reads_total", kind="scripted", outcome="error") == before["error"] + 1
    assert value("sheetstream_source_reads_total", kind="scripted", outcome="ok") == before["ok"] + 2
    assert value("sheetstream_source_read_seconds_count", kind="scripted") >= before["latency"] + 4
    assert value("sheetstream_changes_detected_total", kind="scripted") == before["detected"] + 2
    assert value("sheetstream_changes_committed_total", kind="scripted") == before["committed"] + 1
    assert value("sheetstream_change_ops_count") == before["ops"] + 1
    assert value("sheetstream_commit_refusals_total") == before["refusals"] + 1
    assert value("sheetstream_publish_failures_total") == before["publish"] + 1


class ScriptedBus(Bus):
    """A bus that hands out the given change sets, then fails, as a lost Redis connection does."""

    def __init__(self, changesets: list[ChangeSet]) -> None:
        self.changesets = changesets

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, changeset: ChangeSet) -> None:
        self.changesets.append(changeset)

    async def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        for changeset in self.changesets:
            yield Delivery(changeset)


@dataclass
class Sink:
    """A hub stand-in recording what was dispatched."""

    versions: list[int] = field(default_factory=list)

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        self.versions.append(changeset.version)


async def test_dispatcher_counts_consumed_messages_and_gap_fills(store: MemoryStore) -> None:
    record = await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=NOW)
    changes = [_change(record.id, record.epoch, v) for v in (1, 2, 3)]
    for change in changes:
        await store.commit(Snapshot(), change, retention=Retention())
    consumed, fills = value("sheetstream_bus_messages_consumed_total"), value("sheetstream_dispatcher_gap_fills_total")
    sink = Sink()
    dispatcher = Dispatcher(ScriptedBus(changes[:1]), sink, store=store)
    await dispatcher.run()  # the bus "closes" after one message: versions 2 and 3 were lost with it
    assert value("sheetstream_bus_messages_consumed_total") == consumed + 1
    assert await dispatcher.resync() == 2
    assert sink.versions == [1, 2, 3]
    assert value("sheetstream_dispatcher_gap_fills_total") == fills + 2


async def test_metrics_endpoint_serves_the_registry_and_stays_out_of_the_openapi_document() -> None:
    app = create_api_app(None)
    assert "/metrics" not in app.openapi()["paths"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = parse(response.text)
    assert sample(samples, "sheetstream_connections_open") >= 0
    assert ("sheetstream_commit_refusals_total", frozenset()) in samples
    assert all(name.startswith(("sheetstream_", "process_", "python_")) for name, _ in samples)


async def test_every_role_serves_metrics() -> None:
    from sheetstream.runtime.roles import build_app
    from sheetstream.runtime.services import Services
    from tests.api.conftest import RecordingControl

    services = Services(
        settings=Settings(), store=MemoryStore(), bus=MemoryBus(), monitor=RecordingControl(), retention=Retention()
    )
    for roles in ({"monitor"}, {"gateway"}, {"api"}):
        app = build_app(services, roles)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            response = await http.get("/metrics")
        assert response.status_code == 200, roles
        assert "# HELP sheetstream_connections_open " in response.text
