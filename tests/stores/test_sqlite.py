"""The SQLite store beyond the shared contract: durability, WAL, migrations, failures and several writers."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sheetstream.errors import ConfigError, StoreError, VersionConflict
from sheetstream.stores.base import Retention, SourceStatus
from sheetstream.stores.sqlite import SqliteStore
from sheetstream.stores.sqlite_schema import Migration, bundled_migrations, load_migrations, migrate
from tests.contracts.store_contract import KEEP_ALL, T0, change, commit_versions, create, sheet


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sheetstream.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(db_path))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def raw(db_path: Path) -> sqlite3.Connection:
    """A separate plain connection to the database file, in autocommit mode."""
    return sqlite3.connect(db_path, isolation_level=None)


def query(db_path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = raw(db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# --- URLs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///sheetstream.db", "sheetstream.db"),
        ("sqlite:///data/s.db", "data/s.db"),
        ("sqlite:////var/lib/s.db", "/var/lib/s.db"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_url_names_the_file(url: str, path: str) -> None:
    assert SqliteStore.from_url(url).path == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "sqlite:///x.db?mode=ro"])
def test_bad_urls_say_what_to_write(url: str) -> None:
    with pytest.raises(ConfigError, match=r"sqlite:///relative/path\.db"):
        SqliteStore.from_url(url)


async def test_in_memory_database_works() -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        record = await create(store)
        await commit_versions(store, record, range(1, 3))
        assert (await store.snapshot(record.id)).snapshot == sheet(2)
    finally:
        await store.close()


# --- opening and closing --------------------------------------------------------------------------------------


async def test_persists_across_close_and_reopen(db_path: Path) -> None:
    store = SqliteStore(str(db_path))
    await store.open()
    record = await create(store, name="kept", paused=True)
    committed = await commit_versions(store, record, range(1, 4))
    await store.set_status(record.id, SourceStatus("error", "timeout", T0))
    before = await store.get_source(record.id)
    await store.close()

    again = SqliteStore(str(db_path))
    await again.open()
    try:
        assert await again.get_source(record.id) == before
        assert (await again.snapshot(record.id)).snapshot == sheet(3)
        assert (await again.changes_since(record.id, record.epoch, 0)).changes == committed
        await again.commit(sheet(4), change(record, 4), retention=KEEP_ALL)
    finally:
        await again.close()


async def test_uses_write_ahead_logging(store: SqliteStore, db_path: Path) -> None:
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]


async def test_open_twice_and_close_twice_are_harmless(store: SqliteStore) -> None:
    await store.open()
    record = await create(store)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.get_source(record.id)


async def test_a_file_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "missing-dir" / "s.db"))
    with pytest.raises(StoreError, match="missing-dir"):
        await store.open()


# --- migrations -------------------------------------------------------------------------------------------------


async def test_reopening_applies_no_migration_twice(store: SqliteStore, db_path: Path) -> None:
    recorded = query(db_path, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    assert [row[0] for row in recorded] == [m.number for m in bundled_migrations()]
    await store.close()
    await store.open()
    assert (
        query(db_path, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version") == recorded
    )
    conn = raw(db_path)
    try:
        assert migrate(conn, bundled_migrations()) == []
    finally:
        conn.close()


async def test_an_older_database_is_upgraded(db_path: Path) -> None:
    first, *later = bundled_migrations()
    assert later, "needs at least two migrations to test an upgrade"
    conn = raw(db_path)
    try:
        assert migrate(conn, [first]) == [first.number]
        conn.execute(
            "INSERT INTO sources (id, kind, config, poll_interval_s, created_at, updated_at, epoch)"
            " VALUES ('old1', 'file', '{}', 5.0, '2024-01-01T00:00:00.000000+00:00',"
            " '2024-01-01T00:00:00.000000+00:00', 'e0')"
        )
    finally:
        conn.close()
    store = SqliteStore(str(db_path))
    await store.open()
    try:
        assert (await store.get_source("old1")).epoch == "e0"
    finally:
        await store.close()
    assert [row[0] for row in query(db_path, "SELECT version FROM schema_migrations ORDER BY version")] == [
        m.number for m in bundled_migrations()
    ]
    assert query(db_path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'changes_by_age'")


async def test_a_database_from_a_newer_version_is_refused(store: SqliteStore, db_path: Path) -> None:
    await store.close()
    conn = raw(db_path)
    try:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', '2099-01-01')")
    finally:
        conn.close()
    with pytest.raises(StoreError, match=r"\[9999\].*upgrade sheetstream"):
        await store.open()


def test_a_failing_migration_leaves_nothing_behind(db_path: Path) -> None:
    bad = Migration(1, "bad", "CREATE TABLE t (x INTEGER);\nINSERT INTO missing VALUES (1);\n")
    conn = raw(db_path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="missing"):
            migrate(conn, [bad])
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchall() == []
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone() == (0,)
    finally:
        conn.close()


def test_migration_files_are_read_in_number_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("CREATE TABLE b (x);\n")
    (tmp_path / "0001_first.sql").write_text(
        "-- a comment; with a semicolon\nCREATE TABLE a (x);\n-- trailing\n"
    )
    (tmp_path / "notes.txt").write_text("not a migration")
    found = load_migrations(tmp_path)
    assert [(m.number, m.name) for m in found] == [(1, "first"), (2, "second")]
    assert [s.splitlines()[-1] for s in found[0].statements()] == ["CREATE TABLE a (x);"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "CREATE TABLE a (x);", "0001_b.sql": "CREATE TABLE b (x);"}, "share a number"),
        ({"0001_a.sql": "CREATE TABLE a (x);\nCREATE TABLE b (x"}, "incomplete statement"),
    ],
)
def test_broken_migration_folders_are_refused(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(StoreError, match=message):
        for migration in load_migrations(tmp_path):
            migration.statements()


# --- failures and several writers --------------------------------------------------------------------------------


async def test_a_commit_failing_midway_changes_nothing(store: SqliteStore, db_path: Path) -> None:
    record = await create(store)
    await commit_versions(store, record, range(1, 3))
    # Make the snapshot write, which comes after the fence and the log append, fail like a full disk would.
    conn = raw(db_path)
    try:
        conn.execute(
            "CREATE TRIGGER fail_snapshot BEFORE UPDATE ON snapshots BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(StoreError, match="disk full"):
            await store.commit(sheet(3), change(record, 3), retention=KEEP_ALL)
        head = await store.snapshot(record.id)
        assert (head.version, head.snapshot) == (2, sheet(2))
        assert [c.version for c in (await store.changes_since(record.id, record.epoch, 0)).changes] == [1, 2]
        conn.execute("DROP TRIGGER fail_snapshot")
    finally:
        conn.close()
    await store.commit(sheet(3), change(record, 3), retention=KEEP_ALL)
    assert (await store.snapshot(record.id)).version == 3


async def test_two_connections_to_one_file_are_fenced(store: SqliteStore, db_path: Path) -> None:
    record = await create(store)
    other = SqliteStore(str(db_path))
    await other.open()
    try:
        results = await asyncio.gather(
            *(
                s.commit(sheet(1, name), change(record, 1), retention=KEEP_ALL)
                for s, name in ((store, "a"), (other, "b"))
            ),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "VersionConflict"]
        assert (await other.snapshot(record.id)).version == 1
        with pytest.raises(VersionConflict):
            await other.commit(sheet(1), change(record, 1), retention=KEEP_ALL)
    finally:
        await other.close()


async def test_delete_leaves_no_rows_behind(store: SqliteStore, db_path: Path) -> None:
    record = await create(store)
    await commit_versions(store, record, range(1, 4))
    await store.delete_source(record.id)
    for table, column in (("sources", "id"), ("snapshots", "source_id"), ("changes", "source_id")):
        assert query(db_path, f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", record.id) == [(0,)]


async def test_retention_deletes_pruned_rows(store: SqliteStore, db_path: Path) -> None:
    record = await create(store)
    await commit_versions(store, record, range(1, 11), retention=Retention(max_changes=4))
    rows = query(db_path, "SELECT version FROM changes WHERE source_id = ? ORDER BY version", record.id)
    assert rows == [(7,), (8,), (9,), (10,)]
    assert query(db_path, "SELECT log_floor FROM sources WHERE id = ?", record.id) == [(7,)]


ROOT = Path(__file__).resolve().parents[2]
COMMIT_LOOP = textwrap.dedent(
    """
    import asyncio, sys
    from sheetstream.stores.base import Retention
    from sheetstream.stores.sqlite import SqliteStore
    from tests.contracts.store_contract import change, sheet

    async def main(path, source_id):
        store = SqliteStore(path)
        await store.open()
        record = await store.get_source(source_id)
        version = 0
        while True:
            version += 1
            await store.commit(sheet(version), change(record, version), retention=Retention(max_changes=20))
            print(version, flush=True)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_a_process_killed_mid_commit_leaves_a_consistent_store(
    store: SqliteStore, db_path: Path
) -> None:
    record = await create(store)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", COMMIT_LOOP, str(db_path), record.id, stdout=asyncio.subprocess.PIPE, env=env
    )
    last_seen = 0
    try:
        assert child.stdout is not None
        async with asyncio.timeout(30):
            while last_seen < 60:
                line = await child.stdout.readline()
                assert line, "the commit loop ended early"
                last_seen = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        # The child may have run ahead of our reading: what it printed before dying is still in the pipe.
        rest = await child.stdout.read() if child.stdout is not None else b""
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    last_seen = max([last_seen, *map(int, rest.split())])

    await store.close()
    await store.open()
    head = await store.snapshot(record.id)
    # Every commit that returned is there; at most the one in flight when the process died is too.
    assert last_seen <= head.version <= last_seen + 1
    assert head.snapshot == sheet(head.version)
    log = await store.changes_since(record.id, record.epoch, head.version - 20)
    assert log.recovered and [c.version for c in log.changes] == list(
        range(head.version - 19, head.version + 1)
    )
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]
    await store.commit(sheet(head.version + 1), change(record, head.version + 1), retention=KEEP_ALL)
