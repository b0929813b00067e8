"""The embedded store: one SQLite file in WAL mode, driven by the standard library's sqlite3.

URL: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (four slashes) or ``sqlite:///:memory:``
(a private in-process database, gone on close).

One connection serves the store, used only from one worker thread, so the event loop never waits on the disk
and statements never interleave. Several processes may share the file: writes take SQLite's write lock
(``BEGIN IMMEDIATE``) and the commit is fenced on the head version.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

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
from sheetstream.stores.sqlite_dead_letters import SqliteDeadLetters
from sheetstream.stores.sqlite_schema import bundled_migrations, migrate

T = TypeVar("T")
_PREFIX = "sqlite:///"


def _ts(at: datetime) -> str:
    # Fixed-width UTC text sorts like the times it stands for, which the retention query relies on.
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Run the block in one transaction: IMMEDIATE for writes, plain BEGIN for a consistent multi-statement read."""
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself on some errors (disk full)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _record(row: sqlite3.Row) -> SourceRecord:
    return records.record_from_row(row, datetime.fromisoformat)


def _head(conn: sqlite3.Connection, source_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = conn.execute(
        "SELECT epoch, version, log_floor FROM sources WHERE id = ?", (source_id,)
    ).fetchone()
    if row is None:
        raise SourceNotFound(source_id)
    return row


def _get(conn: sqlite3.Connection, source_id: str) -> SourceRecord:
    row = conn.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()
    if row is None:
        raise SourceNotFound(source_id)
    return _record(row)


class SqliteStore(SqliteDeadLetters, Store):
    """Sources, snapshots and change logs in one SQLite database file."""

    def __init__(self, path: str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        """The store for ``sqlite:///path``."""
        if url[: len(_PREFIX)].lower() != _PREFIX or len(url) == len(_PREFIX) or "?" in url:
            raise ConfigError(
                f"bad SQLite store URL {url!r}: use sqlite:///relative/path.db, sqlite:////absolute/path.db "
                "or sqlite:///:memory:"
            )
        return cls(url[len(_PREFIX) :])

    # --- connection and worker thread -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, so every transaction is one we open, with the mode we choose.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # WAL + synchronous=NORMAL syncs the log only at checkpoints: a committed transaction survives the
            # process dying (kill -9), as the WAL is already in the OS's hands; only an OS crash or power loss may
            # lose the last commits. That is SQLite's recommended pairing for WAL, and what the kill -9 test checks.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, bundled_migrations())
        except BaseException:
            conn.close()
            raise
        return conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) on the worker thread, translating SQLite's errors into StoreError."""
        if self._conn is None or self._executor is None:
            raise StoreError(f"SQLite store {self.path!r} is not open: call open() first")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, self._conn, *args))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    async def open(self) -> None:
        """Open the database file and apply schema migrations."""
        if self._conn is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except sqlite3.Error as exc:
            executor.shutdown(wait=False)
            raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def close(self) -> None:
        """Close the connection and stop the worker thread."""
        if self._conn is None or self._executor is None:
            return
        conn, executor = self._conn, self._executor
        self._conn = self._executor = None
        await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        executor.shutdown(wait=False)

    # --- sources ----------------------------------------------------------------------------------------------

    async def create_source(self, new: NewSource, *, now: datetime) -> SourceRecord:
        """Create a source at version 0 with a fresh epoch."""
        config = records.config_json(new.config)
        source_id, epoch = records.new_source_id(), records.fresh_epoch()

        def insert(conn: sqlite3.Connection) -> SourceRecord:
            with _transaction(conn):
                conn.execute(
                    "INSERT INTO sources (id, name, kind, config, poll_interval_s, paused, paused_since,"
                    " created_at, updated_at, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        source_id,
                        new.name,
                        new.kind,
                        config,
                        new.poll_interval_s,
                        new.paused,
                        _ts(now) if new.paused else None,
                        _ts(now),
                        _ts(now),
                        epoch,
                    ),
                )
                return _get(conn, source_id)

        return await self._run(insert)

    async def get_source(self, source_id: str) -> SourceRecord:
        """The source; SourceNotFound if absent."""
        return await self._run(_get, source_id)

    async def list_sources(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[SourceRecord], str | None]:
        """Sources ordered by id after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        after = records.decode_cursor(cursor) if cursor is not None else ""

        def page(conn: sqlite3.Connection) -> list[SourceRecord]:
            rows = conn.execute("SELECT * FROM sources WHERE id > ? ORDER BY id LIMIT ?", (after, limit + 1))
            return [_record(row) for row in rows]

        found = await self._run(page)
        if len(found) > limit:
            return found[:limit], records.encode_cursor(found[limit - 1].id)
        return found, None

    async def update_source(self, source_id: str, changes: dict[str, Any], *, now: datetime) -> SourceRecord:
        """Change `name`, `config`, `poll_interval_s` and/or `paused`; SourceNotFound if absent."""
        records.check_update(changes)
        columns: dict[str, Any] = {"updated_at": _ts(now), **records.updated_columns(changes)}
        assignments = ", ".join(f"{name} = :{name}" for name in columns)  # names from the fixed set above
        if "paused" in changes:
            # paused_since moves only when the state flips, so re-pausing keeps the original time.
            columns.update(paused=bool(changes["paused"]), paused_since=_ts(now))
            assignments += (
                ", paused_since = CASE WHEN :paused = paused THEN paused_since WHEN :paused THEN :paused_since END"
                ", paused = :paused"
            )

        def update(conn: sqlite3.Connection) -> SourceRecord:
            with _transaction(conn):
                cursor = conn.execute(
                    f"UPDATE sources SET {assignments} WHERE id = :id", {**columns, "id": source_id}
                )
                if cursor.rowcount != 1:
                    raise SourceNotFound(source_id)
                return _get(conn, source_id)

        return await self._run(update)

    async def delete_source(self, source_id: str) -> None:
        """Delete the source with its snapshot and change log; SourceNotFound if absent."""

        def delete(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("DELETE FROM changes WHERE source_id = ?", (source_id,))
                conn.execute("DELETE FROM snapshots WHERE source_id = ?", (source_id,))
                if conn.execute("DELETE FROM sources WHERE id = ?", (source_id,)).rowcount != 1:
                    raise SourceNotFound(source_id)

        await self._run(delete)

    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        """Record how the last read went."""
        since = _ts(status.since) if status.since is not None else None

        def update(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "UPDATE sources SET status_state = ?, status_message = ?, status_since = ? WHERE id = ?",
                (status.state, status.message, since, source_id),
            )
            if cursor.rowcount != 1:
                raise SourceNotFound(source_id)

        await self._run(update)

    # --- history ----------------------------------------------------------------------------------------------

    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        """Store the snapshot and append the change set in one transaction, then prune the log.

        The change set's `at` is the time retention measures ages against.
        """
        await self._run(_commit, snapshot, changeset, retention)

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        """The latest snapshot with its epoch and version (version 0: nothing read yet, no tabs)."""

        def read(conn: sqlite3.Connection) -> VersionedSnapshot:
            row = conn.execute(
                "SELECT s.epoch, s.version, n.tabs FROM sources s LEFT JOIN snapshots n ON n.source_id = s.id"
                " WHERE s.id = ?",
                (source_id,),
            ).fetchone()
            if row is None:
                raise SourceNotFound(source_id)
            tabs = EMPTY_SNAPSHOT if row["tabs"] is None else codec.decode_snapshot(row["tabs"])
            return VersionedSnapshot(source_id, row["epoch"], row["version"], tabs)

        return await self._run(read)

    async def changes_since(
        self, source_id: str, epoch: str, version: int, *, limit: int = 1000
    ) -> ChangesSince:
        """Change sets after `version`, oldest first, at most `limit`; not `recovered` if the log cannot tell."""
        records.check_limit(limit, minimum=0)

        def read(conn: sqlite3.Connection) -> ChangesSince:
            with _transaction(conn, "BEGIN"):  # head and log from one moment, even with another writer
                head = _head(conn, source_id)
                if not history.can_resume(head["epoch"], head["version"], head["log_floor"], epoch, version):
                    return ChangesSince(head["epoch"], head["version"], recovered=False)
                rows = conn.execute(
                    "SELECT version, at, ops FROM changes WHERE source_id = ? AND epoch = ? AND version > ?"
                    " ORDER BY version LIMIT ?",
                    (source_id, epoch, version, limit),
                )
                changes = [
                    ChangeSet(
                        source=source_id,
                        epoch=epoch,
                        version=row["version"],
                        at=datetime.fromisoformat(row["at"]),
                        ops=records.ops_from_json(row["ops"]),
                    )
                    for row in rows
                ]
                return ChangesSince(head["epoch"], head["version"], recovered=True, changes=changes)

        return await self._run(read)

    async def reset_history(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Start a new epoch at version 0 with an empty snapshot and log."""
        epoch = records.fresh_epoch()

        def reset(conn: sqlite3.Connection) -> SourceRecord:
            with _transaction(conn):
                cursor = conn.execute(
                    "UPDATE sources SET epoch = ?, version = 0, log_floor = ?, updated_at = ? WHERE id = ?",
                    (epoch, history.FIRST_FLOOR, _ts(now), source_id),
                )
                if cursor.rowcount != 1:
                    raise SourceNotFound(source_id)
                conn.execute("DELETE FROM changes WHERE source_id = ?", (source_id,))
                conn.execute("DELETE FROM snapshots WHERE source_id = ?", (source_id,))
                return _get(conn, source_id)

        return await self._run(reset)

    # --- leases -----------------------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew the lease until now + ttl_s if it is free, expired or already `holder`'s."""
        return name in await self.acquire_leases([name], holder, ttl_s, now=now)

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        """`acquire_lease` for many leases in one transaction; the names taken or renewed."""
        expires_at, at = _ts(records.lease_expiry(now, ttl_s)), _ts(now)

        def acquire(conn: sqlite3.Connection) -> set[str]:
            taken: set[str] = set()
            # Under SQLite's write lock, so two stores on one file cannot both take a lease.
            with _transaction(conn):
                for name in sorted(set(names)):
                    cursor = conn.execute(
                        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
                        " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                        (name, holder, expires_at, at),
                    )
                    if cursor.rowcount == 1:
                        taken.add(name)
            return taken

        return await self._run(acquire)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it."""
        await self.release_leases([name], holder)

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        """`release_lease` for many leases in one transaction."""

        def release(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(
                    "DELETE FROM leases WHERE name = ? AND holder = ?", [(name, holder) for name in names]
                )

        await self._run(release)

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases whose name starts with `prefix`, as {name: holder}; expired ones are deleted."""
        match = "substr(name, 1, length(:prefix)) = :prefix"
        params = {"prefix": prefix, "now": _ts(now)}

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            with _transaction(conn):
                conn.execute(f"DELETE FROM leases WHERE {match} AND expires_at <= :now", params)
                rows = conn.execute(f"SELECT name, holder FROM leases WHERE {match}", params)
                return {row["name"]: row["holder"] for row in rows}

        return await self._run(read)

    # --- API keys ---------------------------------------------------------------------------------------------

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key; ValueError if its id is taken."""
        revoked_at = None if record.revoked_at is None else _ts(record.revoked_at)
        row = (record.id, record.name, record.secret_hash, records.scopes_text(record.scopes))

        def insert(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                "INSERT INTO api_keys (id, name, secret_hash, scopes, created_at, revoked_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (*row, _ts(record.created_at), revoked_at),
            )
            if cursor.rowcount != 1:
                raise ValueError(f"an API key with id {record.id!r} already exists")

        await self._run(insert)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The key; ApiKeyNotFound if absent."""
        return await self._run(_get_api_key, key_id)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""

        def read(conn: sqlite3.Connection) -> list[ApiKeyRecord]:
            rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at, id")
            return [records.api_key_from_row(row, datetime.fromisoformat) for row in rows]

        return await self._run(read)

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Mark the key revoked at `now` (a revoked key keeps its first time); ApiKeyNotFound if absent."""

        def revoke(conn: sqlite3.Connection) -> ApiKeyRecord:
            with _transaction(conn):
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_ts(now), key_id)
                )
                return _get_api_key(conn, key_id)

        return await self._run(revoke)


def _get_api_key(conn: sqlite3.Connection, key_id: str) -> ApiKeyRecord:
    row = conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        raise ApiKeyNotFound(key_id)
    return records.api_key_from_row(row, datetime.fromisoformat)


def _commit(conn: sqlite3.Connection, snapshot: Snapshot, cs: ChangeSet, retention: Retention) -> None:
    """The commit transaction: fence on the head, append, replace the snapshot, prune."""
    ops = records.ops_json(cs.ops)
    tabs = codec.encode_snapshot(snapshot)
    with _transaction(conn):
        head = _head(conn, cs.source)
        try:
            history.check_commit(head["epoch"], head["version"], cs)
        except history.CommitRefused as exc:
            raise VersionConflict(cs.source, exc.version, exc.head) from exc
        # The fence: only the writer that still sees the head it read moves it.
        fenced = conn.execute(
            "UPDATE sources SET version = ? WHERE id = ? AND epoch = ? AND version = ?",
            (cs.version, cs.source, cs.epoch, cs.version - 1),
        )
        if fenced.rowcount != 1:
            raise VersionConflict(cs.source, cs.version, head["version"])
        conn.execute(
            "INSERT INTO changes (source_id, epoch, version, at, ops) VALUES (?, ?, ?, ?, ?)",
            (cs.source, cs.epoch, cs.version, _ts(cs.at), ops),
        )
        conn.execute(
            "INSERT INTO snapshots (source_id, tabs) VALUES (?, ?)"
            " ON CONFLICT (source_id) DO UPDATE SET tabs = excluded.tabs",
            (cs.source, tabs),
        )
        cutoff = history.expiry_cutoff(cs.at, retention.max_age_s)
        newest_expired = None
        if cutoff is not None:
            newest_expired = conn.execute(
                "SELECT MAX(version) FROM changes WHERE source_id = ? AND epoch = ? AND at < ?",
                (cs.source, cs.epoch, _ts(cutoff)),
            ).fetchone()[0]
        floor = history.retained_floor(cs.version, head["log_floor"], retention.max_changes, newest_expired)
        if floor > head["log_floor"]:
            conn.execute(
                "DELETE FROM changes WHERE source_id = ? AND epoch = ? AND version < ?",
                (cs.source, cs.epoch, floor),
            )
            conn.execute("UPDATE sources SET log_floor = ? WHERE id = ?", (floor, cs.source))
