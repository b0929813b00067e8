"""The Store port: data sources, their latest snapshot and versioned change log, leases, REST API keys
and dead letters.

The store is the source of truth: a change exists once `commit` has returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sheetstream.core.model import ChangeSet, Snapshot, VersionedSnapshot

SourceState = Literal["ok", "error", "paused", "pending"]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How a source's last read went: `state`, the error `message` if any, and since when."""

    state: SourceState = "pending"
    message: str | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A configured data source as the store keeps it."""

    id: str
    name: str | None
    kind: str
    config: dict[str, Any]
    poll_interval_s: float
    status: SourceStatus
    created_at: datetime
    updated_at: datetime
    epoch: str
    version: int
    paused: bool = False


@dataclass(frozen=True, slots=True)
class NewSource:
    """What `create_source` needs; the store assigns id, epoch and timestamps."""

    kind: str
    config: dict[str, Any]
    name: str | None = None
    poll_interval_s: float = 5.0
    paused: bool = False


@dataclass(frozen=True, slots=True)
class ChangesSince:
    """Answer of `changes_since`: when `recovered` is False the caller must send a snapshot instead."""

    epoch: str
    version: int
    recovered: bool
    changes: list[ChangeSet] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Retention:
    """How much change history to keep per source: at most `max_changes`, none older than `max_age_s`."""

    max_changes: int = 10_000
    max_age_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A REST API key as the store keeps it: never the key itself, only the SHA-256 of its secret (hex)."""

    id: str
    name: str
    secret_hash: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None = None


DeadLetterKind = Literal["changeset", "hint"]


@dataclass(frozen=True, slots=True)
class NewDeadLetter:
    """What `add_dead_letter` needs: what kept failing, the last error, and how many tries it had."""

    kind: DeadLetterKind
    source: str | None
    payload: dict[str, Any]
    """JSON: the change set (core.codec) or the hint, whatever handling it again needs; never credentials."""
    error: str
    attempts: int
    key: str
    """What failed (a change set's source, epoch and version; a hint's origin and spreadsheet): a second letter
    with the same key updates the first one instead of being added, so one failure is set aside once."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A change set or hint set aside after failing `attempts` times, with its last error."""

    id: str
    kind: DeadLetterKind
    source: str | None
    payload: dict[str, Any]
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    key: str


class Store(ABC):
    """Persistent state of sources and their change logs."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply schema migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def create_source(self, new: NewSource, *, now: datetime) -> SourceRecord:
        """Create a source at version 0 with a fresh epoch."""

    @abstractmethod
    async def get_source(self, source_id: str) -> SourceRecord:
        """The source; SourceNotFound if absent."""

    @abstractmethod
    async def list_sources(self, *, limit: int = 100, cursor: str | None = None) -> tuple[list[SourceRecord], str | None]:
        """Sources ordered by id after `cursor`, and the cursor of the next page (None at the end)."""

    @abstractmethod
    async def update_source(self, source_id: str, changes: dict[str, Any], *, now: datetime) -> SourceRecord:
        """Change `name`, `config`, `poll_interval_s` and/or `paused`; SourceNotFound if absent."""

    @abstractmethod
    async def delete_source(self, source_id: str) -> None:
        """Delete the source with its snapshot and change log; SourceNotFound if absent."""

    @abstractmethod
    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        """Record how the last read went."""

    @abstractmethod
    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        """Atomically store the new snapshot and append the change set, then prune the log by `retention`.

        Raises VersionConflict unless changeset.epoch is the source's epoch and changeset.version is head + 1.
        """

    @abstractmethod
    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        """The latest snapshot with its epoch and version (version 0: nothing read yet, no tabs)."""

    @abstractmethod
    async def changes_since(self, source_id: str, epoch: str, version: int, *, limit: int = 1000) -> ChangesSince:
        """Change sets after `version`, oldest first, at most `limit`.

        `recovered` is False when the epoch differs, `version` is ahead of the head, or the log no longer holds
        version + 1 (pruned by retention): the caller then needs a snapshot.
        """

    @abstractmethod
    async def reset_history(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Start a new epoch at version 0 with an empty snapshot and log (clients will get a fresh snapshot)."""

    # Leases: named claims with an expiry, so that one process at a time does a job (watching a source).
    # A lease is live while `now < expires_at`; an expired lease is free, so a store may forget it at any time.

    @abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew the lease until now + ttl_s if it is free, expired or already `holder`'s; False if not."""

    @abstractmethod
    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it (otherwise do nothing)."""

    @abstractmethod
    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases whose name starts with `prefix`, as {name: holder}."""

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        """`acquire_lease` for many leases at once; the names taken or renewed. Stores override it with one write."""
        return {name for name in sorted(set(names)) if await self.acquire_lease(name, holder, ttl_s, now=now)}

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        """`release_lease` for many leases at once. Stores override it with one write."""
        for name in names:
            await self.release_lease(name, holder)

    # REST API keys (auth/keys.py mints and verifies them; the store only keeps their records).

    @abstractmethod
    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; ValueError if its id is taken."""

    @abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The key; ApiKeyNotFound if absent."""

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""

    @abstractmethod
    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked at `now` (a revoked key keeps its first time); ApiKeyNotFound if absent."""

    # Dead letters: change sets and hints set aside after too many failed tries (runtime/dead_letters.py).

    @abstractmethod
    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        """Set a letter aside, failed at `now`; one with the same `key` takes the new error and adds the attempts."""

    @abstractmethod
    async def list_dead_letters(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """Letters newest first after `cursor`, and the cursor of the next page (None at the end)."""

    @abstractmethod
    async def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """The letter; DeadLetterNotFound if absent."""

    @abstractmethod
    async def delete_dead_letter(self, letter_id: str) -> None:
        """Delete the letter; DeadLetterNotFound if absent."""

    @abstractmethod
    async def count_dead_letters(self) -> int:
        """How many letters are set aside."""
