"""Source leases: several monitors on one store (memory, or one SQLite file opened by each) share the sources.

Time is an injected clock the tests move; lease rounds are run by hand (`Monitor.rebalance`) except in the test of
the background loop, so each step is deterministic. Sources are in-memory sheets every monitor reads alike.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sheetstream.buses.memory import MemoryBus
from sheetstream.core.model import ChangeSet, Snapshot, Tab
from sheetstream.errors import VersionConflict
from sheetstream.runtime.leases import MONITOR_PREFIX, SOURCE_PREFIX, SourceClaims, default_holder, owner
from sheetstream.runtime.monitor import Monitor
from sheetstream.sources.base import Fetched, Source
from sheetstream.stores.base import NewSource, Retention, Store
from sheetstream.stores.memory import MemoryStore
from sheetstream.stores.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL_S = 10.0


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SheetSource(Source):
    """Reads `sheets[name]`, answering "unchanged" while it is the snapshot it returned last time."""

    kind = "sheet"

    def __init__(self, config: dict[str, Any], sheets: dict[str, Snapshot]) -> None:
        super().__init__(config)
        self.sheets = sheets
        self.last: Snapshot | None = None
        self.gate: asyncio.Event | None = None  # when set by a test, reads wait until it opens

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        if self.gate is not None:
            await self.gate.wait()
        current = self.sheets.get(self.config["name"])
        if current is None or current is self.last:
            return Fetched(None)
        self.last = current
        return Fetched(current)


class RecordingBus(MemoryBus):
    """Keeps every change set published, by any monitor."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[ChangeSet] = []

    async def publish(self, changeset: ChangeSet) -> None:
        self.published.append(changeset)
        await super().publish(changeset)


class MortalLeases:
    """The lease calls of a store, except that once `dead`, release does nothing, as a killed process releases nothing."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dead = False

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        return await self.store.acquire_lease(name, holder, ttl_s, now=now)

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        return await self.store.acquire_leases(names, holder, ttl_s, now=now)

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        if not self.dead:
            await self.store.release_leases(names, holder)

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        return await self.store.lease_holders(prefix, now=now)


def sheet(name: str, n: int) -> Snapshot:
    return Snapshot((Tab(0, "Sheet1", (("source", name), ("edit", n))),))


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Cluster:
    """Monitors sharing one store and one bus, each with its own store instance when the backend allows."""

    def __init__(self, open_store: Callable[[], Awaitable[Store]]) -> None:
        self._open_store = open_store
        self.clock = FakeClock()
        self.bus = RecordingBus()
        self.sheets: dict[str, Snapshot] = {}
        self.sources: dict[str, list[SheetSource]] = {}  # source name -> every instance any monitor made
        self.monitors: list[Monitor] = []
        self.stores: list[Store] = []
        self.names: dict[str, str] = {}  # source id -> name

    async def store(self) -> Store:
        opened = await self._open_store()
        if opened not in self.stores:
            self.stores.append(opened)
        return opened

    def _source(self, kind: str, config: dict[str, Any]) -> Source:
        made = SheetSource(config, self.sheets)
        self.sources.setdefault(config["name"], []).append(made)
        return made

    async def monitor(
        self,
        holder: str,
        *,
        clock: Callable[[], datetime] | None = None,
        store: Store | None = None,
        renew_every_s: float = 3600.0,
    ) -> Monitor:
        """A started monitor (its lease rounds run every `renew_every_s`: by hand, in most tests)."""
        store = store or await self.store()
        clock = clock or self.clock
        claims = SourceClaims(
            MortalLeases(store), holder=holder, ttl_s=TTL_S, renew_every_s=renew_every_s, clock=clock
        )
        monitor = Monitor(
            store,
            self.bus,
            retention=Retention(),
            backoff_max_s=0.05,
            clock=clock,
            source_factory=self._source,
            claims=claims,
        )
        await monitor.start()
        self.monitors.append(monitor)
        return monitor

    async def add_sources(self, count: int) -> list[str]:
        store = self.stores[0] if self.stores else await self.store()
        ids = []
        for n in range(count):
            name = f"s{len(self.names) + n}"
            record = await store.create_source(
                NewSource(kind="sheet", config={"name": name}, poll_interval_s=0.02), now=T0
            )
            self.names[record.id] = name
            ids.append(record.id)
        return ids

    @staticmethod
    async def kill(monitor: Monitor) -> None:
        """Stop the monitor as a killed process stops: no more renewals, and no lease released."""
        assert monitor.claims is not None and isinstance(monitor.claims.store, MortalLeases)
        monitor.claims.store.dead = True
        await monitor.stop()

    async def settle(self, *monitors: Monitor) -> None:
        """Lease rounds until every monitor has seen the others and handed over what it should."""
        for _ in range(2):
            for monitor in monitors or self.monitors:
                await monitor.rebalance()

    def edit_all(self, n: int) -> None:
        for name in self.names.values():
            self.sheets[name] = sheet(name, n)

    async def versions(self) -> dict[str, int]:
        store = self.stores[0]
        return {source_id: (await store.get_source(source_id)).version for source_id in self.names}

    async def wait_for_version(self, version: int) -> None:
        async def reached() -> bool:
            return set((await self.versions()).values()) == {version}

        await eventually(reached)

    def published(self) -> Counter[tuple[str, int]]:
        return Counter((cs.source, cs.version) for cs in self.bus.published)

    async def close(self) -> None:
        for monitor in self.monitors:
            await monitor.stop()
        for store in self.stores:
            await store.close()


@pytest.fixture(params=["memory", "sqlite"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    shared = MemoryStore()

    async def open_store() -> Store:
        if request.param == "memory":
            return shared
        opened = SqliteStore(str(tmp_path / "shared.db"))  # one instance per monitor, as separate processes
        await opened.open()
        return opened

    made = Cluster(open_store)
    try:
        yield made
    finally:
        await made.close()


def watched(cluster: Cluster) -> Counter[str]:
    return Counter(source_id for monitor in cluster.monitors for source_id in monitor.watches)


# --- rendezvous hashing -----------------------------------------------------------------------------------------


def test_owners_spread_evenly_and_move_only_when_their_monitor_leaves_or_joins() -> None:
    ids = [f"source-{n}" for n in range(900)]
    three = ["m1", "m2", "m3"]
    before = {source_id: owner(source_id, three) for source_id in ids}
    shares = Counter(before.values())
    assert set(shares) == set(three) and all(240 <= count <= 360 for count in shares.values()), shares
    after_leave = {source_id: owner(source_id, ["m1", "m2"]) for source_id in ids}
    assert {s for s in ids if after_leave[s] != before[s]} == {s for s in ids if before[s] == "m3"}
    after_join = {source_id: owner(source_id, [*three, "m4"]) for source_id in ids}
    assert {after_join[s] for s in ids if after_join[s] != before[s]} == {"m4"}
    assert owner("x", reversed(three)) == owner("x", three)
    assert owner("x", []) is None


def test_holder_ids_name_the_host_and_process_and_differ() -> None:
    first, second = default_holder(), default_holder()
    assert first != second
    assert first.startswith(f"{socket.gethostname()}-{os.getpid()}-")


async def test_claims_take_free_sources_and_release_ones_no_longer_wanted() -> None:
    store, clock = MemoryStore(), FakeClock()
    claims = SourceClaims(store, holder="m1", ttl_s=TTL_S, clock=clock)
    assert claims.renew_every_s == pytest.approx(TTL_S / 3)
    assert await claims.renew(["a", "b"]) == {"a", "b"}
    assert claims.holds("a") and claims.monitors == ("m1",)
    assert await store.lease_holders(SOURCE_PREFIX, now=clock()) == {"source:a": "m1", "source:b": "m1"}
    assert await claims.renew(["a"]) == {"a"}
    assert await store.lease_holders(SOURCE_PREFIX, now=clock()) == {"source:a": "m1"}
    clock.advance(TTL_S)
    assert not claims.holds("a")  # by its own clock, a lease not renewed in time is gone
    await claims.release_all()
    assert await store.lease_holders("", now=T0) == {}
    with pytest.raises(ValueError, match="ttl"):
        SourceClaims(store, ttl_s=0)


# --- monitors sharing sources -----------------------------------------------------------------------------------


async def test_every_source_is_watched_by_exactly_one_monitor_and_they_spread(cluster: Cluster) -> None:
    ids = await cluster.add_sources(24)
    holders = ["m0", "m1", "m2"]
    monitors = [await cluster.monitor(holder) for holder in holders]
    await cluster.settle()
    assert watched(cluster) == Counter(ids)
    for holder, monitor in zip(holders, monitors, strict=True):
        assert set(monitor.watches) == {s for s in ids if owner(s, holders) == holder}
    assert sum(1 for monitor in monitors if monitor.watches) >= 2
    cluster.edit_all(1)
    await cluster.wait_for_version(1)
    await eventually(lambda: len(cluster.bus.published) >= len(ids))
    assert cluster.published() == Counter((source_id, 1) for source_id in ids)
    leases = await cluster.stores[0].lease_holders(SOURCE_PREFIX, now=cluster.clock())
    assert leases == {SOURCE_PREFIX + s: owner(s, holders) for s in ids}


async def test_a_dead_monitors_sources_move_after_expiry_and_versions_go_on(cluster: Cluster) -> None:
    ids = await cluster.add_sources(12)
    doomed = await cluster.monitor("a")
    survivor = await cluster.monitor("b")
    await cluster.settle()
    orphans = set(doomed.watches)
    assert orphans and set(survivor.watches) == set(ids) - orphans
    cluster.edit_all(1)
    await cluster.wait_for_version(1)

    await cluster.kill(doomed)
    cluster.clock.advance(TTL_S - 1)
    await survivor.rebalance()
    assert set(survivor.watches) == set(ids) - orphans  # a's leases are still live: hands off
    cluster.clock.advance(1)
    await survivor.rebalance()
    assert set(survivor.watches) == set(ids)
    assert survivor.claims is not None and survivor.claims.monitors == ("b",)

    cluster.edit_all(2)
    await cluster.wait_for_version(2)
    await eventually(lambda: len(cluster.bus.published) >= 2 * len(ids))
    assert cluster.published() == Counter((s, v) for s in ids for v in (1, 2))
    for source_id in ids:  # the log continues where the dead monitor left it
        since = await cluster.stores[0].changes_since(
            source_id, (await cluster.stores[0].snapshot(source_id)).epoch, 0
        )
        assert [cs.version for cs in since.changes] == [1, 2]


async def test_a_joining_monitor_gets_its_share_and_a_stopping_one_hands_over_at_once(
    cluster: Cluster,
) -> None:
    ids = await cluster.add_sources(12)
    first = await cluster.monitor("a")
    assert set(first.watches) == set(ids)
    second = await cluster.monitor("b")
    assert not second.watches  # every lease is still first's
    await cluster.settle()
    assert watched(cluster) == Counter(ids) and first.watches and second.watches
    await first.stop()  # a clean stop releases its leases and heartbeat
    assert await cluster.stores[0].lease_holders(MONITOR_PREFIX, now=cluster.clock()) == {"monitor:b": "b"}
    await second.rebalance()
    assert set(second.watches) == set(ids)


async def test_paused_deleted_and_edited_sources_follow_the_store(cluster: Cluster) -> None:
    paused, deleted, edited = await cluster.add_sources(3)
    monitor = await cluster.monitor("a")
    store = cluster.stores[0]
    first_watch = monitor.watches[edited]
    await store.update_source(paused, {"paused": True}, now=T0)
    await store.delete_source(deleted)
    await store.update_source(edited, {"poll_interval_s": 0.5}, now=T0)
    await monitor.rebalance()
    assert set(monitor.watches) == {edited}
    assert monitor.watches[edited] is not first_watch
    assert monitor.watches[edited].record.poll_interval_s == 0.5
    assert await store.lease_holders(SOURCE_PREFIX, now=cluster.clock()) == {f"source:{edited}": "a"}


async def test_a_lost_lease_stops_the_watch_before_it_commits(cluster: Cluster) -> None:
    (source_id,) = await cluster.add_sources(1)
    monitor = await cluster.monitor("a")
    watch = monitor.watches[source_id]
    cluster.clock.advance(TTL_S)  # a stalled: its lease expired and another process took it
    assert await cluster.stores[0].acquire_lease(
        SOURCE_PREFIX + source_id, "intruder", TTL_S, now=cluster.clock()
    )
    cluster.edit_all(1)
    await eventually(lambda: source_id not in monitor.watches)
    assert watch.reads >= 1 and watch.commits == 0
    assert await cluster.versions() == {source_id: 0}
    await monitor.rebalance()
    assert monitor.watches == {}
    assert cluster.bus.published == []


class RefusalsSeen:
    """A store as one monitor sees it, keeping the commits the version fence refused."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.refused: list[VersionConflict] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def commit(self, *args: Any, **kwargs: Any) -> None:
        try:
            await self.store.commit(*args, **kwargs)
        except VersionConflict as exc:
            self.refused.append(exc)
            raise


async def test_a_stale_monitor_that_still_commits_is_fenced_by_the_version() -> None:
    store = MemoryStore()

    async def same_store() -> Store:
        return store

    cluster = Cluster(same_store)
    try:
        (source_id,) = await cluster.add_sources(1)
        name = cluster.names[source_id]
        frozen = FakeClock()  # the stale monitor's clock stopped: it believes its lease is still good
        stale_view = RefusalsSeen(store)
        stale = await cluster.monitor("a", clock=frozen, store=stale_view)  # type: ignore[arg-type]
        cluster.edit_all(1)
        await cluster.wait_for_version(1)
        gate = asyncio.Event()
        (stale_source,) = cluster.sources[name]
        stale_source.gate = gate  # the stale monitor's next read waits until the new holder has committed
        cluster.clock.advance(TTL_S)
        fresh = await cluster.monitor("b")
        assert set(fresh.watches) == {source_id} and source_id in stale.watches
        cluster.edit_all(2)
        await cluster.wait_for_version(2)
        gate.set()
        await eventually(lambda: len(stale_view.refused) == 1)
        assert (stale_view.refused[0].version, stale_view.refused[0].head) == (2, 2)
        await stale.rebalance()  # its round finds the lease taken and stops the watch
        assert stale.watches == {}
        assert cluster.published() == Counter({(source_id, 1): 1, (source_id, 2): 1})
        assert [cs.at for cs in cluster.bus.published] == [T0, T0 + timedelta(seconds=TTL_S)]
    finally:
        await cluster.close()


async def rounds_pass(*monitors: Monitor) -> None:
    """Wait until each monitor has done one more lease round."""
    claims = [monitor.claims for monitor in monitors if monitor.claims is not None]
    start = [c.rounds for c in claims]
    await eventually(lambda: all(c.rounds > n for c, n in zip(claims, start, strict=True)))


async def test_the_background_rounds_renew_and_take_over_by_themselves(tmp_path: Path) -> None:
    async def open_store() -> Store:
        opened = SqliteStore(str(tmp_path / "shared.db"))
        await opened.open()
        return opened

    cluster = Cluster(open_store)
    try:
        ids = await cluster.add_sources(6)
        while {owner(source_id, ("a", "b")) for source_id in ids} != {"a", "b"}:
            ids += await cluster.add_sources(1)  # ids are random: make sure each monitor is owed a share
        doomed = await cluster.monitor("a", renew_every_s=0.02)
        survivor = await cluster.monitor("b", renew_every_s=0.02)
        await eventually(
            lambda: watched(cluster) == Counter(ids) and bool(doomed.watches and survivor.watches)
        )
        shares = {holder: set(m.watches) for holder, m in (("a", doomed), ("b", survivor))}
        for _ in range(int(TTL_S * 2)):  # two ttls pass; renewals keep every lease where it is
            cluster.clock.advance(1)
            await rounds_pass(doomed, survivor)
            assert {"a": set(doomed.watches), "b": set(survivor.watches)} == shares
        await cluster.kill(doomed)
        for _ in range(int(TTL_S)):
            cluster.clock.advance(1)
            await rounds_pass(survivor)
        assert set(survivor.watches) == set(ids)
        cluster.edit_all(1)
        await cluster.wait_for_version(1)
        assert cluster.published() == Counter((s, 1) for s in ids)
    finally:
        await cluster.close()
