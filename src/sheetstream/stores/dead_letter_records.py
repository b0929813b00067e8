"""How every store adapter keeps dead letters the same way: checked input, ids, page cursors and rows.

Letter ids are decimal numbers the store hands out in increasing order and never reuses, so "newest first" is
"largest id first" and a page cursor only needs the last id of the page before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, get_args

import orjson

from sheetstream.errors import DeadLetterNotFound
from sheetstream.stores import records
from sheetstream.stores.base import DeadLetter, DeadLetterKind, NewDeadLetter
from sheetstream.stores.records import Row

KINDS: tuple[str, ...] = get_args(DeadLetterKind)
MAX_ERROR_CHARS = 4000
"""Longer errors are cut: a letter says what went wrong, it is not a log."""

_ID = re.compile(r"^[1-9][0-9]{0,17}$")  # ASCII digits only, within a signed 64-bit integer


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; every store drops it the same way so they all give back the same letter.
    return value.replace("\x00", "\ufffd")


def checked(new: NewDeadLetter) -> tuple[NewDeadLetter, str]:
    """The letter as stores keep it (NUL replaced, error cut) and its payload as JSON text; ValueError if invalid."""
    if new.kind not in KINDS:
        raise ValueError(f"a dead letter's kind is one of {', '.join(KINDS)}, not {new.kind!r}")
    if new.attempts < 1:
        raise ValueError(f"a dead letter has failed at least once, not {new.attempts} times")
    if not new.key:
        raise ValueError("a dead letter needs a key naming what failed")
    if not isinstance(new.payload, dict):
        raise ValueError("a dead letter's payload must be a JSON object")
    try:
        payload = orjson.dumps(new.payload).decode()
    except TypeError as exc:
        raise ValueError(f"a dead letter's payload must be JSON: {exc}") from exc
    cleaned = replace(
        new,
        source=None if new.source is None else _text(new.source),
        error=_text(new.error)[:MAX_ERROR_CHARS],
        key=_text(new.key),
    )
    return cleaned, payload


def seq_of(letter_id: str) -> int:
    """The number of a letter id; DeadLetterNotFound if it cannot be one."""
    if not isinstance(letter_id, str) or not _ID.match(letter_id):
        raise DeadLetterNotFound(str(letter_id))
    return int(letter_id)


def encode_cursor(last: DeadLetter) -> str:
    """The opaque cursor of the page after the letter `last`."""
    return records.encode_cursor(last.id)


def decode_cursor(cursor: str) -> int:
    """The letter number a cursor points after; ValueError if it is not a cursor a store made."""
    letter_id = records.decode_cursor(cursor)
    try:
        return seq_of(letter_id)
    except DeadLetterNotFound:
        raise ValueError(f"invalid page cursor {cursor!r}") from None


def page(found: list[DeadLetter], limit: int) -> tuple[list[DeadLetter], str | None]:
    """A page of at most `limit` letters out of `limit + 1` read, with the next page's cursor."""
    if len(found) > limit:
        return found[:limit], encode_cursor(found[limit - 1])
    return found, None


def from_row(row: Row, when: Callable[[Any], datetime]) -> DeadLetter:
    """The letter of a row of the SQL stores' `dead_letters` table; `when` reads a stored time."""
    return DeadLetter(
        id=str(row["id"]),
        kind=row["kind"],
        source=row["source_id"],
        payload=orjson.loads(row["payload"]),
        error=row["error"],
        attempts=row["attempts"],
        first_failed_at=when(row["first_failed_at"]),
        last_failed_at=when(row["last_failed_at"]),
        key=row["key"],
    )
