"""Ranges bound to a spreadsheet's tabs: resolving A1 text, reading a box as values, writing values into a box.

These are the shared mechanics of the values API (`values.*`), `spreadsheets.get` with `ranges`, and
`batchUpdate`; they raise the same 400 errors Google answers (unparsable range, grid limits, too much data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sheetstream.core.a1 import column_name
from sheetstream.emulator.a1 import A1Range, Box, RangeError, bind, box_text, parse_cells, parse_range
from sheetstream.emulator.cells import (
    INPUT_OPTIONS,
    RENDER_OPTIONS,
    SKIP,
    RenderOption,
    ValueInputError,
    parse_input,
    render,
    transpose,
    trim,
)
from sheetstream.emulator.errors import bad_range, grid_limits, invalid_argument
from sheetstream.emulator.model import DriveFile, Sheet


@dataclass
class Target:
    """A range resolved against a spreadsheet: its tab, the parsed range and the box on the tab's grid."""

    sheet: Sheet
    rng: A1Range
    box: Box

    @property
    def text(self) -> str:
        """The range as Google echoes it."""
        return box_text(self.sheet.title, self.box)


def resolve(book: DriveFile, text: str) -> Target:
    """Resolve range text (`Tab!A1:B2`, `A:C`, `Tab`, ...) on a spreadsheet; 400 "Unable to parse range" if bad."""
    tabs = book.tabs()
    try:
        if "!" not in text and not text.startswith("'"):
            # An unquoted text with no "!" is a tab title when such a tab exists, else cells on the first tab.
            named = book.sheet_by_title(text.strip())
            rng = A1Range(named.title) if named is not None else parse_cells(text, None)
        else:
            rng = parse_range(text)
    except RangeError as exc:
        raise bad_range(text) from exc
    sheet = tabs[0] if rng.sheet is None else book.sheet_by_title(rng.sheet)
    if sheet is None:
        raise bad_range(text)
    return Target(sheet, rng, bind(rng, sheet.row_count, sheet.col_count))


def read_target(book: DriveFile, text: str) -> Target:
    """Resolve a range for reading: open and oversized ends are clipped to the grid."""
    target = resolve(book, text)
    sheet, box = target.sheet, target.box
    if box.r0 >= sheet.row_count or box.c0 >= sheet.col_count:
        raise grid_limits(box_text(sheet.title, box), sheet.row_count, sheet.col_count)
    target.box = Box(box.r0, box.c0, min(box.r1, sheet.row_count), min(box.c1, sheet.col_count))
    return target


def render_option(value: str | None, name: str = "valueRenderOption") -> RenderOption:
    """A validated render option (default FORMATTED_VALUE)."""
    option = value or "FORMATTED_VALUE"
    if option not in RENDER_OPTIONS:
        raise invalid_argument(
            f"Invalid value at '{name}' (type.googleapis.com/google.apps.sheets.v4.ValueRenderOption), \"{option}\""
        )
    return option  # type: ignore[return-value]


def major_dimension(value: str | None) -> str:
    """A validated majorDimension (default ROWS)."""
    dim = value or "ROWS"
    if dim not in ("ROWS", "COLUMNS"):
        raise invalid_argument(
            f"Invalid value at 'major_dimension' (type.googleapis.com/google.apps.sheets.v4.Dimension), \"{dim}\""
        )
    return dim


def input_option(value: str | None) -> bool:
    """True for USER_ENTERED, False for RAW; 400 when missing, as Google answers."""
    if value not in INPUT_OPTIONS:
        raise invalid_argument(f"Invalid valueInputOption: {value or 'INPUT_VALUE_OPTION_UNSPECIFIED'}")
    return value == "USER_ENTERED"


def value_range(target: Target, option: RenderOption, dimension: str) -> dict[str, Any]:
    """A ValueRange for a read: echoed range, majorDimension, and trimmed values (no key when empty)."""
    block = [[render(cell, option) for cell in row] for row in target.sheet.block(target.box)]
    if dimension == "COLUMNS":
        block = transpose(block, target.box.cols)
    values = trim(block)
    out: dict[str, Any] = {"range": target.text, "majorDimension": dimension}
    if values:
        out["values"] = values
    return out


def check_values(values: Any, field: str = "values") -> list[list[Any]]:
    """The `values` of a written ValueRange, checked to be a list of lists."""
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise invalid_argument(
            f"Invalid value at '{field}': expected a list of lists (ListValue of ListValue)"
        )
    return values


def write_values(
    target: Target, values: list[list[Any]], user_entered: bool, dimension: str = "ROWS"
) -> dict[str, Any]:
    """Write values at the target's top-left corner; the UpdateValuesResponse fields (without spreadsheetId)."""
    sheet, box, rng = target.sheet, target.box, target.rng
    cells_written = sum(len(row) for row in values)
    rows = values if dimension == "ROWS" else transpose(values, max((len(c) for c in values), default=0))
    height = len(rows)
    width = max((len(row) for row in rows), default=0)
    if height == 0 or width == 0:
        return {"updatedRange": target.text}
    anchor = single_cell(rng)  # a one-cell range is an anchor: the data grows from it
    if rng.end_row is not None and height > box.rows and not anchor:
        raise invalid_argument(
            f"Requested writing within range [{target.text}], but tried writing to row [{box.r0 + height}]"
        )
    if rng.end_col is not None and width > box.cols and not anchor:
        raise invalid_argument(
            f"Requested writing within range [{target.text}], but tried writing to column [{column_name(box.c0 + width - 1)}]"
        )
    written = Box(box.r0, box.c0, box.r0 + height, box.c0 + width)
    if written.r1 > sheet.row_count or written.c1 > sheet.col_count:
        raise grid_limits(box_text(sheet.title, written), sheet.row_count, sheet.col_count)
    parsed = _parse_rows(rows, dimension, user_entered)
    for r, row in enumerate(parsed):
        for c, cell in enumerate(row):
            if cell is not SKIP:
                sheet.set(box.r0 + r, box.c0 + c, cell)
    return {
        "updatedRange": box_text(sheet.title, written),
        "updatedRows": height,
        "updatedColumns": width,
        "updatedCells": cells_written,
    }


def _parse_rows(rows: list[list[Any]], dimension: str, user_entered: bool) -> list[list[Any]]:
    """Parse every written value before touching the grid, so a bad value changes nothing."""
    parsed: list[list[Any]] = []
    for r, row in enumerate(rows):
        line = []
        for c, raw in enumerate(row):
            try:
                line.append(parse_input(raw, user_entered))
            except ValueInputError as exc:
                i, j = (r, c) if dimension == "ROWS" else (c, r)
                raise invalid_argument(f"Invalid values[{i}][{j}]: {exc}") from exc
        parsed.append(line)
    return parsed


def table_end(sheet: Sheet, box: Box, col_end: int) -> int:
    """Where `values.append` writes: below the rows of data that start at the box's top row (contiguous)."""
    row = box.r0
    while row < sheet.row_count and any(sheet.get(row, c) is not None for c in range(box.c0, col_end)):
        row += 1
    return row


def ensure_grid(sheet: Sheet, rows: int, cols: int) -> None:
    """Grow the grid to at least rows x cols (append does this; plain writes do not)."""
    sheet.row_count = max(sheet.row_count, rows)
    sheet.col_count = max(sheet.col_count, cols)


def single_cell(rng: A1Range) -> bool:
    """True for a one-cell range like `A1` or a whole-tab range."""
    if rng.whole_sheet:
        return True
    return rng.end_row == (rng.start_row or 0) + 1 and rng.end_col == (rng.start_col or 0) + 1
