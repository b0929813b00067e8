"""A1 ranges as the Sheets API reads them: `'My Tab'!A1:C5`, `Sheet1!A:C`, `2:5`, `A2:C`, `Sheet1`, `B3`.

Parsing is pure: a range names a tab (or none: the first tab) and a rectangle whose ends may be open. Binding a
range to a tab's grid closes the open ends and gives the 0-based, end-exclusive box the API works on, plus the
text Google echoes back (`Sheet1!A1:Z1000` for `Sheet1`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sheetstream.core.a1 import column_name, parse_a1

_CELL = re.compile(r"\$?([A-Za-z]{1,3})\$?([1-9][0-9]{0,6})")
_COL = re.compile(r"\$?([A-Za-z]{1,3})")
_ROW = re.compile(r"\$?([1-9][0-9]{0,6})")
# A title needs no quotes when it is a plain identifier that cannot be mistaken for a cell or column reference.
_PLAIN_TITLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOOKS_LIKE_REF = re.compile(r"[A-Za-z]{1,3}[0-9]*|R[0-9]*C[0-9]*", re.IGNORECASE)


class RangeError(ValueError):
    """Text that is not an A1 range."""


@dataclass(frozen=True)
class A1Range:
    """A parsed range: tab title (None = first tab) and 0-based bounds; None bounds are open, ends exclusive."""

    sheet: str | None
    start_row: int | None = None
    start_col: int | None = None
    end_row: int | None = None
    end_col: int | None = None

    @property
    def whole_sheet(self) -> bool:
        """True when the range names a tab and no cells."""
        return (self.start_row, self.start_col, self.end_row, self.end_col) == (None, None, None, None)


@dataclass(frozen=True)
class Box:
    """A range bound to a grid: 0-based rows [r0, r1) and columns [c0, c1)."""

    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def rows(self) -> int:
        """Number of rows in the box."""
        return self.r1 - self.r0

    @property
    def cols(self) -> int:
        """Number of columns in the box."""
        return self.c1 - self.c0


def column_index(letters: str) -> int:
    """0-based index of column letters: "A" -> 0, "AA" -> 26."""
    return parse_a1(f"{letters}1")[1]


def quote_title(title: str) -> str:
    """A tab title as it appears in a range: quoted with '' escapes unless it is a plain name."""
    if _PLAIN_TITLE.fullmatch(title) and not _LOOKS_LIKE_REF.fullmatch(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def split_title(text: str) -> tuple[str | None, str | None]:
    """Split `Tab!A1:B2` into ("Tab", "A1:B2"); a quoted title may hold `!` and `''`; no `!` gives (None, text)."""
    if text.startswith("'"):
        i, title = 1, []
        while True:
            j = text.find("'", i)
            if j < 0:
                raise RangeError(text)
            title.append(text[i:j])
            if text[j + 1 : j + 2] == "'":
                title.append("'")
                i = j + 2
                continue
            rest = text[j + 1 :]
            break
        name = "".join(title)
        if rest == "":
            return name, None
        if not rest.startswith("!"):
            raise RangeError(text)
        return name, rest[1:]
    if "!" in text:
        name, _, cells = text.rpartition("!")
        return name, cells
    return None, text


def _endpoint(text: str) -> tuple[int | None, int | None]:
    """(row, col) of one side of `A1:B2`; None where the side leaves it open (`A`, `2`)."""
    if m := _CELL.fullmatch(text):
        row, col = parse_a1(f"{m.group(1)}{m.group(2)}")
        return row, col
    if m := _COL.fullmatch(text):
        return None, column_index(m.group(1))
    if m := _ROW.fullmatch(text):
        return int(m.group(1)) - 1, None
    raise RangeError(text)


def parse_cells(cells: str, sheet: str | None) -> A1Range:
    """Parse the part after `!`: `A1`, `A1:C5`, `A:C`, `2:5`, `A2:C`, `A2:5`."""
    cells = cells.strip()
    if ":" not in cells:
        if not _CELL.fullmatch(cells):
            raise RangeError(cells)
        row, col = _endpoint(cells)
        assert row is not None and col is not None
        return A1Range(sheet, row, col, row + 1, col + 1)
    left, _, right = cells.partition(":")
    (ra, ca), (rb, cb) = _endpoint(left), _endpoint(right)
    if (ra is None) != (rb is None) and (ca is None) != (cb is None) and (ra is None) == (cb is None):
        raise RangeError(cells)  # `A:5` and `5:A` name no dimension on both sides
    start_row, end_row = _span(ra, rb)
    start_col, end_col = _span(ca, cb)
    return A1Range(sheet, start_row, start_col, end_row, end_col)


def _span(a: int | None, b: int | None) -> tuple[int, int | None]:
    """Start and exclusive end of one dimension; `B2:A1` is `A1:B2`; `A2:C` runs to the grid's end (None)."""
    if a is not None and b is not None:
        return min(a, b), max(a, b) + 1
    if a is not None:
        return a, None
    if b is not None:
        return 0, b + 1
    return 0, None


def parse_range(text: str) -> A1Range:
    """Parse a full range; a text with no `!` is a cell range on the first tab, or a tab title (tried by the caller)."""
    if not text or not text.strip():
        raise RangeError(text)
    title, cells = split_title(text)
    if cells is None:
        return A1Range(title)
    if title is not None and title == "":
        raise RangeError(text)
    return parse_cells(cells, title)


def bind(rng: A1Range, row_count: int, col_count: int) -> Box:
    """Close the open ends of `rng` at the grid's edges; may extend past the grid (callers check limits)."""
    r0 = rng.start_row or 0
    c0 = rng.start_col or 0
    r1 = rng.end_row if rng.end_row is not None else max(row_count, r0 + 1)
    c1 = rng.end_col if rng.end_col is not None else max(col_count, c0 + 1)
    return Box(r0, c0, r1, c1)


def box_text(title: str, box: Box) -> str:
    """The echoed range of a box: `Sheet1!A1:B2`, or `Sheet1!A1` for a single cell."""
    first = f"{column_name(box.c0)}{box.r0 + 1}"
    last = f"{column_name(box.c1 - 1)}{box.r1}"
    cells = first if (box.rows, box.cols) == (1, 1) else f"{first}:{last}"
    return f"{quote_title(title)}!{cells}"
