"""Connections for driving the hub without sockets: they record what they are sent.

`RecordingPeer` takes every message through `push`. `LanePeer` is written to through a `RecordingLane` while it is
direct, as a picows connection is, and keeps the contract that comes with it: when it stops being direct (here:
`fill`), it tells the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sheetstream.gateways.local import Hub, Lane, Outgoing


@dataclass
class RecordingPeer:
    """Records the messages the hub queues to it (until it is closed); `full` makes its queue refuse them."""

    id: str
    full: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None

    def push(self, out: Outgoing) -> bool:
        if self.full:
            return False
        self.record(out)
        return True

    def record(self, out: Outgoing) -> None:
        if self.close_code is None:
            self.sent.append(orjson.loads(out.data))

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        if self.close_code is None:
            self.close_code = code

    def direct(self) -> tuple[Lane, Any] | None:
        return None

    def fill(self, hub: Hub) -> None:
        """From now on its queue is full: the next message it is given closes it as a slow consumer."""
        self.full = True


class RecordingLane:
    """Counts its calls and records each message on every target."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        """How many targets each call wrote to."""

    def send_all(self, targets: list[Any], out: Outgoing) -> None:
        self.calls.append(len(targets))
        for peer in targets:
            peer.record(out)


LANE = RecordingLane()


@dataclass
class LanePeer(RecordingPeer):
    """A `RecordingPeer` that the hub writes to through `LANE` while its queue is not full."""

    def direct(self) -> tuple[Lane, Any] | None:
        return (LANE, self) if not self.full and self.close_code is None else None

    def fill(self, hub: Hub) -> None:
        """Full, so no longer direct: tell the hub, as a picows connection does when its transport pauses."""
        self.full = True
        hub.direct_changed()
