"""The versioning and history rules: epochs, the commit fence, retention and resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sheetstream.core.history import (
    FIRST_FLOOR,
    CommitRefused,
    can_resume,
    check_commit,
    expiry_cutoff,
    new_epoch,
    next_version,
    prune_floor,
    retained_floor,
)
from sheetstream.core.model import ChangeSet

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def cs(version: int, epoch: str = "e1") -> ChangeSet:
    return ChangeSet(source="s1", epoch=epoch, version=version, at=T0, ops=())


def log(*versions: int, age_s: float = 0.0) -> list[tuple[int, datetime]]:
    return [(v, T0 - timedelta(seconds=age_s)) for v in versions]


class TestEpoch:
    def test_is_url_safe_and_unpadded(self) -> None:
        epoch = new_epoch(b"\xfb\xff\xfe\x00\x01\x02")
        assert epoch == "-__-AAEC"

    def test_differs_with_the_random_bytes(self) -> None:
        assert new_epoch(b"\x00" * 6) != new_epoch(b"\x01" * 6)

    def test_short_input_is_not_padded(self) -> None:
        assert new_epoch(b"\x00") == "AA"

    def test_needs_randomness(self) -> None:
        with pytest.raises(ValueError, match="random byte"):
            new_epoch(b"")


class TestNextVersion:
    @pytest.mark.parametrize(("head", "expected"), [(0, 1), (1, 2), (41, 42)])
    def test_is_head_plus_one(self, head: int, expected: int) -> None:
        assert next_version(head) == expected

    def test_negative_head_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="negative"):
            next_version(-1)


class TestCheckCommit:
    def test_accepts_head_plus_one(self) -> None:
        check_commit("e1", 0, cs(1))
        check_commit("e1", 7, cs(8))

    @pytest.mark.parametrize("version", [0, 3, 4])
    def test_refuses_a_taken_version(self, version: int) -> None:
        with pytest.raises(CommitRefused, match="already taken") as info:
            check_commit("e1", 4, cs(version))
        assert (info.value.version, info.value.head) == (version, 4)

    def test_refuses_a_gap(self) -> None:
        with pytest.raises(CommitRefused, match="gap") as info:
            check_commit("e1", 4, cs(6))
        assert (info.value.version, info.value.head) == (6, 4)

    def test_refuses_another_epoch(self) -> None:
        with pytest.raises(CommitRefused, match="epoch 'e0'"):
            check_commit("e1", 4, cs(5, epoch="e0"))

    def test_is_a_value_error(self) -> None:
        with pytest.raises(ValueError):
            check_commit("e1", 0, cs(2))


class TestRetainedFloor:
    def test_keeps_everything_within_limits(self) -> None:
        assert retained_floor(head=5, floor=1, max_changes=10, newest_expired=None) == 1

    def test_keeps_the_newest_max_changes(self) -> None:
        assert retained_floor(head=10, floor=1, max_changes=3, newest_expired=None) == 8

    def test_drops_expired_changes(self) -> None:
        assert retained_floor(head=10, floor=1, max_changes=100, newest_expired=6) == 7

    def test_the_stricter_limit_wins(self) -> None:
        assert retained_floor(head=10, floor=1, max_changes=2, newest_expired=6) == 9
        assert retained_floor(head=10, floor=1, max_changes=8, newest_expired=6) == 7

    def test_never_drops_the_newest_change(self) -> None:
        assert retained_floor(head=10, floor=1, max_changes=100, newest_expired=10) == 10
        assert retained_floor(head=10, floor=1, max_changes=0, newest_expired=None) == 10

    def test_never_lowers_the_floor(self) -> None:
        assert retained_floor(head=10, floor=5, max_changes=100, newest_expired=None) == 5


class TestExpiryCutoff:
    def test_is_now_minus_the_age_limit(self) -> None:
        assert expiry_cutoff(T0, 90.0) == T0 - timedelta(seconds=90)

    def test_is_none_beyond_the_calendar(self) -> None:
        assert expiry_cutoff(T0, 1e15) is None


class TestPruneFloor:
    def test_keeps_a_young_short_log(self) -> None:
        assert prune_floor(log(1, 2, 3), 10, 60.0, T0) == 1

    def test_keeps_at_most_max_changes(self) -> None:
        assert prune_floor(log(*range(1, 11)), 4, 60.0, T0) == 7

    def test_counts_from_the_log_floor(self) -> None:
        assert prune_floor(log(5, 6, 7), 10, 60.0, T0) == 5

    def test_drops_changes_older_than_max_age(self) -> None:
        old = log(1, 2, 3, age_s=61.0)
        young = log(4, 5, age_s=59.0)
        assert prune_floor(old + young, 10, 60.0, T0) == 4

    def test_a_change_exactly_max_age_old_is_kept(self) -> None:
        assert prune_floor(log(1, 2, age_s=60.0), 10, 60.0, T0) == 1

    def test_keeps_the_newest_change_however_old(self) -> None:
        assert prune_floor(log(1, 2, 3, age_s=3600.0), 10, 60.0, T0) == 3

    def test_order_of_the_input_does_not_matter(self) -> None:
        entries = log(1, 2, age_s=120.0) + log(3, 4)
        assert prune_floor(list(reversed(entries)), 10, 60.0, T0) == 3

    def test_an_age_limit_beyond_the_calendar_expires_nothing(self) -> None:
        assert prune_floor(log(1, 2, age_s=1e9), 10, 1e15, T0) == 1

    def test_an_empty_log_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            prune_floor([], 10, 60.0, T0)


class TestCanResume:
    # The log holds versions 3..7 of epoch "e1".
    @pytest.mark.parametrize("since", [2, 3, 5, 6, 7])
    def test_resumes_when_the_log_holds_every_later_change(self, since: int) -> None:
        assert can_resume("e1", 7, 3, "e1", since)

    @pytest.mark.parametrize("since", [-1, 0, 1])
    def test_not_when_the_next_change_was_pruned(self, since: int) -> None:
        assert not can_resume("e1", 7, 3, "e1", since)

    def test_not_when_ahead_of_the_head(self) -> None:
        assert not can_resume("e1", 7, 3, "e1", 8)

    def test_not_in_another_epoch(self) -> None:
        assert not can_resume("e1", 7, 3, "e0", 5)

    def test_an_empty_log_at_version_zero_resumes_from_zero(self) -> None:
        assert can_resume("e1", 0, FIRST_FLOOR, "e1", 0)
        assert not can_resume("e1", 0, FIRST_FLOOR, "e1", 1)
