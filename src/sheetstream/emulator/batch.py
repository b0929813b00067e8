"""The requests of `spreadsheets.batchUpdate` the emulator models, as a table from request name to handler.

Each handler changes one spreadsheet and returns its reply (None: an empty reply). Formatting-only requests are
accepted and change nothing, since the emulator keeps values, not formats. Other requests answer 501.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheetstream.emulator.cells import ValueInputError, from_extended
from sheetstream.emulator.model import DEFAULT_COLS, DEFAULT_ROWS, DriveFile, Sheet
from sheetstream.emulator.state import EmulatorState


class RequestError(ValueError):
    """A request that Google would refuse; the message follows "Invalid requests[i].<name>: "."""


Reply = dict[str, Any] | None
RequestHandler = Callable[[EmulatorState, DriveFile, dict[str, Any]], Reply]


def _int(value: Any, name: str, default: int | None = None) -> int:
    if value is None:
        if default is None:
            raise RequestError(f"{name} is required")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"{name} must be an integer, got {value!r}") from exc


def _sheet(book: DriveFile, sheet_id: Any) -> Sheet:
    sheet = book.sheet_by_id(_int(sheet_id, "sheetId", 0))
    if sheet is None:
        raise RequestError(f"No grid with id: {_int(sheet_id, 'sheetId', 0)}")
    return sheet


def _check_title(book: DriveFile, title: str, keep: Sheet | None = None) -> None:
    if not title.strip():
        raise RequestError("Sheet names must not be empty.")
    other = book.sheet_by_title(title)
    if other is not None and other is not keep:
        raise RequestError(f'A sheet with the name "{title}" already exists. Please enter another name.')


def _field_names(fields: Any) -> set[str]:
    if not fields or not isinstance(fields, str):
        raise RequestError("At least one field must be specified.")
    return {f.strip() for f in fields.split(",")}


def add_sheet(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """addSheet: a new tab (title "SheetN" by default, 1000x26, a fresh sheetId unless one is given)."""
    props = req.get("properties") or {}
    tabs = book.tabs()
    title = props.get("title")
    if title is None:
        n = len(tabs) + 1
        while book.sheet_by_title(f"Sheet{n}") is not None:
            n += 1
        title = f"Sheet{n}"
    _check_title(book, str(title))
    if "sheetId" in props:
        sheet_id = _int(props["sheetId"], "sheetId")
        if book.sheet_by_id(sheet_id) is not None:
            raise RequestError(f"A sheet with id {sheet_id} already exists.")
    else:
        sheet_id = state.new_sheet_id(book)
    grid = props.get("gridProperties") or {}
    sheet = Sheet(
        sheet_id,
        str(title),
        row_count=_int(grid.get("rowCount"), "rowCount", DEFAULT_ROWS),
        col_count=_int(grid.get("columnCount"), "columnCount", DEFAULT_COLS),
    )
    index = min(_int(props.get("index"), "index", len(tabs)), len(tabs))
    tabs.insert(index, sheet)
    book.reindex()
    return {"addSheet": {"properties": sheet.properties()}}


def delete_sheet(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """deleteSheet: remove a tab (never the last one)."""
    sheet = _sheet(book, req.get("sheetId"))
    if len(book.tabs()) == 1:
        raise RequestError("You can't remove all the sheets in a document.")
    book.tabs().remove(sheet)
    book.reindex()
    return None


def update_sheet_properties(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """updateSheetProperties: title, index (Google's "before the move" indexes) and grid size, per `fields`."""
    props = req.get("properties") or {}
    sheet = _sheet(book, props.get("sheetId"))
    fields = _field_names(req.get("fields"))
    every = "*" in fields
    grid = props.get("gridProperties") or {}
    if (every and "title" in props) or "title" in fields:
        _check_title(book, str(props.get("title", "")), keep=sheet)
        sheet.title = str(props["title"])
    if (every and "index" in props) or "index" in fields:
        tabs = book.tabs()
        target = _int(props.get("index"), "index", 0)
        old = tabs.index(sheet)
        tabs.remove(sheet)
        # Google counts the target index before the move: moving right lands one place left of it.
        tabs.insert(max(0, min(target - 1 if target > old else target, len(tabs))), sheet)
        book.reindex()
    if (every or "gridProperties" in fields or "gridProperties.rowCount" in fields) and "rowCount" in grid:
        rows = _int(grid["rowCount"], "rowCount")
        if rows < 1:
            raise RequestError("rowCount must be at least 1")
        del sheet.rows[rows:]
        sheet.row_count = rows
    if (
        every or "gridProperties" in fields or "gridProperties.columnCount" in fields
    ) and "columnCount" in grid:
        cols = _int(grid["columnCount"], "columnCount")
        if cols < 1:
            raise RequestError("columnCount must be at least 1")
        for line in sheet.rows:
            del line[cols:]
        sheet.col_count = cols
    return None


def update_spreadsheet_properties(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """updateSpreadsheetProperties: the title (the Drive file's name), locale and time zone."""
    props = req.get("properties") or {}
    fields = _field_names(req.get("fields"))
    every = "*" in fields
    if (every and "title" in props) or "title" in fields:
        book.name = str(props.get("title", ""))
    if (every and "locale" in props) or "locale" in fields:
        book.locale = str(props.get("locale", "en_US"))
    if (every and "timeZone" in props) or "timeZone" in fields:
        book.time_zone = str(props.get("timeZone", "Etc/GMT"))
    return None


def _dimension_range(book: DriveFile, rng: dict[str, Any], *, open_end: bool) -> tuple[Sheet, bool, int, int]:
    sheet = _sheet(book, rng.get("sheetId"))
    dimension = rng.get("dimension")
    if dimension not in ("ROWS", "COLUMNS"):
        raise RequestError("range.dimension must be ROWS or COLUMNS")
    rows = dimension == "ROWS"
    size = sheet.row_count if rows else sheet.col_count
    start = _int(rng.get("startIndex"), "startIndex", 0)
    end = _int(rng.get("endIndex"), "endIndex", size if open_end else None)
    if start < 0 or end <= start:
        raise RequestError(f"range.endIndex ({end}) must be greater than range.startIndex ({start})")
    return sheet, rows, start, end


def insert_dimension(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """insertDimension: empty rows or columns before startIndex; the grid grows."""
    sheet, rows, start, end = _dimension_range(book, req.get("range") or {}, open_end=False)
    size = sheet.row_count if rows else sheet.col_count
    if start > size:
        raise RequestError(f"range.startIndex ({start}) must be less than or equal to the grid size ({size})")
    if req.get("inheritFromBefore") and start == 0:
        raise RequestError("Cannot inherit properties from before if inserting at the beginning.")
    (sheet.insert_rows if rows else sheet.insert_cols)(start, end - start)
    return None


def delete_dimension(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """deleteDimension: remove rows or columns [startIndex, endIndex); never all of them."""
    sheet, rows, start, end = _dimension_range(book, req.get("range") or {}, open_end=True)
    size = sheet.row_count if rows else sheet.col_count
    noun = "row" if rows else "column"
    if end > size:
        raise RequestError(
            f"Cannot delete a {noun} that doesn't exist. Tried to delete {noun} index {end - 1} but there are only {size} {noun}s."
        )
    if start == 0 and end == size:
        raise RequestError(f"You can't delete all the {noun}s on the sheet.")
    (sheet.delete_rows if rows else sheet.delete_cols)(start, end)
    return None


def append_dimension(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """appendDimension: grow the grid at its end."""
    sheet = _sheet(book, req.get("sheetId"))
    length = _int(req.get("length"), "length")
    if length < 1:
        raise RequestError("length must be at least 1")
    if req.get("dimension") == "ROWS":
        sheet.row_count += length
    elif req.get("dimension") == "COLUMNS":
        sheet.col_count += length
    else:
        raise RequestError("dimension must be ROWS or COLUMNS")
    return None


def _writes_values(fields: Any) -> bool:
    names = _field_names(fields)
    return any(n == "*" or n.split(".")[0] == "userEnteredValue" for n in names)


def _cell_of(data: Any) -> Any:
    """The stored cell of a CellData; `effectiveValue` next to a formula sets the value it shows."""
    if not isinstance(data, dict):
        raise RequestError("cells must be CellData objects")
    try:
        cell = from_extended(data.get("userEnteredValue"))
        effective = data.get("effectiveValue")
        if cell is not None and cell.formula is not None and effective:
            shown = from_extended(effective)
            cell = type(cell)(shown.value if shown else None, cell.formula)
    except ValueInputError as exc:
        raise RequestError(str(exc)) from exc
    return cell


def _grid_box(sheet: Sheet, rng: dict[str, Any]) -> tuple[int, int, int, int]:
    r0 = _int(rng.get("startRowIndex"), "startRowIndex", 0)
    c0 = _int(rng.get("startColumnIndex"), "startColumnIndex", 0)
    r1 = _int(rng.get("endRowIndex"), "endRowIndex", sheet.row_count)
    c1 = _int(rng.get("endColumnIndex"), "endColumnIndex", sheet.col_count)
    if r1 > sheet.row_count or c1 > sheet.col_count or r0 < 0 or c0 < 0:
        raise RequestError(
            f"Range exceeds grid limits. Max rows: {sheet.row_count}, max columns: {sheet.col_count}"
        )
    return r0, c0, r1, c1


def update_cells(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """updateCells: write CellData rows at `start`, or over `range` (cells of the range not given are cleared)."""
    if not _writes_values(req.get("fields")):
        return None
    rows = req.get("rows") or []
    if "range" in req:
        sheet = _sheet(book, (req["range"] or {}).get("sheetId"))
        r0, c0, r1, c1 = _grid_box(sheet, req["range"] or {})
    else:
        start = req.get("start") or {}
        sheet = _sheet(book, start.get("sheetId"))
        r0, c0 = _int(start.get("rowIndex"), "rowIndex", 0), _int(start.get("columnIndex"), "columnIndex", 0)
        r1 = r0 + len(rows)
        c1 = c0 + max((len((row or {}).get("values") or []) for row in rows), default=0)
        if r1 > sheet.row_count or c1 > sheet.col_count:
            raise RequestError(
                f"GridCoordinate is after the last row or column of the grid ({sheet.row_count} x {sheet.col_count})"
            )
    cells = [[_cell_of(c) for c in ((row or {}).get("values") or [])] for row in rows]
    for r in range(r0, r1):
        line = cells[r - r0] if r - r0 < len(cells) else []
        for c in range(c0, c1):
            sheet.set(r, c, line[c - c0] if c - c0 < len(line) else None)
    return None


def repeat_cell(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """repeatCell: the same CellData in every cell of a range."""
    if not _writes_values(req.get("fields")):
        return None
    rng = req.get("range") or {}
    sheet = _sheet(book, rng.get("sheetId"))
    r0, c0, r1, c1 = _grid_box(sheet, rng)
    cell = _cell_of(req.get("cell") or {})
    for r in range(r0, r1):
        for c in range(c0, c1):
            sheet.set(r, c, cell)
    return None


def no_op(state: EmulatorState, book: DriveFile, req: dict[str, Any]) -> Reply:
    """A formatting request: accepted, nothing stored."""
    return None


HANDLERS: dict[str, RequestHandler] = {
    "addSheet": add_sheet,
    "deleteSheet": delete_sheet,
    "updateSheetProperties": update_sheet_properties,
    "updateSpreadsheetProperties": update_spreadsheet_properties,
    "insertDimension": insert_dimension,
    "deleteDimension": delete_dimension,
    "appendDimension": append_dimension,
    "updateCells": update_cells,
    "repeatCell": repeat_cell,
    "updateDimensionProperties": no_op,
    "autoResizeDimensions": no_op,
    "updateBorders": no_op,
    "setDataValidation": no_op,
    "addConditionalFormatRule": no_op,
}
