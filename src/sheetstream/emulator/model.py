"""The emulator's data: Drive files, the spreadsheets among them, their tabs and the cells of each tab.

Cells live in ragged row lists (only up to the last written cell); the grid size (`row_count`, `col_count`) is
kept apart, as Google keeps it, so inserting rows grows the grid whether or not the rows hold data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sheetstream.emulator.a1 import Box
from sheetstream.emulator.cells import Cell

SPREADSHEET_MIME = "application/vnd.google-apps.spreadsheet"
DEFAULT_ROWS = 1000
DEFAULT_COLS = 26


@dataclass
class Sheet:
    """One tab: stable `sheet_id`, title, position and grid size, and its cells."""

    sheet_id: int
    title: str
    index: int = 0
    row_count: int = DEFAULT_ROWS
    col_count: int = DEFAULT_COLS
    rows: list[list[Cell | None]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        """SheetProperties as the Sheets API returns them."""
        return {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.row_count, "columnCount": self.col_count},
        }

    def get(self, row: int, col: int) -> Cell | None:
        """The cell at (row, col), None when empty."""
        if row < len(self.rows) and col < len(self.rows[row]):
            return self.rows[row][col]
        return None

    def set(self, row: int, col: int, cell: Cell | None) -> None:
        """Store a cell (None empties it), growing the ragged rows only when something is stored."""
        if cell is None:
            if row < len(self.rows) and col < len(self.rows[row]):
                self.rows[row][col] = None
            return
        while len(self.rows) <= row:
            self.rows.append([])
        line = self.rows[row]
        if len(line) <= col:
            line.extend([None] * (col + 1 - len(line)))
        line[col] = cell

    def block(self, box: Box) -> list[list[Cell | None]]:
        """The cells of a box, row by row; rows past the data are empty lists."""
        out: list[list[Cell | None]] = []
        for r in range(box.r0, min(box.r1, len(self.rows))):
            line = self.rows[r]
            out.append(line[box.c0 : min(box.c1, len(line))])
        return out

    def clear(self, box: Box) -> None:
        """Empty every cell of a box."""
        for r in range(box.r0, min(box.r1, len(self.rows))):
            line = self.rows[r]
            for c in range(box.c0, min(box.c1, len(line))):
                line[c] = None

    def insert_rows(self, at: int, count: int) -> None:
        """Insert `count` empty rows before row `at`; the grid grows."""
        if at < len(self.rows):
            self.rows[at:at] = [[] for _ in range(count)]
        self.row_count += count

    def delete_rows(self, start: int, end: int) -> None:
        """Remove rows [start, end); the grid shrinks."""
        del self.rows[start:end]
        self.row_count -= end - start

    def insert_cols(self, at: int, count: int) -> None:
        """Insert `count` empty columns before column `at`; the grid grows."""
        for line in self.rows:
            if at < len(line):
                line[at:at] = [None] * count
        self.col_count += count

    def delete_cols(self, start: int, end: int) -> None:
        """Remove columns [start, end); the grid shrinks."""
        for line in self.rows:
            del line[start:end]
        self.col_count -= end - start

    def data_extent(self) -> tuple[int, int]:
        """(rows, columns) up to the last non-empty cell."""
        last_row, last_col = 0, 0
        for r, line in enumerate(self.rows):
            for c in range(len(line) - 1, -1, -1):
                if line[c] is not None:
                    last_row = r + 1
                    last_col = max(last_col, c + 1)
                    break
        return last_row, last_col


@dataclass
class DriveFile:
    """A Drive file; a spreadsheet when `sheets` is not None. Sharing: an owner, readers, writers, link-sharing."""

    id: str
    name: str
    mime_type: str
    created: float
    modified: float
    version: int = 1
    owner: str | None = None
    readers: set[str] = field(default_factory=set)
    writers: set[str] = field(default_factory=set)
    anyone_with_link: bool = False
    trashed: bool = False
    sheets: list[Sheet] | None = None
    locale: str = "en_US"
    time_zone: str = "Etc/GMT"

    @property
    def is_spreadsheet(self) -> bool:
        """True for a spreadsheet."""
        return self.sheets is not None

    def tabs(self) -> list[Sheet]:
        """The tabs in order (empty for other files)."""
        return self.sheets if self.sheets is not None else []

    def sheet_by_title(self, title: str) -> Sheet | None:
        """The tab with this title; titles match case-insensitively, as in Google's ranges."""
        folded = title.casefold()
        return next((s for s in self.tabs() if s.title.casefold() == folded), None)

    def sheet_by_id(self, sheet_id: int) -> Sheet | None:
        """The tab with this sheetId."""
        return next((s for s in self.tabs() if s.sheet_id == sheet_id), None)

    def reindex(self) -> None:
        """Renumber tab indexes after a move, insert or delete."""
        for i, sheet in enumerate(self.tabs()):
            sheet.index = i

    def can_read(self, identity: str) -> bool:
        """Whether `identity` may read this file (owner, reader, writer, or link-shared)."""
        return (
            self.anyone_with_link
            or identity == self.owner
            or identity in self.readers
            or identity in self.writers
        )

    def can_write(self, identity: str) -> bool:
        """Whether `identity` may change this file."""
        return identity == self.owner or identity in self.writers
