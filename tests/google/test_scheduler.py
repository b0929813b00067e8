"""The scheduler alone, on a manual timer: buckets, priorities, adaptive intervals, hints, backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sheetstream.core.ratelimit import TokenBucket
from sheetstream.runtime.buckets import bucket_for
from sheetstream.runtime.scheduler import QuotaSettings, Scheduler, Slot
from sheetstream.sources.google_api import GoogleApiError
from tests.google.simtime import ManualTimer


class Meter:
    """A governed source whose reads the test performs by hand."""

    drive_checks = False

    def __init__(self, identity: str = "robot", cost: int = 1, min_interval_s: float = 1.0) -> None:
        self.quota_key = (identity, "project")
        self.cost = cost
        self.min_interval_s = min_interval_s
        self.requests = 0

    @property
    def spent(self) -> tuple[int, int]:
        return self.requests, 0

    def planned_cost(self) -> int:
        return self.cost


def test_bucket_never_lets_a_minute_exceed_the_limit() -> None:
    bucket = bucket_for(60, 0.8, now=0.0)
    assert bucket.rate == pytest.approx(0.8) and bucket.burst == 6
    # Greedy spending, checked over every one-minute window of 10 minutes.
    spent_at: list[float] = []
    t = 0.0
    while t < 600:
        if bucket.take(t):
            spent_at.append(t)
        t = round(t + 0.05, 2)
    worst = max(sum(1 for s in spent_at if start <= s < start + 60) for start in spent_at)
    assert worst <= 60 and len(spent_at) >= 470


def test_bucket_debt_and_drain() -> None:
    bucket = TokenBucket(1.0, 5.0, now=0.0)
    bucket.spend(0.0, 7)
    assert bucket.retry_after(0.0) == pytest.approx(3.0)
    assert not bucket.take(0.0)
    bucket.give(0.0, 10)
    assert bucket.available(0.0) == 5.0
    bucket.drain(0.0, 30.0)
    assert bucket.retry_after(0.0) == pytest.approx(31.0)


@pytest.fixture
async def running() -> AsyncIterator[tuple[Scheduler, ManualTimer]]:
    timer = ManualTimer(start=0.0)
    scheduler = Scheduler(QuotaSettings(), timer=timer, rand=lambda: 1.0)  # 0.8 reads/s, a burst of 6
    scheduler.start()
    yield scheduler, timer
    await scheduler.stop()


async def settle(scheduler: Scheduler) -> None:
    """Let the scheduler's loop run until it waits on the timer again (reads in flight may stay so)."""
    calm = 0
    for _ in range(1000):
        await asyncio.sleep(0)
        calm = calm + 1 if scheduler._parked and not scheduler._poke.is_set() else 0
        if calm == 5:  # and the turns it granted have resumed
            return
    raise AssertionError("scheduler loop not parked")


async def read(slot: Slot, changed: bool = False) -> None:
    """Take a turn (must be granted now) and finish the read."""
    await asyncio.wait_for(slot.turn(), 1)
    slot.source.requests += slot.source.cost  # type: ignore[attr-defined]
    slot.done(changed=changed)


async def test_idle_sources_back_off_and_a_change_makes_them_hot(running: tuple[Scheduler, ManualTimer]) -> None:
    scheduler, timer = running
    slot = scheduler.register("s", Meter(), poll_interval_s=5)
    await read(slot, changed=True)
    assert slot.due == 5.0  # hot: the poll interval
    timer.advance_to(61)  # past the hot window
    await read(slot)
    intervals = []
    for _ in range(8):
        timer.advance_to(slot.due)
        before = timer.t
        await read(slot)
        intervals.append(slot.due - before)
    assert intervals == sorted(intervals) and intervals[-1] == scheduler.settings.idle_max_s
    scheduler.is_watched = lambda source_id: True
    assert slot.interval() == scheduler.settings.watched_max_s
    timer.advance_to(slot.due)
    await read(slot, changed=True)
    assert slot.due - timer.t == 5.0


async def test_hints_jump_the_queue_but_respect_the_floor(running: tuple[Scheduler, ManualTimer]) -> None:
    scheduler, timer = running
    hinted = scheduler.register("hinted", Meter(min_interval_s=2.0), poll_interval_s=3600)
    await read(hinted)
    others = [scheduler.register(f"o{i}", Meter(), poll_interval_s=3600) for i in range(8)]
    turns = [asyncio.ensure_future(s.turn()) for s in others]
    waiting = asyncio.ensure_future(hinted.turn())
    await settle(scheduler)
    granted = sum(t.done() for t in turns)
    assert granted == 5  # the burst of 6 minus the first read; the rest wait for tokens
    hinted.hint()
    await settle(scheduler)
    assert not waiting.done()  # the floor: 2 s after its last read
    timer.advance_to(2.0)  # 1.6 tokens have come back: one read
    await settle(scheduler)
    assert waiting.done(), "the hinted source goes before the waiting ones"
    assert sum(t.done() for t in turns) == granted
    for task in [*turns, waiting]:
        task.cancel()


async def test_failures_back_off_and_429_pauses_the_identity(running: tuple[Scheduler, ManualTimer]) -> None:
    scheduler, timer = running
    a = scheduler.register("a", Meter(), poll_interval_s=5)
    b = scheduler.register("b", Meter(), poll_interval_s=5)
    await asyncio.wait_for(a.turn(), 1)
    delay = a.failed(GoogleApiError("quota", status=429, retry_after_s=20), cap_s=60)
    assert delay == 20 and scheduler.rate_limits == 1
    turn_b = asyncio.ensure_future(b.turn())
    await settle(scheduler)
    assert not turn_b.done()  # b spends the same identity: paused too
    timer.advance_to(19)
    await settle(scheduler)
    assert not turn_b.done()
    timer.advance_to(21.5)
    await settle(scheduler)
    assert turn_b.done()
    delays = []
    for _ in range(4):
        await asyncio.wait_for(b.turn(), 1) if not turn_b.done() else await turn_b
        delays.append(b.failed(GoogleApiError("boom", status=503), cap_s=4))
        timer.advance_to(b.due)
        turn_b = asyncio.ensure_future(b.turn())
        await settle(scheduler)
    assert delays == [1.0, 2.0, 4.0, 4.0]  # rand() == 1: the ceiling of each step, capped
    turn_b.cancel()


async def test_quota_metrics_count_requests_and_429s_and_show_what_is_left(
    running: tuple[Scheduler, ManualTimer],
) -> None:
    from prometheus_client import generate_latest

    from sheetstream.runtime import metrics

    def sample(name: str, **labels: str) -> float:
        value = metrics.REGISTRY.get_sample_value(name, labels)
        return value or 0.0

    scheduler, timer = running
    sheets_before = sample("sheetstream_google_requests_total", quota="sheets")
    limited_before = sample("sheetstream_google_rate_limited_total")
    slot = scheduler.register("metered", Meter(identity="metered-robot", cost=3), poll_interval_s=5)
    await read(slot)
    assert sample("sheetstream_google_requests_total", quota="sheets") == sheets_before + 3
    assert sample("sheetstream_google_quota_available", quota="identity", key="metered-robot") == pytest.approx(6 - 3)
    timer.advance_to(slot.due)
    await asyncio.wait_for(slot.turn(), 1)
    slot.failed(GoogleApiError("quota", status=429, retry_after_s=20), cap_s=60)
    assert sample("sheetstream_google_rate_limited_total") == limited_before + 1
    assert sample("sheetstream_google_quota_available", quota="identity", key="metered-robot") < 0  # paused
    assert b'sheetstream_google_quota_available{key="project",quota="project"}' in generate_latest(metrics.REGISTRY)
