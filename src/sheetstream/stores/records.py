"""How every store adapter builds source records the same way: ids, page cursors, updates, the shown status.

Also the row and lease helpers the SQL stores (SQLite, PostgreSQL) share.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from sheetstream.core import codec
from sheetstream.core.history import new_epoch
from sheetstream.core.model import Op
from sheetstream.errors import ConfigError
from sheetstream.stores.base import ApiKeyRecord, SourceRecord, SourceStatus

UPDATABLE_FIELDS = frozenset({"name", "config", "poll_interval_s", "paused"})


def new_source_id() -> str:
    """A short random url-safe source id that never starts with "-" (it would read as an option in a shell)."""
    while True:
        source_id = secrets.token_urlsafe(8)
        if not source_id.startswith("-"):
            return source_id


def fresh_epoch() -> str:
    """A new random epoch name."""
    return new_epoch(os.urandom(6))


def encode_cursor(last_id: str) -> str:
    """The opaque cursor of the page after the source `last_id`."""
    return base64.urlsafe_b64encode(last_id.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The source id a cursor points after; ValueError if it is not a cursor this store made."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"invalid page cursor {cursor!r}") from exc


def check_limit(limit: int, *, minimum: int) -> None:
    """Raise ValueError if a page size is below `minimum`."""
    if limit < minimum:
        raise ValueError(f"limit must be at least {minimum}, not {limit}")


def check_update(changes: dict[str, Any]) -> None:
    """Raise ValueError if `changes` names a field `update_source` cannot change."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}: only {sorted(UPDATABLE_FIELDS)} can change")


def config_json(config: dict[str, Any]) -> bytes:
    """A source config as JSON bytes; ConfigError if it is not JSON."""
    try:
        return orjson.dumps(config)
    except TypeError as exc:
        raise ConfigError(f"a source config must be a JSON object: {exc}") from exc


def shown_status(stored: SourceStatus, paused_since: datetime | None) -> SourceStatus:
    """The status a record shows: `paused` (since it was paused) while paused, else the last read's status."""
    if paused_since is not None:
        return SourceStatus(state="paused", since=paused_since)
    return stored


class Row(Protocol):
    """A database row read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str) -> Any: ...


def record_from_row(row: Row, when: Callable[[Any], datetime]) -> SourceRecord:
    """The record of a row of the SQL stores' `sources` table; `when` reads a stored time."""
    since = row["status_since"]
    stored = SourceStatus(
        state=row["status_state"], message=row["status_message"], since=None if since is None else when(since)
    )
    paused_since = when(row["paused_since"]) if row["paused"] else None
    return SourceRecord(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        config=orjson.loads(row["config"]),
        poll_interval_s=row["poll_interval_s"],
        status=shown_status(stored, paused_since),
        created_at=when(row["created_at"]),
        updated_at=when(row["updated_at"]),
        epoch=row["epoch"],
        version=row["version"],
        paused=bool(row["paused"]),
    )


def updated_columns(changes: dict[str, Any]) -> dict[str, Any]:
    """The `sources` columns an update writes besides `paused` and times: name, config (JSON), poll interval."""
    columns: dict[str, Any] = {}
    if "name" in changes:
        columns["name"] = changes["name"]
    if "config" in changes:
        columns["config"] = config_json(changes["config"])
    if "poll_interval_s" in changes:
        columns["poll_interval_s"] = changes["poll_interval_s"]
    return columns


def ops_json(ops: tuple[Op, ...]) -> bytes:
    """A change set's ops as the JSON list the SQL stores keep."""
    return orjson.dumps([codec.op_to_json(op) for op in ops])


def ops_from_json(data: bytes | str) -> tuple[Op, ...]:
    """The ops kept by `ops_json`."""
    return tuple(codec.op_from_json(op) for op in orjson.loads(data))


def lease_expiry(now: datetime, ttl_s: float) -> datetime:
    """When a lease taken at `now` for `ttl_s` seconds expires; ValueError unless ttl_s is positive and finite."""
    try:
        if ttl_s > 0 and math.isfinite(ttl_s):
            return now + timedelta(seconds=ttl_s)
    except OverflowError:
        pass
    raise ValueError(f"a lease needs a positive, finite ttl_s within the calendar, not {ttl_s!r}")


def scopes_text(scopes: frozenset[str]) -> str:
    """An API key's scopes as the SQL stores keep them: sorted, space-separated."""
    return " ".join(sorted(scopes))


def api_key_from_row(row: Row, when: Callable[[Any], datetime]) -> ApiKeyRecord:
    """The record of a row of the SQL stores' `api_keys` table; `when` reads a stored time."""
    revoked_at = row["revoked_at"]
    return ApiKeyRecord(
        id=row["id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        scopes=frozenset(row["scopes"].split()),
        created_at=when(row["created_at"]),
        revoked_at=None if revoked_at is None else when(revoked_at),
    )
