"""Per-minute request quotas, per user and per project, on the emulator's (injectable) clock.

Google refills its Sheets quotas every minute; the emulator counts requests in fixed one-minute windows. A batch
request is one request however many ranges it carries. Requests refused with 429 are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sheetstream.emulator.errors import quota_exceeded

Kind = Literal["Read", "Write"]


@dataclass
class QuotaLimits:
    """Requests allowed per window; 0 turns a limit off."""

    read_per_user: int = 60
    read_per_project: int = 300
    write_per_user: int = 60
    write_per_project: int = 300
    window_s: float = 60.0


class Quotas:
    """Counters for the current window; `charge` raises the 429 ApiError when a limit is reached."""

    def __init__(self, limits: QuotaLimits | None = None) -> None:
        self.limits = limits or QuotaLimits()
        self._window = -1
        self._counts: dict[tuple[str, str], int] = {}
        self.refused = 0

    def configure(self, **changes: Any) -> QuotaLimits:
        """Change limits (read_per_user=..., window_s=...); unknown names raise ValueError."""
        known = asdict(self.limits)
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown quota setting {name!r}; known: {', '.join(known)}")
            setattr(self.limits, name, type(known[name])(value))
        return self.limits

    def reset(self) -> None:
        """Forget the current window's counts."""
        self._counts.clear()

    def used(self, kind: Kind, who: str = "project") -> int:
        """Requests counted in the current window for a user (or "project")."""
        return self._counts.get((kind, who), 0)

    def charge(self, kind: Kind, user: str | None, now: float) -> None:
        """Count one request of `kind` for `user` (None: project only) or raise 429."""
        window = int(now // self.limits.window_s)
        if window != self._window:
            self._window = window
            self._counts.clear()
        per_user = self.limits.read_per_user if kind == "Read" else self.limits.write_per_user
        per_project = self.limits.read_per_project if kind == "Read" else self.limits.write_per_project
        if user is not None and per_user and self._counts.get((kind, user), 0) >= per_user:
            self.refused += 1
            raise quota_exceeded(kind, "user", per_user, "sheets.googleapis.com")
        if per_project and self._counts.get((kind, "project"), 0) >= per_project:
            self.refused += 1
            raise quota_exceeded(kind, "project", per_project, "sheets.googleapis.com")
        if user is not None:
            self._counts[(kind, user)] = self._counts.get((kind, user), 0) + 1
        self._counts[(kind, "project")] = self._counts.get((kind, "project"), 0) + 1
