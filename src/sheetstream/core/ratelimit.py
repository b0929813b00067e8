"""Rate limits as token buckets: pure, with the time passed in (seconds, from any monotonic clock).

A bucket holds at most `burst` tokens and gains `rate` per second; each event takes one. `KeyedBuckets` keeps one
bucket per key (a client IP, an API key) and forgets the least recently used ones beyond `max_keys`, so a flood of
distinct keys costs bounded memory (a forgotten key starts again with a full bucket).

    limit = TokenBucket(rate=50.0, burst=100)
    if not limit.take(now):
        ...  # over the limit: refuse, and tell the client when to come back: limit.retry_after(now)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class TokenBucket:
    """`burst` events at once, then `rate` events per second on average.

    `take` is for limits (refuse when empty); `spend` is for budgets that may go into debt (a read that cost more
    than planned), `give` returns what was not spent, and `drain` empties the bucket for a while (after a 429).
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, *, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1 (rate={rate}, burst={burst})")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> float:
        """Tokens there now (below zero while in debt)."""
        self._refill(now)
        return self.tokens

    def take(self, now: float, count: float = 1.0) -> bool:
        """Take `count` tokens if there are that many; False (and take none) if not."""
        if self.retry_after(now, count) > 0:
            return False
        self.tokens -= count
        return True

    def spend(self, now: float, count: float) -> None:
        """Take `count` tokens even if that leaves the bucket in debt."""
        self._refill(now)
        self.tokens -= count

    def give(self, now: float, count: float) -> None:
        """Return tokens that were not spent after all."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + count)

    def drain(self, now: float, pause_s: float) -> None:
        """Empty the bucket so that nothing can be taken for `pause_s` seconds."""
        self._refill(now)
        self.tokens = min(self.tokens, -pause_s * self.rate)

    def retry_after(self, now: float, count: float = 1.0) -> float:
        """Seconds until `count` tokens are there (0 if they are now)."""
        self._refill(now)
        missing = count - self.tokens
        # Refills are float sums: a hair's breadth short counts as there, or waits would round to nothing.
        return 0.0 if missing <= 1e-9 else max(missing / self.rate, 1e-3)


class KeyedBuckets(Generic[K]):
    """One `TokenBucket` per key, the `max_keys` most recently used kept."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        TokenBucket(rate, burst)  # refuse bad figures now, not at the first event
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def bucket(self, key: K, now: float) -> TokenBucket:
        """The bucket of `key`, made full if it is new or was forgotten."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now=now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: K, now: float) -> bool:
        """Take one token from `key`'s bucket; False when it is empty."""
        return self.bucket(key, now).take(now)

    def retry_after(self, key: K, now: float) -> float:
        """Seconds until `key` may take a token."""
        return self.bucket(key, now).retry_after(now)

    def __len__(self) -> int:
        return len(self._buckets)


def per_minute(count: int) -> tuple[float, float]:
    """The (rate per second, burst) of a limit given as "count per minute": a minute's worth may come at once."""
    return count / 60.0, float(count)
