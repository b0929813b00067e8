"""How the PostgreSQL store reports asyncpg's errors: as StoreError naming the server, the action and what to do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from sheetstream.errors import StoreError
from sheetstream.stores.postgres_schema import PostgresUrl

# InternalClientError: what asyncpg raises instead of ConnectionDoesNotExistError when the server drops a connection
# while a statement is being prepared; the pool replaces the connection on the next call.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
)


def hint(exc: BaseException) -> str:
    """What the user can do about an error."""
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return "check the user name and password in the store URL"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "create the database or fix its name in the store URL"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return "grant the user the privileges it needs, or create the schema for it"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "lower max_size in the store URL or raise the server's max_connections"
    if isinstance(exc, CONNECTION_ERRORS):
        return "check that the server is running and reachable, and the host and port in the store URL"
    return "see the PostgreSQL server's log"


@contextlib.contextmanager
def translated(url: PostgresUrl, action: str) -> Iterator[None]:
    """Turn asyncpg's errors raised in the block into StoreError; the project's own errors pass through."""
    try:
        yield
    except asyncpg.PostgresError as exc:
        raise StoreError(
            f"PostgreSQL at {url.where} (schema {url.schema}): {action} failed: {exc}; {hint(exc)}"
        ) from exc
    except CONNECTION_ERRORS as exc:
        raise StoreError(
            f"PostgreSQL at {url.where}: {action} failed: {exc or type(exc).__name__}; {hint(exc)}"
        ) from exc
