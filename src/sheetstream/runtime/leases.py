"""Leases that give each source to exactly one of several monitors, spread across the monitors that are alive.

Every monitor heartbeats the lease ``monitor:<holder>`` and holds ``source:<id>`` for each source it watches, all
with the same ttl and renewed every ttl/3 (`SourceClaims.renew`, called by the monitor). A source belongs to the
live monitor that rendezvous hashing of its id picks (`owner`): that monitor takes its lease once it is free, and
a monitor holding a source that hashes to another live monitor gives it up. When a monitor dies, its heartbeat
and source leases expire and the survivors share its sources; when one joins, it gets its share.

Leases stop monitors from doing the same work twice; correctness does not rest on them. A monitor that stalls
past its ttl and still commits is refused by the store's version fence (VersionConflict), so versions never fork.
Holders compare their own clock with expiry times, so monitors' clocks must agree to well within the ttl (NTP).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from sheetstream.errors import SheetstreamError

log = structlog.get_logger("sheetstream.leases")

MONITOR_PREFIX = "monitor:"
SOURCE_PREFIX = "source:"
DEFAULT_TTL_S = 10.0


class LeaseStore(Protocol):
    """The lease part of the Store port."""

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew the lease until now + ttl_s if it is free, expired or already `holder`'s."""
        ...

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        """`acquire_lease` for many leases at once; the names taken or renewed."""
        ...

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        """Give up those of the leases `holder` holds."""
        ...

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases whose name starts with `prefix`, as {name: holder}."""
        ...


class LeaseLost(SheetstreamError):
    """This monitor no longer holds the lease of a source it was watching, so it must not commit for it."""

    def __init__(self, source_id: str) -> None:
        super().__init__(f"lost the lease of source {source_id!r}: another monitor watches it now")
        self.source_id = source_id


def default_holder() -> str:
    """A holder id unique to this process: hostname-pid-random."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _score(holder: str, source_id: str) -> bytes:
    return hashlib.blake2b(f"{holder}\x00{source_id}".encode(), digest_size=8).digest()


def owner(source_id: str, holders: Iterable[str]) -> str | None:
    """The holder rendezvous hashing gives `source_id` to (None if there is none).

    Every monitor computes the same answer from the same holders, and when a holder leaves or joins only the
    sources it owns (or will own) move.
    """
    return max(holders, key=lambda holder: (_score(holder, source_id), holder), default=None)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SourceClaims:
    """One monitor's membership: its heartbeat lease and the source leases it holds."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        holder: str | None = None,
        ttl_s: float = DEFAULT_TTL_S,
        renew_every_s: float | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s!r}")
        self.store = store
        self.holder = holder or default_holder()
        self.ttl_s = ttl_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else ttl_s / 3
        self.clock = clock
        self.monitors: tuple[str, ...] = ()
        """The live monitors seen by the last round, this one included."""
        self.rounds = 0
        """Rounds completed."""
        self._held: dict[str, datetime] = {}  # source id -> when its lease expires, as this monitor knows it

    @property
    def held(self) -> frozenset[str]:
        """The sources whose leases this monitor took or renewed in its last round."""
        return frozenset(self._held)

    def holds(self, source_id: str) -> bool:
        """Whether this monitor still holds the source's lease by its own clock (so it may commit for it)."""
        expires_at = self._held.get(source_id)
        return expires_at is not None and self.clock() < expires_at

    async def renew(self, source_ids: Iterable[str]) -> frozenset[str]:
        """One round: heartbeat, then renew, take or give up source leases; the sources held afterwards.

        `source_ids` are the sources to watch (active ones). Leases of sources not among them are released.
        """
        now = self.clock()
        expires_at = now + timedelta(seconds=self.ttl_s)
        # Renewing our own heartbeat always succeeds: the holder id is ours alone.
        await self.store.acquire_lease(MONITOR_PREFIX + self.holder, self.holder, self.ttl_s, now=now)
        monitors = await self.store.lease_holders(MONITOR_PREFIX, now=now)
        self.monitors = tuple(sorted({*monitors.values(), self.holder}))
        taken = {
            name.removeprefix(SOURCE_PREFIX): holder
            for name, holder in (await self.store.lease_holders(SOURCE_PREFIX, now=now)).items()
        }
        wanted = set(source_ids)
        take: list[str] = []
        give_up = [
            s for s, holder in taken.items() if holder == self.holder and s not in wanted
        ]  # deleted, paused
        for source_id in wanted:
            current = taken.get(source_id)
            if owner(source_id, self.monitors) == self.holder:
                # Ours by hashing: renew it, or take it if free. Another monitor's live lease is left alone until
                # that monitor sees it should hand the source over.
                if current in (None, self.holder):
                    take.append(SOURCE_PREFIX + source_id)
            elif current == self.holder:
                give_up.append(source_id)  # another live monitor's by hashing: hand it over now
        if give_up:
            await self.store.release_leases([SOURCE_PREFIX + s for s in give_up], self.holder)
        got = await self.store.acquire_leases(take, self.holder, self.ttl_s, now=now) if take else set()
        before = set(self._held)
        self._held = {name.removeprefix(SOURCE_PREFIX): expires_at for name in got}
        after = set(self._held)
        if after != before:
            log.info(
                "source leases changed",
                holder=self.holder,
                monitors=len(self.monitors),
                held=len(after),
                gained=len(after - before),
                gave_up_or_lost=len(before - after),
            )
        self.rounds += 1
        return self.held

    async def release_all(self) -> None:
        """Give up every lease this monitor holds, so the others take its sources at their next round."""
        held, self._held = sorted(self._held), {}
        await self.store.release_leases(
            [*(SOURCE_PREFIX + s for s in held), MONITOR_PREFIX + self.holder], self.holder
        )
