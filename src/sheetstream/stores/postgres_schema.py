"""The PostgreSQL store's URL and its schema migrations (the numbered SQL files in `stores/migrations/postgres/`).

URL: ``postgresql://user[:password]@host[:port]/database[?schema=NAME&min_size=1&max_size=10]`` (``postgres://``
works too). `schema` (default ``sheetstream``) holds sheetstream's tables and is created if missing, so several
deployments or test runs can share one database without touching other data; `min_size`/`max_size` bound the connection pool. Any other query
option (``sslmode``, ``connect_timeout`` ...) is passed on to asyncpg.

Pending migrations are applied in one transaction under an advisory lock, so processes starting together apply
each exactly once, and a failing migration leaves nothing behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sheetstream.errors import ConfigError, StoreError
from sheetstream.stores.sqlite_schema import Migration, load_migrations

# Lower-case letters, digits and underscores: a name PostgreSQL needs no quotes for, so it is safe to splice in.
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_OPTIONS = ("schema", "min_size", "max_size")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A parsed store URL: what asyncpg connects to, sheetstream's own options, and a printable location."""

    dsn: str
    schema: str = "sheetstream"
    min_size: int = 1
    max_size: int = 10
    where: str = "localhost:5432"
    """user@host:port/database, with no password: for messages."""


def _size(options: dict[str, str], name: str, default: int, minimum: int, url: str) -> int:
    text = options.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(
            f"PostgreSQL store URL {url!r}: {name} must be a whole number >= {minimum}, not {text!r}"
        )
    return value


def parse_url(url: str) -> PostgresUrl:
    """Split a ``postgresql://`` URL into asyncpg's DSN and sheetstream's options; ConfigError if it is bad."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigError(f"not a PostgreSQL URL: {url!r} (use postgresql://user@host:5432/database)")
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigError(f"PostgreSQL store URL {url!r}: {exc}") from exc
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: value for key, value in query if key in _OPTIONS}
    schema = options.get("schema", "sheetstream")
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"PostgreSQL store URL {url!r}: schema must be lower-case letters, digits and underscores "
            f"(at most 63, not starting with a digit), not {schema!r}"
        )
    min_size = _size(options, "min_size", 1, 0, url)
    max_size = _size(options, "max_size", max(10, min_size), 1, url)
    if min_size > max_size:
        raise ConfigError(f"PostgreSQL store URL {url!r}: min_size {min_size} is above max_size {max_size}")
    rest = urlencode([(key, value) for key, value in query if key not in _OPTIONS])
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    user = f"{parts.username}@" if parts.username else ""
    database = parts.path.lstrip("/") or parts.username or "postgres"
    where = f"{user}{parts.hostname or 'localhost'}:{port}/{database}"
    return PostgresUrl(dsn=dsn, schema=schema, min_size=min_size, max_size=max_size, where=where)


def bundled_migrations() -> list[Migration]:
    """The PostgreSQL migrations shipped with sheetstream."""
    return load_migrations(resources.files("sheetstream.stores") / "migrations" / "postgres")


async def migrate(
    conn: Any, schema: str, migrations: list[Migration], *, now: datetime | None = None
) -> list[int]:
    """Create `schema` if missing and apply the migrations it lacks, in one transaction; return their numbers.

    `conn` is an asyncpg connection whose search_path is `schema`.
    """
    applied_at = now or datetime.now(UTC)
    known = {m.number for m in migrations}
    async with conn.transaction():
        # Held until the transaction ends: a second process waits here, then finds everything applied.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"sheetstream.migrate.{schema}")
        # Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema) is None:
            await conn.execute(f"CREATE SCHEMA {schema}")  # name checked by parse_url
        await conn.execute(_LEDGER)
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        unknown = sorted(applied - known)
        if unknown:
            raise StoreError(
                f"PostgreSQL schema {schema!r} has migrations {unknown} this sheetstream does not know: "
                "it was written by a newer version; upgrade sheetstream"
            )
        done: list[int] = []
        for migration in migrations:
            if migration.number in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.number,
                migration.name,
                applied_at,
            )
            done.append(migration.number)
    return done
