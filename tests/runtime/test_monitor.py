"""The monitor against the memory store and bus, with an injected source whose answers the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from sheetstream.buses.memory import MemoryBus
from sheetstream.core.model import AddTab, ChangeSet, InsertRows, SetCell, Snapshot, Tab
from sheetstream.errors import SourceError, VersionConflict
from sheetstream.runtime import monitor as monitor_module
from sheetstream.runtime.monitor import INLINE_DIFF_ROWS, Backoff, Monitor
from sheetstream.sources.base import Fetched, Source
from sheetstream.stores.base import NewSource, Retention
from sheetstream.stores.memory import MemoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class ScriptedSource(Source):
    """A source whose next answer is set by the test: a snapshot, None (unchanged) or an exception."""

    kind = "scripted"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.answer: Snapshot | Exception | None = None
        self.reads = 0
        self.closed = False

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        self.reads += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return Fetched(self.answer)

    async def hints(self) -> AsyncIterator[None]:
        return
        yield

    async def aclose(self) -> None:
        self.closed = True


def grid(*rows: list[str], title: str = "Sheet1") -> Snapshot:
    return Snapshot((Tab(0, title, rows),))


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[MemoryStore, MemoryBus, dict[str, ScriptedSource], Monitor]]:
    store, bus = MemoryStore(), MemoryBus()
    await store.open()
    await bus.open()
    sources: dict[str, ScriptedSource] = {}

    def factory(kind: str, config: dict[str, Any]) -> Source:
        return sources.setdefault(config["name"], ScriptedSource(config))

    monitor = Monitor(store, bus, retention=Retention(), backoff_max_s=0.05, clock=lambda: NOW, source_factory=factory)
    yield store, bus, sources, monitor
    await monitor.stop()
    await bus.close()
    await store.close()


async def add(store: MemoryStore, name: str, **kw: Any) -> str:
    record = await store.create_source(NewSource(kind="scripted", config={"name": name}, poll_interval_s=0.01, **kw),
                                       now=NOW)
    return record.id


async def test_first_read_commits_version_1_as_add_tab_and_publishes(parts) -> None:  # type: ignore[no-untyped-def]
    store, bus, sources, monitor = parts
    consumer = bus.consume("test")
    source_id = await add(store, "a")
    await monitor.start()
    await eventually(lambda: "a" in sources)
    sources["a"].answer = grid(["h"], ["1"])
    delivery = await asyncio.wait_for(anext(consumer), 5)
    cs = delivery.changeset
    assert (cs.source, cs.version, cs.at) == (source_id, 1, NOW)
    assert cs.ops == (AddTab(tab=0, title="Sheet1", index=0, rows=(("h",), ("1",))),)
    head = await store.snapshot(source_id)
    assert head.version == 1 and head.snapshot == grid(["h"], ["1"])
    assert (await store.get_source(source_id)).status.state == "ok"


async def test_unchanged_reads_commit_nothing_and_edits_commit_the_next_version(parts) -> None:  # type: ignore[no-untyped-def]
    store, bus, sources, monitor = parts
    consumer = bus.consume("test")
    source_id = await add(store, "a")
    await monitor.start()
    await eventually(lambda: "a" in sources)
    sources["a"].answer = grid(["h"], ["1"])
    await asyncio.wait_for(anext(consumer), 5)
    reads = sources["a"].reads
    await eventually(lambda: sources["a"].reads > reads + 5)  # same content: nothing new
    sources["a"].answer = None
    await eventually(lambda: sources["a"].reads > reads + 10)  # "unchanged" answers: nothing new
    assert (await store.snapshot(source_id)).version == 1
    sources["a"].answer = grid(["h"], ["0"], ["1"])
    cs = (await asyncio.wait_for(anext(consumer), 5)).changeset
    assert cs.version == 2
    assert cs.ops[0] == InsertRows(tab=0, at=1, rows=(("0",),))


async def test_small_reads_are_diffed_on_the_loop_and_large_ones_in_a_worker_thread(  # type: ignore[no-untyped-def]
    parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, bus, sources, monitor = parts
    threaded: list[str] = []
    to_thread = asyncio.to_thread

    async def recording_to_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        threaded.append(fn.__name__)
        return await to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(monitor_module.asyncio, "to_thread", recording_to_thread)
    consumer = bus.consume("test")
    await add(store, "a")
    await monitor.start()
    await eventually(lambda: "a" in sources)
    small = [["h"], *([str(i)] for i in range(INLINE_DIFF_ROWS - 1))]
    sources["a"].answer = grid(*small)  # nothing before it: INLINE_DIFF_ROWS rows in all
    await asyncio.wait_for(anext(consumer), 5)
    assert threaded == []
    sources["a"].answer = grid(*small, ["one more"])
    cs = (await asyncio.wait_for(anext(consumer), 5)).changeset
    assert threaded == ["diff"]
    assert cs.ops[0] == InsertRows(tab=0, at=INLINE_DIFF_ROWS, rows=(("one more",),))


async def test_failing_source_gets_error_status_then_recovers(parts) -> None:  # type: ignore[no-untyped-def]
    store, _bus, sources, monitor = parts
    source_id = await add(store, "a")
    await monitor.start()
    await eventually(lambda: "a" in sources)
    sources["a"].answer = SourceError("http://x answered 500")
    await eventually(lambda: monitor.watches[source_id].status is not None
                     and monitor.watches[source_id].status.state == "error")  # type: ignore[union-attr]
    status = (await store.get_source(source_id)).status
    assert status.state == "error" and status.message == "http://x answered 500" and status.since == NOW
    sources["a"].answer = grid(["ok"])
    await eventually(lambda: monitor.watches[source_id].version == 1)
    assert (await store.get_source(source_id)).status.state == "ok"


async def test_restart_continues_the_version_sequence_from_the_store(parts) -> None:  # type: ignore[no-untyped-def]
    store, bus, sources, monitor = parts
    source_id = await add(store, "a")
    await monitor.start()
    await eventually(lambda: "a" in sources)
    sources["a"].answer = grid(["1"])
    await eventually(lambda: monitor.watches[source_id].version == 1)
    await monitor.stop()
    assert sources["a"].closed

    again = Monitor(store, bus, retention=Retention(), clock=lambda: NOW, source_factory=lambda k, c: sources["a"])
    sources["a"].answer = grid(["2"])
    await again.start()
    try:
        await eventually(lambda: again.watches[source_id].version == 2)
        [change] = (await store.changes_since(source_id, (await store.get_source(source_id)).epoch, 1)).changes
        assert change.ops == (SetCell(tab=0, row=0, col=0, a1="A1", old="1", new="2"),)
    finally:
        await again.stop()


async def test_commit_refused_reloads_the_head_and_goes_on(parts) -> None:  # type: ignore[no-untyped-def]
    store, _bus, sources, monitor = parts
    source_id = await add(store, "a")
    record = await store.get_source(source_id)
    # Another writer commits version 1 behind the monitor's back after it has loaded the head.
    await monitor.start()
    await eventually(lambda: "a" in sources)
    cs = ChangeSet(source_id, record.epoch, 1, NOW, (AddTab(0, "Sheet1", 0, (("x",),)),))
    await store.commit(grid(["x"]), cs, retention=Retention())
    sources["a"].answer = grid(["y"])
    await eventually(lambda: monitor.watches[source_id].version == 2)
    snapshot = await store.snapshot(source_id)
    assert snapshot.version == 2 and snapshot.snapshot == grid(["y"])


async def test_reload_stops_deleted_and_paused_sources_and_refresh_wakes(parts) -> None:  # type: ignore[no-untyped-def]
    store, _bus, sources, monitor = parts
    paused_id = await add(store, "p", paused=True)
    source_id = await add(store, "a")
    await monitor.start()
    assert paused_id not in monitor.watches
    await eventually(lambda: "a" in sources)
    await store.update_source(source_id, {"poll_interval_s": 3600.0}, now=NOW)
    monitor.reload(source_id)
    await eventually(lambda: source_id in monitor.watches and monitor.watches[source_id].record.poll_interval_s == 3600)
    watch = monitor.watches[source_id]
    await eventually(lambda: watch.reads >= 1)
    reads = watch.reads
    monitor.refresh(source_id)
    await eventually(lambda: watch.reads == reads + 1)
    await store.delete_source(source_id)
    monitor.reload(source_id)
    await eventually(lambda: source_id not in monitor.watches)
    monitor.refresh("unknown")  # a no-op, not an error


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(cap_s=8, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff = Backoff(cap_s=8, rand=lambda: 0.0)
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1, 2]
    backoff.reset()
    assert backoff.next_delay() == 0.5


async def test_version_conflict_class_is_what_the_store_raises(parts) -> None:  # type: ignore[no-untyped-def]
    store, _bus, _sources, _monitor = parts
    source_id = await add(store, "a")
    record = await store.get_source(source_id)
    with pytest.raises(VersionConflict):
        await store.commit(grid(["x"]), ChangeSet(source_id, record.epoch, 2, NOW, ()), retention=Retention())
