"""Versioning and history rules of a source's change log, shared by every store.

A source's history is an `epoch` (a random name, changed only when history is reset) and a `head` version
(0 before the first change). Each commit appends version head + 1. The log keeps the versions `floor..head`
(empty when floor == head + 1, as at version 0); retention raises the floor but never past the head, so the
newest change is always kept and a client one version behind can always resume.

Pure: randomness and time are passed in.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime, timedelta

from sheetstream.core.model import ChangeSet

FIRST_FLOOR = 1
"""The floor of an empty log at version 0: the log holds 1..0, nothing."""


class CommitRefused(ValueError):
    """A change set does not follow the head of its source's history (the store reports a VersionConflict)."""

    def __init__(self, reason: str, *, version: int, head: int) -> None:
        super().__init__(reason)
        self.version = version
        self.head = head


def new_epoch(rand_bytes: bytes) -> str:
    """A short url-safe epoch name made from `rand_bytes` (pass e.g. os.urandom(6))."""
    if not rand_bytes:
        raise ValueError("an epoch needs at least one random byte")
    return base64.urlsafe_b64encode(rand_bytes).rstrip(b"=").decode("ascii")


def next_version(head: int) -> int:
    """The version the next commit after `head` must carry."""
    if head < 0:
        raise ValueError(f"head version cannot be negative: {head}")
    return head + 1


def check_commit(epoch: str, head: int, cs: ChangeSet) -> None:
    """Raise CommitRefused unless `cs` is in `epoch` and carries version head + 1."""
    if cs.epoch != epoch:
        raise CommitRefused(
            f"change set is in epoch {cs.epoch!r} but the source is in epoch {epoch!r}",
            version=cs.version,
            head=head,
        )
    expected = next_version(head)
    if cs.version != expected:
        taken = "is already taken" if cs.version <= head else "leaves a gap"
        raise CommitRefused(
            f"version {cs.version} {taken}: the head is {head}, the next version is {expected}",
            version=cs.version,
            head=head,
        )


def retained_floor(head: int, floor: int, max_changes: int, newest_expired: int | None) -> int:
    """The new floor of a log holding `floor..head` after retention.

    `newest_expired` is the highest version older than the age limit (None if none is). At most `max_changes`
    changes are kept and none that is too old, except the newest change, which is always kept.
    """
    by_count = head - max(max_changes, 1) + 1
    by_age = FIRST_FLOOR if newest_expired is None else newest_expired + 1
    return max(floor, min(max(by_count, by_age), head))


def expiry_cutoff(now: datetime, max_age_s: float) -> datetime | None:
    """Changes committed before this time are too old to keep; None when no time is that far back."""
    try:
        return now - timedelta(seconds=max_age_s)
    except OverflowError:
        return None


def prune_floor(
    versions_and_times: Sequence[tuple[int, datetime]], max_changes: int, max_age_s: float, now: datetime
) -> int:
    """The lowest version to keep of a non-empty log (its contiguous versions with their commit times)."""
    if not versions_and_times:
        raise ValueError("an empty log has nothing to prune")
    versions = [v for v, _ in versions_and_times]
    cutoff = expiry_cutoff(now, max_age_s)
    expired = [v for v, at in versions_and_times if cutoff is not None and at < cutoff]
    return retained_floor(max(versions), min(versions), max_changes, max(expired) if expired else None)


def can_resume(epoch: str, head: int, floor: int, since_epoch: str, since_version: int) -> bool:
    """Whether a log holding `floor..head` of `epoch` has every change after (`since_epoch`, `since_version`).

    True when the epochs match and floor - 1 <= since_version <= head (since_version == head: nothing to send).
    """
    return since_epoch == epoch and floor - 1 <= since_version <= head
