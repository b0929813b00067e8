"""Sheets v4 `spreadsheets.create`, `get` and `batchUpdate`, and the router for every `/v4/spreadsheets` path.

Paths are split from the raw (still percent-encoded) path, because ranges may hold `/`, `:` and `!` and the
`:append` / `:clear` / `:batchUpdate` verbs follow a colon.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sheetstream.emulator import values
from sheetstream.emulator.a1 import Box
from sheetstream.emulator.batch import HANDLERS, RequestError
from sheetstream.emulator.cells import cell_data, from_extended
from sheetstream.emulator.errors import ApiError, invalid_argument, sheets_body
from sheetstream.emulator.fields import FieldMaskError, apply_fields, parse_fields, selects
from sheetstream.emulator.grid import read_target
from sheetstream.emulator.guard import Ctx, api
from sheetstream.emulator.model import DriveFile, Sheet


def grid_data(sheet: Sheet, box: Box) -> dict[str, Any]:
    """GridData of a box: rowData of CellData, trailing empty cells and rows left out."""
    rows = []
    for line in sheet.block(box):
        cells = [cell_data(c) for c in line]
        while cells and not cells[-1]:
            cells.pop()
        rows.append({"values": cells} if cells else {})
    while rows and not rows[-1]:
        rows.pop()
    data: dict[str, Any] = {}
    if box.r0:
        data["startRow"] = box.r0
    if box.c0:
        data["startColumn"] = box.c0
    if rows:
        data["rowData"] = rows
    return data


def spreadsheet_resource(
    book: DriveFile, *, with_data: bool, ranges: list[str] | None = None
) -> dict[str, Any]:
    """The Spreadsheet resource; with `ranges`, only the tabs they name (and, with data, only those boxes)."""
    boxes: dict[int, list[Box]] = {}
    if ranges:
        for text in ranges:
            target = read_target(book, text)
            boxes.setdefault(target.sheet.sheet_id, []).append(target.box)
    sheets = []
    for sheet in book.tabs():
        if ranges and sheet.sheet_id not in boxes:
            continue
        entry: dict[str, Any] = {"properties": sheet.properties()}
        if with_data:
            whole = [Box(0, 0, sheet.row_count, sheet.col_count)]
            entry["data"] = [grid_data(sheet, box) for box in boxes.get(sheet.sheet_id, whole)]
        sheets.append(entry)
    return {
        "spreadsheetId": book.id,
        "properties": {
            "title": book.name,
            "locale": book.locale,
            "autoRecalc": "ON_CHANGE",
            "timeZone": book.time_zone,
        },
        "sheets": sheets,
        "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{book.id}/edit",
    }


def _fields(ctx: Ctx) -> Any:
    text = ctx.param("fields")
    if not text:
        return None
    try:
        return parse_fields(text)
    except FieldMaskError as exc:
        raise invalid_argument(str(exc)) from exc


@api("sheets", "read")
async def spreadsheet_get(ctx: Ctx) -> dict[str, Any]:
    """GET /v4/spreadsheets/{id}: field masks, `ranges`, `includeGridData` (ignored when a mask is given)."""
    book = ctx.file(str(ctx.request.path_params["id"]))
    mask = _fields(ctx)
    with_data = selects(mask, "sheets", "data") if mask is not None else ctx.flag("includeGridData")
    ranges = ctx.request.query_params.getlist("ranges")
    with ctx.state.lock:
        resource = spreadsheet_resource(book, with_data=with_data, ranges=ranges)
    return apply_fields(mask, resource) if mask is not None else resource


def _sheet_from_body(spec: dict[str, Any], index: int) -> Sheet:
    props = spec.get("properties") or {}
    grid = props.get("gridProperties") or {}
    sheet = Sheet(
        int(props.get("sheetId", 0 if index == 0 else -1)),
        str(props.get("title") or f"Sheet{index + 1}"),
        row_count=int(grid.get("rowCount", 1000)),
        col_count=int(grid.get("columnCount", 26)),
    )
    for block in spec.get("data") or []:
        r0, c0 = int(block.get("startRow", 0)), int(block.get("startColumn", 0))
        for r, row in enumerate(block.get("rowData") or []):
            for c, cell in enumerate((row or {}).get("values") or []):
                sheet.set(r0 + r, c0 + c, from_extended((cell or {}).get("userEnteredValue")))
    return sheet


@api("sheets", "write")
async def spreadsheet_create(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets: a new spreadsheet owned by the caller."""
    body = await ctx.body()
    title = str((body.get("properties") or {}).get("title") or "Untitled spreadsheet")
    try:
        tabs = [_sheet_from_body(spec, i) for i, spec in enumerate(body.get("sheets") or [])]
    except (TypeError, ValueError) as exc:
        raise invalid_argument(f"Invalid sheets: {exc}") from exc
    state = ctx.state
    with state.lock:
        titles = [t.title.casefold() for t in tabs]
        if len(set(titles)) != len(titles):
            raise invalid_argument("Invalid sheets: two sheets have the same name.")
        book = state.create_spreadsheet(title, owner=ctx.identity.name, sheets=tabs or None)
        for tab in book.tabs():
            if tab.sheet_id < 0:
                tab.sheet_id = state.new_sheet_id(book)
        props = body.get("properties") or {}
        book.locale = str(props.get("locale") or book.locale)
        book.time_zone = str(props.get("timeZone") or book.time_zone)
        return spreadsheet_resource(book, with_data=False)


@api("sheets", "write")
async def spreadsheet_batch_update(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets/{id}:batchUpdate: every request applied, or none."""
    book = ctx.file(str(ctx.request.path_params["id"]), "write")
    body = await ctx.body()
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid_argument("Must specify at least one request.")
    with ctx.state.lock:
        saved = (copy.deepcopy(book.sheets), book.name, book.locale, book.time_zone)
        replies: list[dict[str, Any]] = []
        renamed = False
        try:
            for i, request in enumerate(requests):
                if not isinstance(request, dict) or len(request) != 1:
                    raise invalid_argument(f"Invalid requests[{i}]: exactly one kind of request must be set.")
                ((name, payload),) = request.items()
                handler = HANDLERS.get(name)
                if handler is None:
                    raise ApiError(501, f"Invalid requests[{i}]: {name} is not supported by the emulator.")
                try:
                    reply = handler(ctx.state, book, payload if isinstance(payload, dict) else {})
                except RequestError as exc:
                    raise invalid_argument(f"Invalid requests[{i}].{name}: {exc}") from exc
                renamed = renamed or name == "updateSpreadsheetProperties"
                replies.append(reply or {})
        except Exception:
            book.sheets, book.name, book.locale, book.time_zone = saved
            raise
        ctx.state.commit(book, "content")
        out: dict[str, Any] = {"spreadsheetId": book.id, "replies": replies}
        if body.get("includeSpreadsheetInResponse"):
            out["updatedSpreadsheet"] = spreadsheet_resource(
                book,
                with_data=bool(body.get("responseIncludeGridData")),
                ranges=body.get("responseRanges") or None,
            )
        return out


# Routing -----------------------------------------------------------------------------------------------------

_VALUES_VERBS = {"append": values.values_append, "clear": values.values_clear}
_BATCH_VERBS = {
    ("GET", "batchGet"): values.values_batch_get,
    ("POST", "batchUpdate"): values.values_batch_update,
    ("POST", "batchClear"): values.values_batch_clear,
}


def _not_found(path: str) -> Response:
    err = ApiError(404, f"Method not found: {path}")
    return JSONResponse(sheets_body(err), status_code=404)


async def route(request: Request) -> Response:
    """Dispatch any `/v4/spreadsheets...` request to its handler."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw.decode("latin-1").split("?", 1)[0].removeprefix("/v4/spreadsheets")
    method = request.method
    params = request.scope.setdefault("path_params", {})
    if rest in ("", "/"):
        return await spreadsheet_create(request) if method == "POST" else _not_found(request.url.path)
    parts = rest.lstrip("/").split("/", 2)
    head = unquote(parts[0])
    if len(parts) == 1:
        book_id, _, verb = head.partition(":")
        params["id"] = book_id
        if verb == "" and method == "GET":
            return await spreadsheet_get(request)
        if verb == "batchUpdate" and method == "POST":
            return await spreadsheet_batch_update(request)
        return _not_found(request.url.path)
    params["id"] = head
    if parts[1].startswith("values:") and len(parts) == 2:
        handler = _BATCH_VERBS.get((method, parts[1].removeprefix("values:")))
        return await handler(request) if handler else _not_found(request.url.path)
    if parts[1] != "values" or len(parts) != 3:
        return _not_found(request.url.path)
    encoded = parts[2]
    if method == "POST":
        encoded, _, verb = encoded.rpartition(":")
        verb_handler = _VALUES_VERBS.get(verb)
        if verb_handler is None:
            return _not_found(request.url.path)
        params["range"] = unquote(encoded)
        return await verb_handler(request)
    params["range"] = unquote(encoded)
    if method == "GET":
        return await values.values_get(request)
    if method == "PUT":
        return await values.values_update(request)
    return _not_found(request.url.path)
