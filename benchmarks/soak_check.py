"""The soak test's verdict on one client: did it get every version exactly once, in order?

A client's timeline is what the server sent it across all its connections, in the order it arrived:
`("snapshot", V)` for a snapshot at version V and `("change", V)` for a change. The promise (docs/protocol.md)
is that after its first snapshot at S, the changes S+1, S+2, ... arrive exactly once each and in order, across
any number of drops and resumes, up to the source's final version F. `check_timeline` counts every way a
timeline can break it; it is pure, so a test can feed it broken timelines and see each one flagged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

Event = tuple[str, int]
"""("snapshot" | "change", version)."""


@dataclass(slots=True)
class Verdict:
    """How one client's timeline measures up against versions first+1 .. final."""

    first: int | None = None
    """The version of the first snapshot (None: the client never got one)."""
    last: int | None = None
    """The highest version the client holds in order."""
    changes: int = 0
    """Change messages received (duplicates included)."""
    duplicates: int = 0
    """Changes of a version already received."""
    gaps: int = 0
    """Changes that skipped at least one version (the next version expected was not the one that came)."""
    out_of_order: int = 0
    """Changes of a version not yet received but lower than one already received."""
    missing: int = 0
    """Versions in first+1 .. final never received as a change (nor covered by a later snapshot)."""
    beyond_final: int = 0
    """Changes of a version above the final one."""
    resyncs: int = 0
    """Snapshots after the first one: the client was sent a fresh state instead of the missed changes."""
    early_changes: int = 0
    """Changes that arrived before any snapshot."""

    @property
    def ok(self) -> bool:
        """Whether the timeline keeps the promise."""
        return self.first is not None and not any(
            getattr(self, name) for name in COUNTERS if name != "changes"
        )


COUNTERS = tuple(f.name for f in fields(Verdict) if f.name not in ("first", "last"))


def check_timeline(timeline: Iterable[Event], final: int) -> Verdict:
    """The verdict on one client's timeline, given the source's final version."""
    verdict = Verdict()
    received: set[int] = set()
    covered = 0  # every version up to this one is held by a snapshot
    highest = 0  # the highest version received in any way
    for kind, version in timeline:
        if kind == "snapshot":
            if verdict.first is None:
                verdict.first = verdict.last = covered = highest = version
                continue
            verdict.resyncs += 1
            covered = max(covered, version)
            highest = max(highest, version)
            verdict.last = _held_up_to(max(verdict.last or 0, version), received)
            continue
        verdict.changes += 1
        if verdict.first is None:
            verdict.early_changes += 1
            continue
        if version > final:
            verdict.beyond_final += 1
        if version in received or version <= covered:
            verdict.duplicates += 1
            continue
        if version < highest:
            verdict.out_of_order += 1
        elif version > highest + 1:
            verdict.gaps += 1
        received.add(version)
        highest = max(highest, version)
        verdict.last = _held_up_to(verdict.last or 0, received)
    if verdict.first is not None:
        verdict.missing = sum(1 for v in range(covered + 1, final + 1) if v not in received)
    return verdict


def _held_up_to(last: int, received: set[int]) -> int:
    """The highest version reached from `last` through consecutive received versions."""
    while last + 1 in received:
        last += 1
    return last
