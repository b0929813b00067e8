"""Quota buckets and timers for the read scheduler (`runtime/scheduler.py`).

`bucket_for(limit, target)` sizes a bucket for a per-minute quota: refilled at target x limit per minute, with a
burst of half the remaining share, so that no one-minute window (Google counts fixed minutes) can exceed the limit.
A `Timer` gives the scheduler its time; tests pass a manual one to simulate minutes in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol

from sheetstream.core.ratelimit import TokenBucket


class Timer(Protocol):
    """Where the scheduler gets its time and how it waits."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def wait(self, event: asyncio.Event, delay_s: float) -> None:
        """Return when `event` is set or `delay_s` seconds have passed, whichever is first."""


class RealTimer:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        """Seconds on the loop's clock."""
        return asyncio.get_running_loop().time()

    async def wait(self, event: asyncio.Event, delay_s: float) -> None:
        """Wait for `event` at most `delay_s` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, delay_s))


def bucket_for(limit_per_min: float, target: float, now: float) -> TokenBucket:
    """A bucket refilled at `target` x the limit, whose burst cannot push a one-minute window past the limit."""
    rate = limit_per_min * target / 60.0
    burst = max(2.0, float(math.floor(round(limit_per_min * (1.0 - target) / 2.0, 6))))
    return TokenBucket(rate, burst, now=now)
