"""Token buckets and timers for the read scheduler (`runtime/scheduler.py`).

`bucket_for(limit, target)` sizes a bucket for a per-minute quota: refilled at target x limit per minute, with a
burst of half the remaining share, so that no one-minute window (Google counts fixed minutes) can exceed the limit.
A `Timer` gives the scheduler its time; tests pass a manual one to simulate minutes in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol


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


class TokenBucket:
    """`rate_per_s` tokens a second up to `capacity`; may go into debt when a read costs more than planned."""

    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
            self.updated = now

    def available(self, now: float) -> float:
        """Tokens there now."""
        self._refill(now)
        return self.tokens

    def take(self, amount: float, now: float) -> None:
        """Spend tokens (the balance may go below zero)."""
        self._refill(now)
        self.tokens -= amount

    def give(self, amount: float, now: float) -> None:
        """Return tokens that were not spent after all."""
        self._refill(now)
        self.tokens = min(self.capacity, self.tokens + amount)

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` tokens are there."""
        self._refill(now)
        missing = amount - self.tokens
        # Refills are float sums: a hair's breadth short counts as there, or waits would round to nothing.
        return 0.0 if missing <= 1e-9 else max(missing / self.rate_per_s, 1e-3)

    def drain(self, now: float, pause_s: float) -> None:
        """Empty the bucket so that nothing is spent for `pause_s` seconds (after a 429)."""
        self._refill(now)
        self.tokens = min(self.tokens, -pause_s * self.rate_per_s)


def bucket_for(limit_per_min: float, target: float, now: float) -> TokenBucket:
    """A bucket refilled at `target` x the limit, whose burst cannot push a one-minute window past the limit."""
    rate = limit_per_min * target / 60.0
    burst = max(2.0, float(math.floor(round(limit_per_min * (1.0 - target) / 2.0, 6))))
    return TokenBucket(rate, burst, now)
