"""The dead-letter methods of the PostgreSQL store (`PostgresStore` inherits them), one statement each."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sheetstream.errors import DeadLetterNotFound
from sheetstream.stores import dead_letter_records, records
from sheetstream.stores.base import DeadLetter, NewDeadLetter


def _letter(row: Any) -> DeadLetter:
    return dead_letter_records.from_row(row, lambda at: at)


class PostgresDeadLetters:
    """Dead letters in the `dead_letters` table (migration 0004)."""

    def _connection(self, action: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore's: a pooled connection, errors translated

    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        """Set a letter aside, failed at `now`; one with the same `key` takes the new error and adds the attempts."""
        new, payload = dead_letter_records.checked(new)
        async with self._connection("setting a dead letter aside") as conn:
            # One atomic upsert: nodes setting the same failure aside together end with one row.
            row = await conn.fetchrow(
                "INSERT INTO dead_letters (key, kind, source_id, payload, error, attempts, first_failed_at,"
                " last_failed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
                " ON CONFLICT (key) DO UPDATE SET error = excluded.error,"
                " attempts = dead_letters.attempts + excluded.attempts, last_failed_at = excluded.last_failed_at"
                " RETURNING *",
                new.key,
                new.kind,
                new.source,
                payload,
                new.error,
                new.attempts,
                now,
            )
        return _letter(row)

    async def list_dead_letters(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """Letters newest first after `cursor`, and the cursor of the next page (None at the end)."""
        records.check_limit(limit, minimum=1)
        before = dead_letter_records.decode_cursor(cursor) if cursor is not None else 2**63 - 1
        async with self._connection("listing dead letters") as conn:
            rows = await conn.fetch(
                "SELECT * FROM dead_letters WHERE id < $1 ORDER BY id DESC LIMIT $2", before, limit + 1
            )
        return dead_letter_records.page([_letter(row) for row in rows], limit)

    async def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """The letter; DeadLetterNotFound if absent."""
        seq = dead_letter_records.seq_of(letter_id)
        async with self._connection("reading a dead letter") as conn:
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", seq)
        if row is None:
            raise DeadLetterNotFound(letter_id)
        return _letter(row)

    async def delete_dead_letter(self, letter_id: str) -> None:
        """Delete the letter; DeadLetterNotFound if absent."""
        seq = dead_letter_records.seq_of(letter_id)
        async with self._connection("deleting a dead letter") as conn:
            deleted = await conn.fetchval("DELETE FROM dead_letters WHERE id = $1 RETURNING id", seq)
        if deleted is None:
            raise DeadLetterNotFound(letter_id)

    async def count_dead_letters(self) -> int:
        """How many letters are set aside."""
        async with self._connection("counting dead letters") as conn:
            return int(await conn.fetchval("SELECT COUNT(*) FROM dead_letters"))
