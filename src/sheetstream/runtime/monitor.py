"""The monitor: reads every active source on its schedule or when a hint arrives, diffs, commits, publishes.

One `Watch` task per source. A read that fails marks the source `error`, backs off exponentially with jitter and
tries again by itself; the first good read after that marks it `ok` again. The store is the source of truth: the
watch starts from the committed snapshot and version, so a restarted process continues the version sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from sheetstream.buses.base import Bus
from sheetstream.core.diff import diff
from sheetstream.core.model import ChangeSet, Snapshot
from sheetstream.errors import ConfigError, SourceError, SourceNotFound, VersionConflict
from sheetstream.sources.base import Source
from sheetstream.stores.base import Retention, SourceRecord, SourceStatus, Store

log = structlog.get_logger("sheetstream.monitor")

Clock = Callable[[], datetime]
SourceFactory = Callable[[str, dict[str, Any]], Source]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def _default_source_factory(kind: str, config: dict[str, Any]) -> Source:
    from sheetstream.sources.registry import open_source

    return open_source(kind, config)


class Backoff:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at `cap_s`."""

    def __init__(self, cap_s: float, base_s: float = 1.0, rand: Callable[[], float] = random.random) -> None:
        self.cap_s = cap_s
        self.base_s = base_s
        self.failures = 0
        self._rand = rand

    def next_delay(self) -> float:
        """Delay before the next try after one more failure."""
        self.failures += 1
        ceiling = min(self.cap_s, self.base_s * 2 ** (self.failures - 1))
        return float(ceiling / 2 + self._rand() * ceiling / 2)

    def reset(self) -> None:
        """Forget past failures."""
        self.failures = 0


class Watch:
    """Watches one source: waits for its poll interval or a hint, reads, commits what changed."""

    def __init__(self, record: SourceRecord, monitor: Monitor) -> None:
        self.record = record
        self.monitor = monitor
        self.wake = asyncio.Event()
        self.snapshot: Snapshot | None = None
        self.epoch = record.epoch
        self.version = record.version
        self.status: SourceStatus | None = record.status
        self.reads = 0
        self.commits = 0

    async def run(self) -> None:
        """Read the source until cancelled."""
        source_id = self.record.id
        try:
            source = self.monitor.source_factory(self.record.kind, self.record.config)
        except ConfigError as exc:
            await self._set_status("error", str(exc))
            return
        hints = asyncio.create_task(self._follow_hints(source), name=f"hints:{source_id}")
        backoff = Backoff(self.monitor.backoff_max_s)
        try:
            await self._load_head()
            delay = 0.0
            while True:
                await self._sleep(delay)
                try:
                    await self.read_once(source)
                except SourceError as exc:
                    delay = backoff.next_delay()
                    log.warning("source read failed", source=source_id, error=str(exc), retry_in_s=round(delay, 2))
                    await self._set_status("error", str(exc))
                    continue
                except VersionConflict as exc:
                    # Another writer moved the head (or history was reset): start again from the store.
                    log.warning("commit refused, reloading head", source=source_id, error=str(exc))
                    await self._load_head()
                    delay = 0.0
                    continue
                backoff.reset()
                delay = self.record.poll_interval_s
        finally:
            hints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hints
            await source.aclose()

    async def read_once(self, source: Source) -> ChangeSet | None:
        """One read: fetch, diff against the last committed snapshot, commit and publish if anything changed."""
        self.reads += 1
        fetched = await source.fetch(self.snapshot)
        if fetched.snapshot is not None:
            new = fetched.snapshot
            old = self.snapshot or Snapshot()
            key = self.record.config.get("key_column")
            ops = await asyncio.to_thread(diff, old, new, key_column=key)
            if ops:
                changeset = ChangeSet(
                    source=self.record.id, epoch=self.epoch, version=self.version + 1, at=self.monitor.clock(), ops=ops
                )
                await self.monitor.store.commit(new, changeset, retention=self.monitor.retention)
                self.snapshot, self.version = new, changeset.version
                self.commits += 1
                await self._set_status("ok", None)
                await self._publish(changeset)
                return changeset
            self.snapshot = new
        await self._set_status("ok", None)
        return None

    async def _publish(self, changeset: ChangeSet) -> None:
        try:
            await self.monitor.bus.publish(changeset)
        except Exception:  # the change is committed; gateways fill the gap from the store
            log.exception("publish failed", source=changeset.source, version=changeset.version)

    async def _load_head(self) -> None:
        head = await self.monitor.store.snapshot(self.record.id)
        self.epoch, self.version = head.epoch, head.version
        self.snapshot = head.snapshot if head.version > 0 else None

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=delay)
        self.wake.clear()

    async def _follow_hints(self, source: Source) -> None:
        try:
            async for _ in source.hints():
                self.wake.set()
        except Exception:  # hints are an optimisation; polling still covers the source
            log.exception("hint stream failed", source=self.record.id)

    async def _set_status(self, state: str, message: str | None) -> None:
        if self.status is not None and self.status.state == state and self.status.message == message:
            return
        status = SourceStatus(state=state, message=message, since=self.monitor.clock())  # type: ignore[arg-type]
        self.status = status
        with contextlib.suppress(SourceNotFound):
            await self.monitor.store.set_status(self.record.id, status)


class Monitor:
    """Runs one Watch per active source and restarts it when the source's settings change."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        retention: Retention,
        backoff_max_s: float = 60.0,
        clock: Clock = utc_now,
        source_factory: SourceFactory = _default_source_factory,
    ) -> None:
        self.store = store
        self.bus = bus
        self.retention = retention
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.source_factory = source_factory
        self.watches: dict[str, Watch] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start watching every source in the store that is not paused."""
        cursor: str | None = None
        while True:
            records, cursor = await self.store.list_sources(limit=500, cursor=cursor)
            for record in records:
                self._start(record)
            if cursor is None:
                return

    async def stop(self) -> None:
        """Cancel every watch and wait for them to finish."""
        tasks = [*self._tasks.values(), *self._pending]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self.watches.clear()

    def refresh(self, source_id: str) -> None:
        """Read this source as soon as possible."""
        watch = self.watches.get(source_id)
        if watch is not None:
            watch.wake.set()

    def reload(self, source_id: str) -> None:
        """The source was created, updated or deleted: (re)start or stop watching it."""
        self._spawn(self._reload(source_id))

    async def _reload(self, source_id: str) -> None:
        await self._cancel(source_id)
        try:
            record = await self.store.get_source(source_id)
        except SourceNotFound:
            return
        self._start(record)

    def _start(self, record: SourceRecord) -> None:
        if record.paused:
            return
        watch = Watch(record, self)
        self.watches[record.id] = watch
        self._tasks[record.id] = asyncio.create_task(self._run_watch(watch), name=f"watch:{record.id}")

    async def _run_watch(self, watch: Watch) -> None:
        try:
            await watch.run()
        except asyncio.CancelledError:
            raise
        except SourceNotFound:
            log.info("source deleted while watched", source=watch.record.id)
        except Exception:
            log.exception("watch crashed", source=watch.record.id)

    async def _cancel(self, source_id: str) -> None:
        task = self._tasks.pop(source_id, None)
        self.watches.pop(source_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
