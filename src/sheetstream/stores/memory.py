"""An in-process store kept in dicts: for tests, demos and as the reference the other stores must match.

URL: ``memory://``. Each store starts empty and its content is gone when the process ends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from sheetstream.core import history
from sheetstream.core.model import EMPTY_SNAPSHOT, ChangeSet, Snapshot, VersionedSnapshot
from sheetstream.errors import (
    ApiKeyNotFound,
    ConfigError,
    DeadLetterNotFound,
    SourceNotFound,
    VersionConflict,
)
from sheetstream.stores import dead_letter_records, records
from sheetstream.stores.base import (
    ApiKeyRecord,
    ChangesSince,
    DeadLetter,
    NewDeadLetter,
    NewSource,
    Retention,
    SourceRecord,
    SourceStatus,
    Store,
)


@dataclass
class _Source:
    """Everything the store keeps about one source."""

    id: str
    name: str | None
    kind: str
    config: bytes  # JSON, so callers never share a mutable dict with the store
    poll_interval_s: float
    paused_since: datetime | None
    status: SourceStatus
    created_at: datetime
    updated_at: datetime
    epoch: str
    version: int = 0
    floor: int = history.FIRST_FLOOR
    snapshot: Snapshot = EMPTY_SNAPSHOT
    changes: dict[int, ChangeSet] = field(default_factory=dict)

    def record(self) -> SourceRecord:
        return SourceRecord(
            id=self.id,
            name=self.name,
            kind=self.kind,
            config=orjson.loads(self.config),
            poll_interval_s=self.poll_interval_s,
            status=records.shown_status(self.status, self.paused_since),
            created_at=self.created_at,
            updated_at=self.updated_at,
            epoch=self.epoch,
            version=self.version,
            paused=self.paused_since is not None,
        )


class MemoryStore(Store):
    """Sources and change logs in dicts. Every method runs without awaiting, so each one is atomic."""

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}  # name -> (holder, expires_at)
        self._api_keys: dict[str, ApiKeyRecord] = {}
        self._dead_letters: dict[int, tuple[DeadLetter, str]] = {}  # number -> (letter, payload JSON)
        self._dead_letter_keys: dict[str, int] = {}
        self._dead_letter_seq = 0

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        """A new empty store for ``memory://``."""
        if url.rstrip("/").lower() != "memory:":
            raise ConfigError(f"the memory store takes no location or options: use 'memory://', not {url!r}")
        return cls()

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the content stays until the store is dropped."""

    def _get(self, source_id: str) -> _Source:
        try:
            return self._sources[source_id]
        except KeyError:
            raise SourceNotFound(source_id) from None

    async def create_source(self, new: NewSource, *, now: datetime) -> SourceRecord:
        """Create a source at version 0 with a fresh epoch."""
        source = _Source(
            id=records.new_source_id(),
            name=new.name,
            kind=new.kind,
            config=records.config_json(new.config),
            poll_interval_s=new.poll_interval_s,
            paused_since=now if new.paused else None,
            status=SourceStatus(),
            created_at=now,
            updated_at=now,
            epoch=records.fresh_epoch(),
        )
        self._sources[source.id] = source
        return source.record()

    async def get_source(self, source_id: str) -> SourceRecord:
        """The source; SourceNotFound if absent."""
        return self._get(source_id).record()

    async def list_sources(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[SourceRecord], str | None]:
        """Sources ordered by id after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        after = records.decode_cursor(cursor) if cursor is not None else ""
        ids = sorted(i for i in self._sources if i > after)
        page = [self._sources[i].record() for i in ids[:limit]]
        return page, records.encode_cursor(page[-1].id) if len(ids) > limit else None

    async def update_source(self, source_id: str, changes: dict[str, Any], *, now: datetime) -> SourceRecord:
        """Change `name`, `config`, `poll_interval_s` and/or `paused`; SourceNotFound if absent."""
        records.check_update(changes)
        source = self._get(source_id)
        config = records.config_json(changes["config"]) if "config" in changes else source.config
        source.config = config
        source.name = changes.get("name", source.name)
        source.poll_interval_s = changes.get("poll_interval_s", source.poll_interval_s)
        if "paused" in changes and bool(changes["paused"]) != (source.paused_since is not None):
            source.paused_since = now if changes["paused"] else None
        source.updated_at = now
        return source.record()

    async def delete_source(self, source_id: str) -> None:
        """Delete the source with its snapshot and change log; SourceNotFound if absent."""
        self._get(source_id)
        del self._sources[source_id]

    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        """Record how the last read went."""
        self._get(source_id).status = status

    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        """Store the snapshot and append the change set, then prune the log; the change set's time is `now`."""
        source = self._get(changeset.source)
        try:
            history.check_commit(source.epoch, source.version, changeset)
        except history.CommitRefused as exc:
            raise VersionConflict(source.id, exc.version, exc.head) from exc
        source.version = changeset.version
        source.changes[changeset.version] = changeset
        source.snapshot = snapshot
        floor = history.prune_floor(
            [(v, cs.at) for v, cs in source.changes.items()],
            retention.max_changes,
            retention.max_age_s,
            changeset.at,
        )
        for version in range(source.floor, floor):
            source.changes.pop(version, None)
        source.floor = floor

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        """The latest snapshot with its epoch and version (version 0: nothing read yet, no tabs)."""
        source = self._get(source_id)
        return VersionedSnapshot(source.id, source.epoch, source.version, source.snapshot)

    async def changes_since(
        self, source_id: str, epoch: str, version: int, *, limit: int = 1000
    ) -> ChangesSince:
        """Change sets after `version`, oldest first, at most `limit`; not `recovered` if the log cannot tell."""
        records.check_limit(limit, minimum=0)
        source = self._get(source_id)
        if not history.can_resume(source.epoch, source.version, source.floor, epoch, version):
            return ChangesSince(source.epoch, source.version, recovered=False)
        last = min(source.version, version + limit)
        changes = [source.changes[v] for v in range(version + 1, last + 1)]
        return ChangesSince(source.epoch, source.version, recovered=True, changes=changes)

    async def reset_history(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Start a new epoch at version 0 with an empty snapshot and log."""
        source = self._get(source_id)
        source.epoch = records.fresh_epoch()
        source.version = 0
        source.floor = history.FIRST_FLOOR
        source.snapshot = EMPTY_SNAPSHOT
        source.changes.clear()
        source.updated_at = now
        return source.record()

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew the lease until now + ttl_s if it is free, expired or already `holder`'s."""
        expires_at = records.lease_expiry(now, ttl_s)
        current = self._leases.get(name)
        if current is not None and current[0] != holder and now < current[1]:
            return False
        self._leases[name] = (holder, expires_at)
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        if self._leases.get(name, ("", None))[0] == holder:
            del self._leases[name]

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases whose name starts with `prefix`, as {name: holder}; expired ones are forgotten."""
        matching = {name: lease for name, lease in self._leases.items() if name.startswith(prefix)}
        for name, (_holder, expires_at) in matching.items():
            if expires_at <= now:
                del self._leases[name]
        return {name: holder for name, (holder, expires_at) in matching.items() if now < expires_at}

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; ValueError if its id is taken."""
        if record.id in self._api_keys:
            raise ValueError(f"an API key with id {record.id!r} already exists")
        self._api_keys[record.id] = record

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The key; ApiKeyNotFound if absent."""
        try:
            return self._api_keys[key_id]
        except KeyError:
            raise ApiKeyNotFound(key_id) from None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        return sorted(self._api_keys.values(), key=lambda record: (record.created_at, record.id))

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked at `now` (a revoked key keeps its first time); ApiKeyNotFound if absent."""
        record = await self.get_api_key(key_id)
        if record.revoked_at is None:
            record = self._api_keys[key_id] = dataclasses.replace(record, revoked_at=now)
        return record

    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        """Set a letter aside, failed at `now`; one with the same `key` takes the new error and adds the attempts."""
        new, payload = dead_letter_records.checked(new)
        seq = self._dead_letter_keys.get(new.key)
        if seq is not None:
            old, payload = self._dead_letters[seq]
            letter = dataclasses.replace(
                old, error=new.error, attempts=old.attempts + new.attempts, last_failed_at=now
            )
        else:
            self._dead_letter_seq += 1
            seq = self._dead_letter_seq
            letter = DeadLetter(
                id=str(seq),
                kind=new.kind,
                source=new.source,
                payload={},
                error=new.error,
                attempts=new.attempts,
                first_failed_at=now,
                last_failed_at=now,
                key=new.key,
            )
            self._dead_letter_keys[new.key] = seq
        self._dead_letters[seq] = (letter, payload)
        return dataclasses.replace(letter, payload=orjson.loads(payload))

    async def list_dead_letters(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """Letters newest first after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        before = dead_letter_records.decode_cursor(cursor) if cursor is not None else None
        numbers = sorted((n for n in self._dead_letters if before is None or n < before), reverse=True)
        found = [await self.get_dead_letter(str(n)) for n in numbers[: limit + 1]]
        return dead_letter_records.page(found, limit)

    async def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """The letter; DeadLetterNotFound if absent."""
        try:
            letter, payload = self._dead_letters[dead_letter_records.seq_of(letter_id)]
        except KeyError:
            raise DeadLetterNotFound(letter_id) from None
        return dataclasses.replace(letter, payload=orjson.loads(payload))

    async def delete_dead_letter(self, letter_id: str) -> None:
        """Delete the letter; DeadLetterNotFound if absent."""
        letter = await self.get_dead_letter(letter_id)
        del self._dead_letters[int(letter.id)]
        del self._dead_letter_keys[letter.key]

    async def count_dead_letters(self) -> int:
        """How many letters are set aside."""
        return len(self._dead_letters)
