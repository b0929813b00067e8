"""Test schemas on the real PostgreSQL: each test gets a fresh `sheetstream_test_<random>` schema, dropped after it."""

from __future__ import annotations

import uuid

import asyncpg

from sheetstream.stores.postgres_schema import parse_url

POSTGRES_ENV = "SHEETSTREAM_TEST_POSTGRES"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SCHEMA_PREFIX = "sheetstream_test_"


def fresh_schema_url(server_url: str, **options: object) -> str:
    """`server_url` with a new, unused test schema (and any other URL options), for one test."""
    query = {"schema": f"{TEST_SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}", **options}
    separator = "&" if "?" in server_url else "?"
    return server_url + separator + "&".join(f"{key}={value}" for key, value in query.items())


async def drop_test_schema(url: str) -> None:
    """Drop the test schema a store URL names, with everything in it (other URLs: nothing to do)."""
    if not url.lower().startswith(("postgresql:", "postgres:")):
        return
    parsed = parse_url(url)
    if not parsed.schema.startswith(TEST_SCHEMA_PREFIX):  # never drop a schema a test did not make
        raise ValueError(f"refusing to drop schema {parsed.schema!r}: not a test schema")
    conn = await asyncpg.connect(parsed.dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {parsed.schema} CASCADE")
    finally:
        await conn.close()
