"""Fault injection: added latency, a random error rate, and forced answers for the next N matching requests.

Configured at run time through `POST /emulator/v1/faults` or directly from tests (`state.faults.configure(...)`).
Only the emulated Google APIs are affected, never the admin endpoints.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultSettings:
    """What to inject. `match` is a regular expression searched in the request path (None: every path)."""

    error_rate: float = 0.0
    error_codes: list[int] = field(default_factory=lambda: [500, 503, 429])
    latency_s: float = 0.0
    hang_rate: float = 0.0
    hang_s: float = 30.0
    match: str | None = None


@dataclass
class Forced:
    """Answer `status` to the next `count` requests whose path matches."""

    status: int
    count: int = 1
    match: str | None = None


@dataclass
class Decision:
    """What to do to one request: wait this long, then answer with this status (None: serve normally)."""

    delay_s: float = 0.0
    status: int | None = None


class Faults:
    """The current fault settings and forced answers; `decide` is called once per API request."""

    def __init__(self, seed: int | None = None) -> None:
        self.settings = FaultSettings()
        self.forced: list[Forced] = []
        self.injected = 0
        self._rng = random.Random(seed)

    def configure(self, **changes: Any) -> FaultSettings:
        """Change settings (error_rate=0.2, latency_s=0.1, ...); `fail_next` entries add forced answers."""
        known = asdict(self.settings)
        for item in changes.pop("fail_next", None) or []:
            self.fail_next(**item)
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join([*known, 'fail_next'])}")
            if name == "match" and value is not None:
                re.compile(value)
            if name in ("error_rate", "hang_rate") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self.settings, name, value)
        return self.settings

    def fail_next(self, status: int, count: int = 1, match: str | None = None) -> None:
        """Answer `status` to the next `count` matching requests."""
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error code, got {status}")
        if match is not None:
            re.compile(match)
        self.forced.append(Forced(int(status), int(count), match))

    def reset(self) -> None:
        """No faults."""
        self.settings = FaultSettings()
        self.forced.clear()

    def describe(self) -> dict[str, Any]:
        """Settings and pending forced answers, for the admin endpoint."""
        return {
            **asdict(self.settings),
            "fail_next": [asdict(f) for f in self.forced],
            "injected": self.injected,
        }

    def decide(self, path: str) -> Decision:
        """The fault (if any) for a request to `path`."""
        for forced in self.forced:
            if forced.match is None or re.search(forced.match, path):
                forced.count -= 1
                if forced.count <= 0:
                    self.forced.remove(forced)
                self.injected += 1
                return Decision(self.settings.latency_s, forced.status)
        s = self.settings
        if s.match is not None and not re.search(s.match, path):
            return Decision()
        if s.hang_rate and self._rng.random() < s.hang_rate:
            self.injected += 1
            return Decision(s.hang_s, 503)
        if s.error_rate and s.error_codes and self._rng.random() < s.error_rate:
            self.injected += 1
            return Decision(s.latency_s, self._rng.choice(s.error_codes))
        return Decision(s.latency_s)
