"""Connection tokens over time: at a token's `exp` the hub warns the client, after a grace period it closes it.

`TokenTimers` keeps, for each connection admitted with a token, its grant and ONE timer: first until the token's
`exp` (then it calls `expired`), then `grace_s` more (then `lapsed`, unless a fresh token was `watch`ed
meanwhile). Connections without a token (anonymous ones) have no entry and no timer, so idle connections cost
nothing here.

    timers = TokenTimers(30.0, expired=warn_client, lapsed=close_with_4001)
    timers.watch("c1", grant)  # at admission, and again for each fresh token
    timers.forget("c1")        # the connection closed
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sheetstream.auth.tokens import Grant


@dataclass(slots=True)
class _Watch:
    grant: Grant
    timer: asyncio.TimerHandle


class TokenTimers:
    """The grants of a hub's connections that have a token, with the timer of each one's expiry."""

    def __init__(
        self,
        grace_s: float,
        expired: Callable[[str, Grant], None],
        lapsed: Callable[[str, Grant], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grace_s = grace_s
        self._expired = expired
        self._lapsed = lapsed
        self._clock = clock
        self._watches: dict[str, _Watch] = {}

    def watch(self, conn_id: str, grant: Grant) -> None:
        """Time the expiry of the connection's (new) grant, forgetting its previous one."""
        self.forget(conn_id)
        if grant.expires_at is None:
            return
        delay = max(0.0, grant.expires_at - self._clock())
        timer = asyncio.get_running_loop().call_later(delay, self._expire, conn_id)
        self._watches[conn_id] = _Watch(grant, timer)

    def forget(self, conn_id: str) -> None:
        """Stop timing the connection's token (it closed)."""
        watch = self._watches.pop(conn_id, None)
        if watch is not None:
            watch.timer.cancel()

    def subject(self, conn_id: str) -> str:
        """Who holds the connection, for log lines (never the token itself)."""
        watch = self._watches.get(conn_id)
        return watch.grant.subject if watch is not None else "anonymous"

    def __len__(self) -> int:
        return len(self._watches)

    def _expire(self, conn_id: str) -> None:
        watch = self._watches.get(conn_id)
        if watch is None:
            return
        watch.timer = asyncio.get_running_loop().call_later(self.grace_s, self._lapse, conn_id)
        self._expired(conn_id, watch.grant)

    def _lapse(self, conn_id: str) -> None:
        watch = self._watches.pop(conn_id, None)
        if watch is not None:
            self._lapsed(conn_id, watch.grant)
