"""How every store adapter builds source records the same way: ids, page cursors, updates, the shown status."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from datetime import datetime
from typing import Any

import orjson

from sheetstream.core.history import new_epoch
from sheetstream.errors import ConfigError
from sheetstream.stores.base import SourceStatus

UPDATABLE_FIELDS = frozenset({"name", "config", "poll_interval_s", "paused"})


def new_source_id() -> str:
    """A short random url-safe source id."""
    return secrets.token_urlsafe(8)


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
