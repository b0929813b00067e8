"""The PostgreSQL store beyond the shared contract: URLs, migrations, pooling, several nodes, failures.

Runs on the real server at 127.0.0.1:5432 (or $SHEETSTREAM_TEST_POSTGRES), each test in its own schema.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from sheetstream.errors import ConfigError, StoreError, VersionConflict
from sheetstream.stores.base import Retention, SourceStatus
from sheetstream.stores.postgres import PostgresStore
from sheetstream.stores.postgres_schema import bundled_migrations, migrate, parse_url
from sheetstream.stores.registry import open_store
from sheetstream.stores.sqlite_schema import Migration
from tests.contracts.conftest import require_service
from tests.contracts.store_contract import KEEP_ALL, T0, change, commit_versions, create, sheet
from tests.stores.postgres_schemas import POSTGRES_DEFAULT, POSTGRES_ENV, drop_test_schema, fresh_schema_url


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A store URL in a fresh schema, dropped after the test."""
    made = fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT))
    try:
        yield made
    finally:
        await drop_test_schema(made)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore.from_url(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run SQL on a separate plain connection, in the URL's schema."""
    parsed = parse_url(url)
    conn = await asyncpg.connect(parsed.dsn, server_settings={"search_path": parsed.schema})
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- URLs ---------------------------------------------------------------------------------------------------


def test_url_options_are_taken_out_and_the_rest_goes_to_asyncpg() -> None:
    parsed = parse_url(
        "postgresql://app:secret@db.example:6543/prod?schema=tenant_1&min_size=2&max_size=5&sslmode=require"
    )
    assert (parsed.schema, parsed.min_size, parsed.max_size) == ("tenant_1", 2, 5)
    assert parsed.dsn == "postgresql://app:secret@db.example:6543/prod?sslmode=require"
    assert parsed.where == "app@db.example:6543/prod"  # the password never appears in messages
    default = parse_url("postgres://127.0.0.1/test")
    assert (default.schema, default.min_size, default.max_size) == ("sheetstream", 1, 10)
    assert default.where == "127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?schema=Bad-Name", "schema must be lower-case"),
        ("postgresql://h/db?schema=x;drop", "schema must be lower-case"),
        ("postgresql://h/db?max_size=0", "max_size must be a whole number >= 1"),
        ("postgresql://h/db?min_size=many", "min_size must be a whole number >= 0"),
        ("postgresql://h/db?min_size=5&max_size=2", "min_size 5 is above max_size 2"),
        ("postgresql://h:notaport/db", "Port"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PostgresStore.from_url(url)


def test_both_schemes_open_the_postgres_store() -> None:
    assert isinstance(open_store("postgresql://127.0.0.1/test"), PostgresStore)
    assert isinstance(open_store("postgres://127.0.0.1/test"), PostgresStore)


# --- connecting -------------------------------------------------------------------------------------------------


async def test_an_unreachable_server_is_a_store_error_at_open() -> None:
    port = closed_port()
    store = PostgresStore.from_url(f"postgresql://postgres@127.0.0.1:{port}/test")
    with pytest.raises(StoreError, match=rf"127\.0\.0\.1:{port}/test.*check that the server is running"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.get_source("x")


async def test_a_missing_database_is_a_store_error_saying_what_to_do() -> None:
    server = require_service(POSTGRES_ENV, POSTGRES_DEFAULT)
    store = PostgresStore.from_url(server.rsplit("/", 1)[0] + "/sheetstream_no_such_database")
    with pytest.raises(StoreError, match="create the database"):
        await store.open()


async def test_pool_sizes_come_from_the_url(url: str) -> None:
    store = PostgresStore.from_url(url + "&min_size=2&max_size=3")
    await store.open()
    try:
        assert (store._pool.get_min_size(), store._pool.get_max_size()) == (2, 3)
        record = await create(store)
        # More concurrent calls than connections: they queue for the pool and all complete.
        results = await asyncio.gather(*(store.get_source(record.id) for _ in range(12)))
        assert results == [record] * 12
    finally:
        await store.close()


async def test_open_twice_and_close_twice_are_harmless(store: PostgresStore) -> None:
    await store.open()
    record = await create(store)
    await store.close()
    await store.close()
    await store.open()
    assert await store.get_source(record.id) == record


async def test_a_dropped_connection_is_a_store_error_and_the_pool_recovers(url: str) -> None:
    store = PostgresStore.from_url(url + "&max_size=1")
    await store.open()
    try:
        record = await create(store)
        async with store._pool.acquire() as conn:
            pid = conn.get_server_pid()
        await query(url, "SELECT pg_terminate_backend($1)", pid)
        try:
            await store.get_source(record.id)
        except StoreError as exc:  # asyncpg may also notice the drop first and reconnect by itself
            assert "127.0.0.1:5432" in str(exc)
        assert await store.get_source(record.id) == record
    finally:
        await store.close()


# --- schemas and migrations -------------------------------------------------------------------------------------


async def test_tables_live_in_the_urls_schema_only(store: PostgresStore, url: str) -> None:
    other_url = fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT))
    other = PostgresStore.from_url(other_url)
    await other.open()
    try:
        mine = await create(store)
        assert (await other.list_sources())[0] == []
        rows = await query(
            url,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            parse_url(url).schema,
        )
        assert {r["table_name"] for r in rows} == {
            "sources",
            "snapshots",
            "changes",
            "leases",
            "api_keys",
            "dead_letters",
            "schema_migrations",
        }
        assert (await store.get_source(mine.id)).id == mine.id
    finally:
        await other.close()
        await drop_test_schema(other_url)


async def test_processes_starting_together_apply_each_migration_once(url: str) -> None:
    stores = [PostgresStore.from_url(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        recorded = await query(url, "SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in recorded] == [
            (m.number, m.name) for m in bundled_migrations()
        ]
        await stores[0].close()
        await stores[0].open()  # reopening applies nothing
        assert await query(url, "SELECT version, name FROM schema_migrations ORDER BY version") == recorded
    finally:
        for s in stores:
            await s.close()


async def test_a_schema_from_a_newer_version_is_refused(store: PostgresStore, url: str) -> None:
    await store.close()
    await query(url, "INSERT INTO schema_migrations VALUES (9999, 'future', now())")
    with pytest.raises(StoreError, match=r"\[9999\].*upgrade sheetstream"):
        await store.open()


async def test_a_failing_migration_leaves_nothing_behind(url: str) -> None:
    schema = parse_url(url).schema
    bad = Migration(1, "bad", "CREATE TABLE t (x INTEGER);\nINSERT INTO missing VALUES (1);\n")
    conn = await asyncpg.connect(parse_url(url).dsn, server_settings={"search_path": schema})
    try:
        with pytest.raises(asyncpg.UndefinedTableError, match="missing"):
            await migrate(conn, schema, [bad])
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 0
        assert await migrate(conn, schema, bundled_migrations()) == [m.number for m in bundled_migrations()]
    finally:
        await conn.close()


# --- several nodes on one database ----------------------------------------------------------------------------


async def test_two_nodes_committing_one_version_are_fenced(store: PostgresStore, url: str) -> None:
    other = PostgresStore.from_url(url)
    await other.open()
    try:
        record = await create(store)
        await commit_versions(store, record, range(1, 3))
        results = await asyncio.gather(
            store.commit(sheet(3, "a"), change(record, 3), retention=KEEP_ALL),
            other.commit(sheet(3, "b"), change(record, 3), retention=KEEP_ALL),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["NoneType", "VersionConflict"]
        winner = "a" if results[0] is None else "b"
        assert (await other.snapshot(record.id)).snapshot == sheet(3, winner)
        with pytest.raises(VersionConflict):
            await other.commit(sheet(3, "late"), change(record, 3), retention=KEEP_ALL)
        rows = await query(
            url, "SELECT version FROM changes WHERE source_id = $1 ORDER BY version", record.id
        )
        assert [r["version"] for r in rows] == [1, 2, 3]
    finally:
        await other.close()


async def test_a_commit_failing_midway_changes_nothing(store: PostgresStore, url: str) -> None:
    record = await create(store)
    await commit_versions(store, record, range(1, 3))
    # A row already holding version 3 makes the insert fail after the head has moved: all must roll back.
    await query(
        url,
        "INSERT INTO changes (source_id, epoch, version, at, ops) VALUES ($1, $2, 3, now(), '[]')",
        record.id,
        record.epoch,
    )
    with pytest.raises(StoreError, match="committing version 3"):
        await store.commit(sheet(3), change(record, 3), retention=KEEP_ALL)
    head = await store.snapshot(record.id)
    assert (head.version, head.snapshot) == (2, sheet(2))


async def test_retention_and_delete_remove_the_rows(store: PostgresStore, url: str) -> None:
    record = await create(store)
    await commit_versions(
        store, record, range(1, 9), retention=Retention(max_changes=3), step=timedelta(seconds=1)
    )
    rows = await query(url, "SELECT version FROM changes WHERE source_id = $1 ORDER BY version", record.id)
    assert [r["version"] for r in rows] == [6, 7, 8]
    assert (await query(url, "SELECT log_floor FROM sources WHERE id = $1", record.id))[0]["log_floor"] == 6
    await store.delete_source(record.id)
    for table, column in (("sources", "id"), ("snapshots", "source_id"), ("changes", "source_id")):
        assert await query(url, f"SELECT 1 FROM {table} WHERE {column} = $1", record.id) == []


async def test_text_postgres_cannot_hold_is_refused_or_replaced(store: PostgresStore) -> None:
    with pytest.raises(ConfigError, match="NUL"):
        await create(store, name="bad\x00name")
    record = await create(store)
    with pytest.raises(ConfigError, match="NUL"):
        await store.update_source(record.id, {"name": "x\x00"}, now=T0)
    await store.set_status(record.id, SourceStatus("error", "cannot parse b'\x00\x01'", T0))
    assert (await store.get_source(record.id)).status.message == "cannot parse b'\ufffd\x01'"
