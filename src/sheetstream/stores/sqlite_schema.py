"""Schema migrations of the SQLite store: the numbered SQL files in `stores/migrations/`, applied in order.

Each file `NNNN_name.sql` runs in its own transaction together with its row in `schema_migrations`, so a
migration is applied entirely or not at all, and exactly once even when two processes open the file together.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable

from sheetstream.errors import StoreError

_FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    number: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The SQL statements of the file, in order."""
        out: list[str] = []
        pending = ""
        for line in self.sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                out.append(pending.strip())
                pending = ""
        leftover = "".join(ln for ln in pending.splitlines() if not ln.strip().startswith("--"))
        if leftover.strip():
            raise StoreError(f"migration {self.number:04d}_{self.name}.sql ends with an incomplete statement")
        return out


def load_migrations(folder: Traversable) -> list[Migration]:
    """The migrations in `folder`, by number."""
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if len(set(numbers)) != len(numbers):
        raise StoreError(f"two migrations share a number in {folder}: {numbers}")
    return found


def bundled_migrations() -> list[Migration]:
    """The migrations shipped with sheetstream."""
    return load_migrations(resources.files("sheetstream.stores") / "migrations")


def applied_migrations(conn: sqlite3.Connection) -> list[int]:
    """Numbers of the migrations recorded in the database."""
    conn.execute(_LEDGER)
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def migrate(
    conn: sqlite3.Connection, migrations: list[Migration], *, now: datetime | None = None
) -> list[int]:
    """Apply the migrations the database lacks, each in its own transaction; return their numbers.

    `conn` must be in autocommit mode (isolation_level=None) so transactions are ours to open.
    """
    applied_at = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    known = {m.number for m in migrations}
    unknown = sorted(set(applied_migrations(conn)) - known)
    if unknown:
        raise StoreError(
            f"the database has schema migrations {unknown} this sheetstream does not know: "
            "it was written by a newer version; upgrade sheetstream"
        )
    done: list[int] = []
    for migration in migrations:
        # IMMEDIATE takes the write lock before the check, so a second process waits, then sees it applied.
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.number,)
            ).fetchone()
            if seen is None:
                for statement in migration.statements():
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.number, migration.name, applied_at),
                )
                done.append(migration.number)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return done
