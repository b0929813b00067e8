"""The scale-out store: PostgreSQL through an asyncpg connection pool, shared by every monitor, gateway and API node.

URL: ``postgresql://user[:password]@host[:port]/database[?schema=NAME&min_size=1&max_size=10]``; see
`postgres_schema` for the options. Tables live in `schema` (default ``sheetstream``), created on `open()`.

Each write is one transaction. `commit` is fenced on the head version (``UPDATE ... WHERE version = head``), so of
two writers of one version exactly one wins, whichever node they run on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any

import asyncpg

from sheetstream.core import codec, history
from sheetstream.core.model import EMPTY_SNAPSHOT, ChangeSet, Snapshot, VersionedSnapshot
from sheetstream.errors import ApiKeyNotFound, ConfigError, SourceNotFound, StoreError, VersionConflict
from sheetstream.stores import records
from sheetstream.stores.base import (
    ApiKeyRecord,
    ChangesSince,
    NewSource,
    Retention,
    SourceRecord,
    SourceStatus,
    Store,
)
from sheetstream.stores.postgres_dead_letters import PostgresDeadLetters
from sheetstream.stores.postgres_errors import CONNECTION_ERRORS, translated
from sheetstream.stores.postgres_schema import PostgresUrl, bundled_migrations, migrate, parse_url


def _rowcount(status: str) -> int:
    """Rows touched, from a command status such as 'UPDATE 1'."""
    return int(status.rsplit(" ", 1)[-1])


def _name(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; say so instead of failing as if the server were broken.
    if value is not None and "\x00" in value:
        raise ConfigError("a source name cannot contain the NUL character")
    return value


def _record(row: Any) -> SourceRecord:
    return records.record_from_row(row, lambda at: at)


def _api_key(row: Any) -> ApiKeyRecord:
    return records.api_key_from_row(row, lambda at: at)


def _changeset(source_id: str, epoch: str, row: Any) -> ChangeSet:
    return ChangeSet(
        source=source_id,
        epoch=epoch,
        version=row["version"],
        at=row["at"],
        ops=records.ops_from_json(row["ops"]),
    )


class PostgresStore(PostgresDeadLetters, Store):
    """Sources, snapshots, change logs and leases in a PostgreSQL schema."""

    def __init__(self, url: PostgresUrl, *, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._pool: Any = None

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """The store for ``postgresql://user@host:port/database?schema=NAME``."""
        return cls(parse_url(url))

    # --- connections ------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self, action: str) -> AsyncIterator[Any]:
        """A pooled connection; errors in the block are translated too."""
        if self._pool is None:
            raise StoreError(f"PostgreSQL store {self.url.where} is not open: call open() first")
        with translated(self.url, action):
            async with self._pool.acquire() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self, action: str, **options: Any) -> AsyncIterator[Any]:
        """A pooled connection in one transaction, rolled back if the block raises."""
        async with self._connection(action) as conn, conn.transaction(**options):
            yield conn

    async def open(self) -> None:
        """Connect the pool, create the schema if missing and apply migrations; StoreError if unreachable."""
        if self._pool is not None:
            return
        with translated(self.url, "connecting"):
            pool = await asyncpg.create_pool(
                self.url.dsn,
                min_size=self.url.min_size,
                max_size=self.url.max_size,
                timeout=self.connect_timeout_s,
                server_settings={"search_path": self.url.schema, "application_name": "sheetstream"},
            )
        try:
            with translated(self.url, "applying schema migrations"):
                async with pool.acquire() as conn:
                    await migrate(conn, self.url.schema, bundled_migrations())
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def close(self) -> None:
        """Close the pool, waiting briefly for connections in use."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except (TimeoutError, *CONNECTION_ERRORS):
            pool.terminate()

    # --- sources ----------------------------------------------------------------------------------------------

    async def create_source(self, new: NewSource, *, now: datetime) -> SourceRecord:
        """Create a source at version 0 with a fresh epoch."""
        config = records.config_json(new.config).decode()
        async with self._connection("creating a source") as conn:
            row = await conn.fetchrow(
                "INSERT INTO sources (id, name, kind, config, poll_interval_s, paused, paused_since,"
                " created_at, updated_at, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING *",
                records.new_source_id(),
                _name(new.name),
                new.kind,
                config,
                new.poll_interval_s,
                new.paused,
                now if new.paused else None,
                now,
                records.fresh_epoch(),
            )
        return _record(row)

    async def get_source(self, source_id: str) -> SourceRecord:
        """The source; SourceNotFound if absent."""
        async with self._connection("reading a source") as conn:
            row = await conn.fetchrow("SELECT * FROM sources WHERE id = $1", source_id)
        if row is None:
            raise SourceNotFound(source_id)
        return _record(row)

    async def list_sources(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[SourceRecord], str | None]:
        """Sources ordered by id after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        after = records.decode_cursor(cursor) if cursor is not None else ""
        async with self._connection("listing sources") as conn:
            rows = await conn.fetch(
                "SELECT * FROM sources WHERE id > $1 ORDER BY id LIMIT $2", after, limit + 1
            )
        found = [_record(row) for row in rows]
        if len(found) > limit:
            return found[:limit], records.encode_cursor(found[limit - 1].id)
        return found, None

    async def update_source(self, source_id: str, changes: dict[str, Any], *, now: datetime) -> SourceRecord:
        """Change `name`, `config`, `poll_interval_s` and/or `paused`; SourceNotFound if absent."""
        records.check_update(changes)
        columns: dict[str, Any] = {"updated_at": now, **records.updated_columns(changes)}
        if "config" in columns:
            columns["config"] = columns["config"].decode()
        if "name" in columns:
            _name(columns["name"])
        values = [source_id, *columns.values()]
        # Column names come from the fixed set above; values are parameters $2, $3 ...
        assignments = [f"{name} = ${n}" for n, name in enumerate(columns, start=2)]
        if "paused" in changes:
            values += [bool(changes["paused"]), now]
            p, since = f"${len(values) - 1}", f"${len(values)}"
            # paused_since moves only when the state flips, so re-pausing keeps the original time.
            assignments += [
                f"paused_since = CASE WHEN {p} = paused THEN paused_since WHEN {p} THEN {since}::timestamptz END",
                f"paused = {p}",
            ]
        async with self._connection("updating a source") as conn:
            row = await conn.fetchrow(
                f"UPDATE sources SET {', '.join(assignments)} WHERE id = $1 RETURNING *", *values
            )
        if row is None:
            raise SourceNotFound(source_id)
        return _record(row)

    async def delete_source(self, source_id: str) -> None:
        """Delete the source with its snapshot and change log (by cascade); SourceNotFound if absent."""
        async with self._connection("deleting a source") as conn:
            status = await conn.execute("DELETE FROM sources WHERE id = $1", source_id)
        if _rowcount(status) != 1:
            raise SourceNotFound(source_id)

    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        """Record how the last read went."""
        # An error message may quote raw input; PostgreSQL text cannot hold NUL.
        message = None if status.message is None else status.message.replace("\x00", "\ufffd")
        async with self._connection("recording a source's status") as conn:
            result = await conn.execute(
                "UPDATE sources SET status_state = $1, status_message = $2, status_since = $3 WHERE id = $4",
                status.state,
                message,
                status.since,
                source_id,
            )
        if _rowcount(result) != 1:
            raise SourceNotFound(source_id)

    # --- history ----------------------------------------------------------------------------------------------

    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        """Store the snapshot and append the change set in one transaction, then prune the log.

        The change set's `at` is the time retention measures ages against.
        """
        cs = changeset
        ops, tabs = records.ops_json(cs.ops), codec.encode_snapshot(snapshot)
        async with self._transaction(f"committing version {cs.version} of source {cs.source!r}") as conn:
            # The fence: only the writer that still sees the head it read moves it. A concurrent writer of
            # the same version waits for the row lock, then finds the version moved and updates nothing.
            log_floor = await conn.fetchval(
                "UPDATE sources SET version = $1 WHERE id = $2 AND epoch = $3 AND version = $4"
                " RETURNING log_floor",
                cs.version,
                cs.source,
                cs.epoch,
                cs.version - 1,
            )
            if log_floor is None:
                await self._refuse(conn, cs)
            await conn.execute(
                "INSERT INTO changes (source_id, epoch, version, at, ops) VALUES ($1, $2, $3, $4, $5)",
                cs.source,
                cs.epoch,
                cs.version,
                cs.at,
                ops,
            )
            await conn.execute(
                "INSERT INTO snapshots (source_id, tabs) VALUES ($1, $2)"
                " ON CONFLICT (source_id) DO UPDATE SET tabs = excluded.tabs",
                cs.source,
                tabs,
            )
            await self._prune(conn, cs, log_floor, retention)

    @staticmethod
    async def _refuse(conn: Any, cs: ChangeSet) -> None:
        """Raise why the fence refused `cs`: SourceNotFound or VersionConflict."""
        head = await conn.fetchrow("SELECT epoch, version FROM sources WHERE id = $1", cs.source)
        if head is None:
            raise SourceNotFound(cs.source)
        try:
            history.check_commit(head["epoch"], head["version"], cs)
        except history.CommitRefused as exc:
            raise VersionConflict(cs.source, exc.version, exc.head) from exc
        raise VersionConflict(cs.source, cs.version, head["version"])

    @staticmethod
    async def _prune(conn: Any, cs: ChangeSet, log_floor: int, retention: Retention) -> None:
        """Raise the log's floor by `retention` (core.history's rules) and delete what falls below it."""
        cutoff = history.expiry_cutoff(cs.at, retention.max_age_s)
        newest_expired = None
        if cutoff is not None:
            newest_expired = await conn.fetchval(
                "SELECT MAX(version) FROM changes WHERE source_id = $1 AND epoch = $2 AND at < $3",
                cs.source,
                cs.epoch,
                cutoff,
            )
        floor = history.retained_floor(cs.version, log_floor, retention.max_changes, newest_expired)
        if floor > log_floor:
            await conn.execute(
                "DELETE FROM changes WHERE source_id = $1 AND epoch = $2 AND version < $3",
                cs.source,
                cs.epoch,
                floor,
            )
            await conn.execute("UPDATE sources SET log_floor = $1 WHERE id = $2", floor, cs.source)

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        """The latest snapshot with its epoch and version (version 0: nothing read yet, no tabs)."""
        async with self._connection(f"reading the snapshot of source {source_id!r}") as conn:
            row = await conn.fetchrow(
                "SELECT s.epoch, s.version, n.tabs FROM sources s LEFT JOIN snapshots n ON n.source_id = s.id"
                " WHERE s.id = $1",
                source_id,
            )
        if row is None:
            raise SourceNotFound(source_id)
        tabs = EMPTY_SNAPSHOT if row["tabs"] is None else codec.decode_snapshot(row["tabs"])
        return VersionedSnapshot(source_id, row["epoch"], row["version"], tabs)

    async def changes_since(
        self, source_id: str, epoch: str, version: int, *, limit: int = 1000
    ) -> ChangesSince:
        """Change sets after `version`, oldest first, at most `limit`; not `recovered` if the log cannot tell."""
        records.check_limit(limit, minimum=0)
        # Head and log from one moment, even while another node commits.
        action = f"reading the changes of source {source_id!r}"
        async with self._transaction(action, isolation="repeatable_read", readonly=True) as conn:
            head = await conn.fetchrow(
                "SELECT epoch, version, log_floor FROM sources WHERE id = $1", source_id
            )
            if head is None:
                raise SourceNotFound(source_id)
            if not history.can_resume(head["epoch"], head["version"], head["log_floor"], epoch, version):
                return ChangesSince(head["epoch"], head["version"], recovered=False)
            rows = await conn.fetch(
                "SELECT version, at, ops FROM changes WHERE source_id = $1 AND epoch = $2 AND version > $3"
                " ORDER BY version LIMIT $4",
                source_id,
                epoch,
                version,
                limit,
            )
        changes = [_changeset(source_id, epoch, row) for row in rows]
        return ChangesSince(head["epoch"], head["version"], recovered=True, changes=changes)

    async def reset_history(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Start a new epoch at version 0 with an empty snapshot and log."""
        async with self._transaction(f"resetting the history of source {source_id!r}") as conn:
            row = await conn.fetchrow(
                "UPDATE sources SET epoch = $1, version = 0, log_floor = $2, updated_at = $3 WHERE id = $4"
                " RETURNING *",
                records.fresh_epoch(),
                history.FIRST_FLOOR,
                now,
                source_id,
            )
            if row is None:
                raise SourceNotFound(source_id)
            await conn.execute("DELETE FROM changes WHERE source_id = $1", source_id)
            await conn.execute("DELETE FROM snapshots WHERE source_id = $1", source_id)
        return _record(row)

    # --- leases -----------------------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew the lease until now + ttl_s if it is free, expired or already `holder`'s."""
        return name in await self.acquire_leases([name], holder, ttl_s, now=now)

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        """`acquire_lease` for many leases in one statement; the names taken or renewed."""
        expires_at = records.lease_expiry(now, ttl_s)
        if not names:
            return set()
        async with self._connection(f"taking {len(names)} leases") as conn:
            # One atomic upsert: of concurrent takers of a free lease, one inserts and the others find it held.
            # Rows are locked in name order, so two nodes taking overlapping sets wait for each other, never deadlock.
            rows = await conn.fetch(
                "INSERT INTO leases (name, holder, expires_at)"
                " SELECT name, $2, $3 FROM unnest($1::text[]) AS name ORDER BY name"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= $4"
                " RETURNING name",
                sorted(set(names)),
                holder,
                expires_at,
                now,
            )
        return {row["name"] for row in rows}

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        await self.release_leases([name], holder)

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        """`release_lease` for many leases in one statement."""
        async with self._connection(f"releasing {len(names)} leases") as conn:
            await conn.execute(
                "DELETE FROM leases WHERE name = ANY($1::text[]) AND holder = $2", list(names), holder
            )

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases whose name starts with `prefix`, as {name: holder}; expired ones are deleted."""
        async with self._connection(f"reading leases {prefix!r}") as conn:
            # SKIP LOCKED: sweeping expired leases never waits for, nor deadlocks with, another node's sweep.
            rows = await conn.fetch(
                "WITH swept AS (DELETE FROM leases WHERE name IN (SELECT name FROM leases"
                " WHERE starts_with(name, $1) AND expires_at <= $2 FOR UPDATE SKIP LOCKED))"
                " SELECT name, holder FROM leases WHERE starts_with(name, $1) AND expires_at > $2",
                prefix,
                now,
            )
        return {row["name"]: row["holder"] for row in rows}

    # --- API keys ---------------------------------------------------------------------------------------------

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; ValueError if its id is taken."""
        async with self._connection("creating an API key") as conn:
            status = await conn.execute(
                "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, revoked_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                record.id,
                record.name,
                record.secret_hash,
                records.scopes_text(record.scopes),
                record.created_at,
                record.revoked_at,
            )
        if _rowcount(status) != 1:
            raise ValueError(f"an API key with id {record.id!r} already exists")

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The key; ApiKeyNotFound if absent."""
        async with self._connection("reading an API key") as conn:
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
        if row is None:
            raise ApiKeyNotFound(key_id)
        return _api_key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        async with self._connection("listing API keys") as conn:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at, id")
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked at `now` (a revoked key keeps its first time); ApiKeyNotFound if absent."""
        async with self._connection("revoking an API key") as conn:
            row = await conn.fetchrow(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING *", key_id, now
            )
        if row is None:
            raise ApiKeyNotFound(key_id)
        return _api_key(row)
