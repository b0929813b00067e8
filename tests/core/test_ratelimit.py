"""Token buckets: bursts, the average rate, refusals that take nothing, bounded keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheetstream.core.ratelimit import KeyedBuckets, TokenBucket, per_minute


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after(0.0) == pytest.approx(0.5)
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert not bucket.take(0.5)


def test_a_refusal_takes_nothing_and_the_bucket_never_overfills() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert bucket.take(0.0) and bucket.take(0.0)
    for _ in range(10):
        assert not bucket.take(0.0)
    assert bucket.take(1.0)  # one token came back, refusals did not dig a hole
    assert bucket.retry_after(1000.0) == 0.0
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_time_going_backwards_adds_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0)])
def test_bad_figures_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate, burst)
    with pytest.raises(ValueError, match="rate"):
        KeyedBuckets(rate, burst)


def test_keys_are_limited_apart_and_the_least_recent_forgotten() -> None:
    buckets: KeyedBuckets[str] = KeyedBuckets(rate=1.0, burst=1, max_keys=2)
    assert buckets.take("a", 0.0) and buckets.take("b", 0.0)
    assert not buckets.take("a", 0.0)  # a's bucket is empty; b's is its own
    assert buckets.retry_after("a", 0.0) == pytest.approx(1.0)
    assert buckets.take("c", 0.0)  # a third key: b, the least recently used, is forgotten
    assert len(buckets) == 2
    assert buckets.take("b", 0.0)  # forgotten means full again
    assert not buckets.take("c", 0.0)


def test_per_minute() -> None:
    assert per_minute(120) == (2.0, 120.0)


@given(
    rate=st.floats(0.1, 100), burst=st.integers(1, 50),
    steps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, steps: list[float]) -> None:
    bucket = TokenBucket(rate, burst)
    now, taken = 0.0, 0
    for step in steps:
        now += step
        taken += bucket.take(now)
    assert taken <= burst + rate * now + 1e-9
