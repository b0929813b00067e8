"""The monitor: reads every active source on its schedule or when a hint arrives, diffs, commits, publishes.

One `Watch` task per source. A read that fails marks the source `error`, backs off exponentially with jitter and
tries again by itself; the first good read after that marks it `ok` again. The store is the source of truth: the
watch starts from the committed snapshot and version, so a restarted process continues the version sequence.

Alone, a monitor watches every active source. Given `SourceClaims` (several monitors on one store), it watches
only the sources whose leases it holds, renews them every `claims.renew_every_s`, and stops a watch as soon as
its lease is lost; a stale commit that slips through anyway is refused by the store's version fence.

Given a `Scheduler` (runtime/scheduler.py), a watch of a quota-bound source (Google Sheets) asks it for a turn
before every read instead of sleeping its poll interval: the scheduler then decides when, within the quota
budgets, and backs off failures. Without one, or for other sources, every watch keeps its own timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from sheetstream.buses.base import Bus
from sheetstream.core.diff import diff
from sheetstream.core.model import ChangeSet, Snapshot
from sheetstream.errors import ConfigError, SourceError, SourceNotFound, VersionConflict
from sheetstream.runtime import metrics
from sheetstream.runtime.leases import LeaseLost, SourceClaims
from sheetstream.runtime.scheduler import Scheduler, Slot
from sheetstream.sources.base import Source
from sheetstream.stores.base import Retention, SourceRecord, SourceStatus, Store

log = structlog.get_logger("sheetstream.monitor")

Clock = Callable[[], datetime]
SourceFactory = Callable[[str, dict[str, Any]], Source]

INLINE_DIFF_ROWS = 200
"""Up to this many rows in the old and the new snapshot together, a read is diffed on the event loop, in well under
a millisecond: handing so small a diff to a worker thread costs more than the diff. Larger ones go to a thread, so
the loop keeps serving meanwhile."""


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one read went: `read` (and whether it `changed` anything), `failed` (retry after `retry_in_s`), or
    `refused` (the commit was fenced off and the head reloaded)."""

    outcome: Literal["read", "failed", "refused"]
    changed: bool = False
    retry_in_s: float = 0.0


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
        self.slot: Slot | None = None

    async def run(self) -> None:
        """Read the source until cancelled."""
        source_id = self.record.id
        structlog.contextvars.bind_contextvars(source=source_id)  # every log line of this watch's task names it
        try:
            source = self.monitor.source_factory(self.record.kind, self.record.config)
        except ConfigError as exc:
            await self._set_status("error", str(exc))
            return
        hints = asyncio.create_task(self._follow_hints(source), name=f"hints:{source_id}")
        backoff = Backoff(self.monitor.backoff_max_s)
        scheduler = self.monitor.scheduler
        if scheduler is not None and scheduler.governs(source):
            self.slot = scheduler.register(source_id, source, self.record.poll_interval_s)  # type: ignore[arg-type]
        try:
            await self._load_head()
            if self.slot is not None:
                await self._run_scheduled(source, self.slot)
            delay = 0.0
            while True:
                await self._sleep(delay)
                attempt = await self._attempt(source, lambda _exc: backoff.next_delay())
                if attempt.outcome == "failed":
                    delay = attempt.retry_in_s
                elif attempt.outcome == "refused":
                    delay = 0.0
                else:
                    backoff.reset()
                    delay = self.record.poll_interval_s
        finally:
            if self.slot is not None:
                await self.slot.aclose()
            hints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hints
            await source.aclose()

    async def _run_scheduled(self, source: Source, slot: Slot) -> None:
        """Read whenever the scheduler grants a turn; it also decides the backoff after a failure."""
        while True:
            await slot.turn()
            attempt = await self._attempt(source, lambda exc: slot.failed(exc, self.monitor.backoff_max_s))
            if attempt.outcome == "refused":
                slot.done(changed=False)
                slot.hint()
            elif attempt.outcome == "read":
                slot.done(changed=attempt.changed)

    async def _attempt(self, source: Source, retry_in: Callable[[SourceError], float]) -> Attempt:
        """One read with the failure handling both schedules share; says what happened, for the caller's timing."""
        try:
            changeset = await self.read_once(source)
        except SourceError as exc:
            delay = retry_in(exc)
            log.warning("source read failed", source=self.record.id, error=str(exc), retry_in_s=round(delay, 2))
            await self._set_status("error", str(exc))
            return Attempt("failed", retry_in_s=delay)
        except VersionConflict as exc:
            # Another writer moved the head (or history was reset): start again from the store.
            log.warning("commit refused, reloading head", source=self.record.id, error=str(exc))
            metrics.COMMIT_REFUSALS.inc()
            await self._load_head()
            return Attempt("refused")
        return Attempt("read", changed=changeset is not None)

    def hint(self) -> None:
        """The source may have changed: read it soon (at once, or when the scheduler allows)."""
        self.wake.set()
        if self.slot is not None:
            self.slot.hint()

    async def read_once(self, source: Source) -> ChangeSet | None:
        """One read: fetch, diff against the last committed snapshot, commit and publish if anything changed."""
        self.reads += 1
        fetched = await metrics.read_source(source, self.snapshot, self.record.kind)
        if fetched.snapshot is not None:
            new = fetched.snapshot
            old = self.snapshot or Snapshot()
            key = self.record.config.get("key_column")
            if _rows(old) + _rows(new) <= INLINE_DIFF_ROWS:
                ops = diff(old, new, key_column=key)
            else:
                ops = await asyncio.to_thread(diff, old, new, key_column=key)
            if ops:
                metrics.CHANGES_DETECTED.labels(kind=self.record.kind).inc()
                claims = self.monitor.claims
                if claims is not None and not claims.holds(self.record.id):
                    raise LeaseLost(self.record.id)
                changeset = ChangeSet(
                    source=self.record.id, epoch=self.epoch, version=self.version + 1, at=self.monitor.clock(), ops=ops
                )
                await self.monitor.store.commit(new, changeset, retention=self.monitor.retention)
                metrics.committed(self.record.kind, len(ops))
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
            metrics.PUBLISH_FAILURES.inc()
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
                self.hint()
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
    """Runs one Watch per active source (per claimed source, with `claims`) and restarts it when its settings change."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        retention: Retention,
        backoff_max_s: float = 60.0,
        clock: Clock = utc_now,
        source_factory: SourceFactory = _default_source_factory,
        claims: SourceClaims | None = None,
        scheduler: Scheduler | None = None,
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
        self.claims = claims
        self.scheduler = scheduler
        self._claims_task: asyncio.Task[None] | None = None
        self._claims_wake = asyncio.Event()
        self._rebalancing = asyncio.Lock()

    async def start(self) -> None:
        """Start watching every source in the store that is not paused (with claims: those it holds)."""
        if self.scheduler is not None:
            self.scheduler.start()
        if self.claims is not None:
            await self.rebalance()
            self._claims_task = asyncio.create_task(self._keep_claims(self.claims), name="claims")
            return
        cursor: str | None = None
        while True:
            records, cursor = await self.store.list_sources(limit=500, cursor=cursor)
            for record in records:
                self._start(record)
            if cursor is None:
                return

    async def stop(self) -> None:
        """Cancel every watch and wait for them to finish; with claims, release the leases for the others."""
        tasks = [*self._tasks.values(), *self._pending]
        if self._claims_task is not None:
            tasks.append(self._claims_task)
            self._claims_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self.watches.clear()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.claims is not None:
            try:
                await self.claims.release_all()
            except Exception:  # the leases then expire by themselves
                log.exception("could not release source leases", holder=self.claims.holder)

    async def rebalance(self) -> None:
        """With claims: one round of lease renewal, then watch exactly the sources held (called every ttl/3)."""
        if self.claims is None:
            raise RuntimeError("rebalance needs SourceClaims: Monitor(..., claims=SourceClaims(store))")
        async with self._rebalancing:
            active = await self._active_sources()
            held = await self.claims.renew(active)
            for source_id, task in list(self._tasks.items()):
                new = active.get(source_id)
                if (
                    source_id not in held
                    or new is None
                    or task.done()
                    or _settings_differ(self.watches[source_id].record, new)
                ):
                    await self._cancel(source_id)
            for source_id in sorted(held - set(self._tasks)):
                self._start(active[source_id])

    async def _active_sources(self) -> dict[str, SourceRecord]:
        active: dict[str, SourceRecord] = {}
        cursor: str | None = None
        while True:
            records, cursor = await self.store.list_sources(limit=500, cursor=cursor)
            active.update((record.id, record) for record in records if not record.paused)
            if cursor is None:
                return active

    async def _keep_claims(self, claims: SourceClaims) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._claims_wake.wait(), timeout=claims.renew_every_s)
            self._claims_wake.clear()
            try:
                await self.rebalance()
            except Exception:
                log.exception("lease renewal failed", holder=claims.holder)
                # Leases this monitor can no longer vouch for are treated as lost.
                for source_id in [s for s in self._tasks if not claims.holds(s)]:
                    await self._cancel(source_id)

    def refresh(self, source_id: str) -> None:
        """Read this source as soon as possible."""
        watch = self.watches.get(source_id)
        if watch is not None:
            watch.hint()

    def reload(self, source_id: str) -> None:
        """The source was created, updated or deleted: (re)start or stop watching it."""
        if self.claims is not None:  # which monitor watches it is the next round's business
            self._claims_wake.set()
            return
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
        except LeaseLost as exc:
            log.warning("watch stopped", source=watch.record.id, reason=str(exc))
            if self.watches.get(watch.record.id) is watch:
                del self.watches[watch.record.id]
                self._tasks.pop(watch.record.id, None)
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


def _rows(snapshot: Snapshot) -> int:
    return sum(len(tab.rows) for tab in snapshot.tabs)


def _settings_differ(old: SourceRecord, new: SourceRecord) -> bool:
    """Whether a watch must restart to follow an edit of its source."""
    return (old.kind, old.config, old.poll_interval_s) != (new.kind, new.config, new.poll_interval_s)
