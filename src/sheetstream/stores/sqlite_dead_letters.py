"""The dead-letter methods of the SQLite store (`SqliteStore` inherits them), on its one worker-thread connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sheetstream.errors import DeadLetterNotFound
from sheetstream.stores import dead_letter_records, records
from sheetstream.stores.base import DeadLetter, NewDeadLetter

T = TypeVar("T")


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _letter(row: sqlite3.Row) -> DeadLetter:
    return dead_letter_records.from_row(row, datetime.fromisoformat)


class SqliteDeadLetters:
    """Dead letters in the `dead_letters` table (migration 0005)."""

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError  # SqliteStore's: fn(conn, *args) on the worker thread

    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        """Set a letter aside, failed at `now`; one with the same `key` takes the new error and adds the attempts."""
        new, payload = dead_letter_records.checked(new)

        def upsert(conn: sqlite3.Connection) -> DeadLetter:
            # One statement: two processes setting the same failure aside end with one row.
            row = conn.execute(
                "INSERT INTO dead_letters (key, kind, source_id, payload, error, attempts, first_failed_at,"
                " last_failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?7)"
                " ON CONFLICT (key) DO UPDATE SET error = excluded.error,"
                " attempts = dead_letters.attempts + excluded.attempts, last_failed_at = excluded.last_failed_at"
                " RETURNING *",
                (new.key, new.kind, new.source, payload, new.error, new.attempts, _ts(now)),
            ).fetchone()
            return _letter(row)

        return await self._run(upsert)

    async def list_dead_letters(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """Letters newest first after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        before = dead_letter_records.decode_cursor(cursor) if cursor is not None else 2**63 - 1

        def read(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                "SELECT * FROM dead_letters WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit + 1)
            )
            return [_letter(row) for row in rows]

        return dead_letter_records.page(await self._run(read), limit)

    async def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """The letter; DeadLetterNotFound if absent."""
        seq = dead_letter_records.seq_of(letter_id)

        def read(conn: sqlite3.Connection) -> DeadLetter:
            row = conn.execute("SELECT * FROM dead_letters WHERE id = ?", (seq,)).fetchone()
            if row is None:
                raise DeadLetterNotFound(letter_id)
            return _letter(row)

        return await self._run(read)

    async def delete_dead_letter(self, letter_id: str) -> None:
        """Delete the letter; DeadLetterNotFound if absent."""
        seq = dead_letter_records.seq_of(letter_id)

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dead_letters WHERE id = ?", (seq,)).rowcount != 1:
                raise DeadLetterNotFound(letter_id)

        await self._run(delete)

    async def count_dead_letters(self) -> int:
        """How many letters are set aside."""

        def count(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

        return await self._run(count)
