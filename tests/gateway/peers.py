"""A connection for driving the hub without sockets: it records what it is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sheetstream.gateways.local import Outgoing


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
        if self.close_code is None:
            self.sent.append(orjson.loads(out.data))
        return True

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        if self.close_code is None:
            self.close_code = code
