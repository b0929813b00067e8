"""The read scheduler for quota-bound sources (Google Sheets): token buckets, read priority, adaptive intervals.

A source is governed when it names the quota it spends (`quota_key = (identity, project)`) and says what a read
costs (`planned_cost()`, `spent`). Its Watch asks for a turn (`Slot.turn()`) before every read and reports the
outcome (`done`, `failed`). The scheduler grants turns so that:

- the Sheets read requests of each identity and each project stay within `target` (80 %) of their per-minute
  quotas: one token bucket per identity and per project, refilled at target x limit per minute, with a burst of
  half the remaining 20 % so no one-minute window can exceed the limit; Drive calls have a bucket of their own;
- when tokens are short, hinted sources go first, then sources never read yet, then sources with subscribers,
  then recently changed ones, then the most overdue;
- a source that just changed is read every `poll_interval_s` ("hot"); each read that finds nothing new doubles
  the interval, up to `idle_max_s` (`watched_max_s` while someone is subscribed); a hint asks for a read at once,
  but never sooner than `min_interval_s` (the source's floor) after the previous one;
- failures back off exponentially with full jitter and honour Retry-After; a 429 also empties the identity's
  bucket, pausing every source that spends it.

Time comes from an injectable `Timer`, so tests can run many simulated minutes in a moment (`quiet` tells them
when everything waits on the timer). Periodic jobs (Drive change feeds, push channel renewals, see
`runtime/hints.py`) run on the same timer and the Drive bucket. Buckets and timers are in `runtime/buckets.py`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from sheetstream.core.ratelimit import TokenBucket
from sheetstream.runtime import metrics
from sheetstream.runtime.buckets import RealTimer, Timer, bucket_for

log = structlog.get_logger("sheetstream.scheduler")

QuotaKey = tuple[str, str]


class Metered(Protocol):
    """What a governed source tells the scheduler."""

    @property
    def quota_key(self) -> QuotaKey: ...

    @property
    def spent(self) -> tuple[int, int]: ...

    min_interval_s: float

    def planned_cost(self) -> int: ...


@dataclass(frozen=True)
class QuotaSettings:
    """Quota budgets and read intervals of the scheduler."""

    reads_per_identity_per_min: int = 60
    reads_per_project_per_min: int = 300
    drive_per_identity_per_min: int = 600
    target: float = 0.8
    idle_max_s: float = 300.0
    watched_max_s: float = 60.0
    hot_window_s: float = 60.0
    backoff_base_s: float = 1.0


class Slot:
    """One governed source's place in the schedule."""

    def __init__(self, scheduler: Scheduler, source_id: str, source: Metered, poll_interval_s: float) -> None:
        self.scheduler = scheduler
        self.source_id = source_id
        self.source = source
        self.key: QuotaKey = source.quota_key
        self.poll_interval_s = max(poll_interval_s, 0.001)
        self.floor_s = float(getattr(source, "min_interval_s", 1.0))
        now = scheduler.timer.now()
        self.state: Literal["working", "waiting", "granted"] = "working"
        self.due = now
        self.not_before = now
        self.hinted = False
        self.last_read: float | None = None
        self.last_change: float | None = None
        self.unchanged_reads = 0
        self.failures = 0
        self.reads = 0
        self._grant: asyncio.Future[None] | None = None
        self._planned = (0, 0)
        self._spent_before = (0, 0)

    async def turn(self) -> None:
        """Wait until this source may be read."""
        loop = asyncio.get_running_loop()
        self._grant = loop.create_future()
        self.state = "waiting"
        self.scheduler.poke()
        try:
            await self._grant
        finally:
            self._grant = None
            self.state = "working"

    def hint(self) -> None:
        """The source may have changed: read it as soon as the floor and the quota allow."""
        self.hinted = True
        self.scheduler.poke()

    def ready(self, now: float) -> bool:
        """Whether this source is waiting and may be read now (quota aside)."""
        return self.state == "waiting" and now >= self.not_before and (self.hinted or now >= self.due)

    def wake_at(self) -> float:
        """When this source next becomes ready."""
        return self.not_before if self.hinted else max(self.due, self.not_before)

    def _granted(self, planned: tuple[int, int]) -> None:
        self.state = "granted"
        self.hinted = False
        self._planned = planned
        self._spent_before = self.source.spent
        if self._grant is not None and not self._grant.done():
            self._grant.set_result(None)

    def _settle(self, now: float) -> None:
        """Charge what the read really spent against what was planned."""
        after = self.source.spent
        spent_sheets, spent_drive = after[0] - self._spent_before[0], after[1] - self._spent_before[1]
        metrics.GOOGLE_REQUESTS.labels(quota="sheets").inc(max(0, spent_sheets))
        metrics.GOOGLE_REQUESTS.labels(quota="drive").inc(max(0, spent_drive))
        sheets = spent_sheets - self._planned[0]
        drive = spent_drive - self._planned[1]
        self.scheduler._adjust(self.key, sheets, drive, now)
        self.last_read = now
        self.reads += 1

    def done(self, *, changed: bool) -> None:
        """The read succeeded; `changed` says whether it found a change. Schedules the next read."""
        now = self.scheduler.timer.now()
        self._settle(now)
        self.failures = 0
        if changed:
            self.last_change, self.unchanged_reads = now, 0
        elif self.last_change is None or now - self.last_change >= self.scheduler.settings.hot_window_s:
            self.unchanged_reads += 1
        self.due = now + self.interval()
        self.not_before = now + self.floor_s
        self.scheduler.poke()

    def interval(self) -> float:
        """Seconds until the next timed read: the poll interval, doubled per idle read up to the idle cap."""
        settings = self.scheduler.settings
        cap = settings.watched_max_s if self.scheduler.is_watched(self.source_id) else settings.idle_max_s
        grown = self.poll_interval_s * 2.0 ** min(self.unchanged_reads, 30)
        return max(self.poll_interval_s, min(grown, cap))

    def failed(self, exc: BaseException, cap_s: float) -> float:
        """The read failed: back off (with jitter, at least Retry-After); returns the delay."""
        now = self.scheduler.timer.now()
        self._settle(now)
        self.failures += 1
        ceiling = min(cap_s, self.scheduler.settings.backoff_base_s * 2.0 ** (self.failures - 1))
        delay = ceiling / 2 + self.scheduler.rand() * ceiling / 2
        wait = getattr(exc, "retry_after_s", None)
        if isinstance(wait, int | float):
            delay = max(delay, float(wait))
        if getattr(exc, "rate_limited", False):
            self.scheduler.rate_limited(self.key, max(delay, 1.0), now)
        self.due = self.not_before = now + delay
        self.scheduler.backoffs.append(delay)
        self.scheduler.poke()
        return delay

    async def aclose(self) -> None:
        """The watch ended: leave the schedule, and let the extensions clean up (stop push channels)."""
        pending = self.scheduler._remove(self)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


class Job:
    """A periodic task run on the scheduler's timer (a Drive change feed, a channel renewal)."""

    def __init__(self, scheduler: Scheduler, name: str, interval_s: float, run: Callable[[], Awaitable[Any]],
                 key: str | None) -> None:
        self.scheduler = scheduler
        self.name = name
        self.interval_s = interval_s
        self.run = run
        self.key = key
        self.due = scheduler.timer.now() + interval_s
        self.task: asyncio.Task[None] | None = None
        self.failures = 0

    def trigger(self) -> None:
        """Run as soon as possible."""
        self.due = min(self.due, self.scheduler.timer.now())
        self.scheduler.poke()

    def cancel(self) -> None:
        """Stop running."""
        self.scheduler.jobs.discard(self)
        if self.task is not None:
            self.task.cancel()


class Scheduler:
    """Grants read turns to governed sources within the quota budgets (see the module docstring)."""

    def __init__(
        self,
        settings: QuotaSettings | None = None,
        *,
        timer: Timer | None = None,
        is_watched: Callable[[str], bool] = lambda source_id: False,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or QuotaSettings()
        self.timer: Timer = timer or RealTimer()
        self.is_watched = is_watched
        self.rand = rand
        self.slots: dict[str, Slot] = {}
        self.jobs: set[Job] = set()
        self.extensions: list[Any] = []
        self.identity_buckets: dict[str, TokenBucket] = {}
        self.project_buckets: dict[str, TokenBucket] = {}
        self.drive_buckets: dict[str, TokenBucket] = {}
        self.backoffs: list[float] = []
        self.rate_limits = 0
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._parked = False
        metrics.track_scheduler(self)

    def quota_available(self) -> list[tuple[str, str, float]]:
        """(quota, key, requests available now) of every budget: identity, project and drive buckets."""
        try:
            now = self.timer.now()
        except RuntimeError:  # no running loop (a scrape from another thread): as of the last refill
            now = float("-inf")
        groups = (("identity", self.identity_buckets), ("project", self.project_buckets), ("drive", self.drive_buckets))
        return [(quota, key, bucket.available(now)) for quota, buckets in groups for key, bucket in buckets.items()]

    # lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start granting turns (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        """Stop granting turns and cancel the jobs."""
        for job in list(self.jobs):
            job.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @staticmethod
    def governs(source: object) -> bool:
        """Whether `source` spends a quota the scheduler budgets."""
        return getattr(source, "quota_key", None) is not None and hasattr(source, "planned_cost")

    def register(self, source_id: str, source: Metered, poll_interval_s: float) -> Slot:
        """A slot for a governed source (its Watch calls `turn()` before each read)."""
        slot = Slot(self, source_id, source, poll_interval_s)
        self.slots[source_id] = slot
        for extension in self.extensions:
            extension.attach(slot)
        self.poke()
        return slot

    def _remove(self, slot: Slot) -> list[Awaitable[Any]]:
        pending: list[Awaitable[Any]] = []
        if self.slots.get(slot.source_id) is slot:
            del self.slots[slot.source_id]
        for extension in self.extensions:
            cleanup = extension.detach(slot)
            if cleanup is not None:
                pending.append(cleanup)
        self.poke()
        return pending

    def every(self, name: str, interval_s: float, run: Callable[[], Awaitable[Any]], *, key: str | None = None) -> Job:
        """Run `run` every `interval_s` seconds (spending one Drive token of identity `key` each time, if given)."""
        job = Job(self, name, interval_s, run, key)
        self.jobs.add(job)
        self.poke()
        return job

    def poke(self) -> None:
        """Something changed: look at the schedule again."""
        self._poke.set()

    @property
    def quiet(self) -> bool:
        """Nothing runs and nothing is ready: every source and job waits on the timer (for tests)."""
        return (
            self._parked
            and not self._poke.is_set()
            and all(s.state == "waiting" for s in self.slots.values())
            and all(j.task is None for j in self.jobs)
        )

    # buckets ----------------------------------------------------------------------------------------------

    def _buckets(self, key: QuotaKey, now: float) -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        identity, project = key
        s = self.settings
        if identity not in self.identity_buckets:
            self.identity_buckets[identity] = bucket_for(s.reads_per_identity_per_min, s.target, now)
        if project not in self.project_buckets:
            self.project_buckets[project] = bucket_for(s.reads_per_project_per_min, s.target, now)
        return self.identity_buckets[identity], self.project_buckets[project], self._drive_bucket(identity, now)

    def _drive_bucket(self, identity: str, now: float) -> TokenBucket:
        if identity not in self.drive_buckets:
            self.drive_buckets[identity] = bucket_for(self.settings.drive_per_identity_per_min, self.settings.target, now)
        return self.drive_buckets[identity]

    def _adjust(self, key: QuotaKey, sheets: int, drive: int, now: float) -> None:
        user, project, drive_bucket = self._buckets(key, now)
        for bucket, amount in ((user, sheets), (project, sheets), (drive_bucket, drive)):
            if amount > 0:
                bucket.spend(now, amount)
            elif amount < 0:
                bucket.give(now, -amount)

    def rate_limited(self, key: QuotaKey, pause_s: float, now: float) -> None:
        """Google answered 429 for `key`: spend nothing of that identity for `pause_s` seconds."""
        self.rate_limits += 1
        metrics.GOOGLE_RATE_LIMITED.inc()
        self._buckets(key, now)[0].drain(now, pause_s)
        log.warning("Google quota exhausted; pausing reads", identity=key[0], pause_s=round(pause_s, 2))

    # the loop ---------------------------------------------------------------------------------------------

    def _priority(self, slot: Slot, now: float) -> tuple[int, int, int, float]:
        recent = slot.last_change is not None and now - slot.last_change < self.settings.hot_window_s
        never_read = slot.last_read is None
        return (
            0 if slot.hinted else 1 if never_read else 2,
            0 if self.is_watched(slot.source_id) else 1,
            0 if recent else 1,
            slot.due,
        )

    def _grant_turns(self, now: float) -> float:
        """Grant what the buckets allow, in priority order; seconds until something may change by itself."""
        next_at = float("inf")
        blocked: set[str] = set()
        ready = []
        for slot in self.slots.values():
            if slot.ready(now):
                ready.append(slot)
            elif slot.state == "waiting":
                next_at = min(next_at, slot.wake_at())
        # Jobs first: one change-feed call hints many sources, and must not starve behind Drive version checks.
        for job in list(self.jobs):
            if job.task is not None:
                continue
            if job.due <= now:
                if job.key is not None:
                    job_bucket = self._drive_bucket(job.key, now)
                    if job_bucket.retry_after(now) > 0:
                        next_at = min(next_at, now + job_bucket.retry_after(now))
                        continue
                    job_bucket.spend(now, 1)
                    metrics.GOOGLE_REQUESTS.labels(quota="drive").inc()
                job.task = asyncio.create_task(self._run_job(job), name=f"job:{job.name}")
            else:
                next_at = min(next_at, job.due)
        ready.sort(key=lambda s: self._priority(s, now))
        for slot in ready:
            identity, project = slot.key
            if identity in blocked or project in blocked:
                continue
            user, proj, drive = self._buckets(slot.key, now)
            cost = max(0, slot.source.planned_cost())
            drive_cost = 1 if getattr(slot.source, "drive_checks", False) else 0
            wait = max(user.retry_after(now, cost), proj.retry_after(now, cost), drive.retry_after(now, drive_cost))
            if wait > 0:
                # Lower-priority sources of the same quota must not jump the queue.
                blocked.update((identity, project))
                next_at = min(next_at, now + wait)
                continue
            for bucket in (user, proj):
                bucket.spend(now, cost)
            drive.spend(now, drive_cost)
            slot._granted((cost, drive_cost))
        return next_at - now

    async def _run_job(self, job: Job) -> None:
        try:
            await job.run()
            job.failures = 0
            job.due = self.timer.now() + job.interval_s
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # hints are an optimisation: log, back off, keep going
            job.failures += 1
            delay = min(job.interval_s * 2.0**job.failures, 600.0)
            wait = getattr(exc, "retry_after_s", None)
            job.due = self.timer.now() + max(delay, float(wait or 0))
            log.warning("scheduled job failed", job=job.name, error=str(exc), retry_in_s=round(delay, 1))
        finally:
            job.task = None
            self.poke()

    async def _loop(self) -> None:
        while True:
            self._poke.clear()
            timeout = self._grant_turns(self.timer.now())
            if self._poke.is_set():
                continue
            self._parked = True
            try:
                await self.timer.wait(self._poke, min(timeout, 3600.0))
            finally:
                self._parked = False
