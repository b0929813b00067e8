"""Sheets v4 `spreadsheets.values.*`: get, batchGet, update, batchUpdate, append, clear, batchClear.

Every write request is one commit: the spreadsheet's Drive `version` goes up by one and watchers hear of it.
A batch is applied whole or not at all, as Google does.
"""

from __future__ import annotations

import copy
from typing import Any

from sheetstream.emulator.a1 import A1Range, Box, box_text
from sheetstream.emulator.errors import invalid_argument
from sheetstream.emulator.grid import (
    Target,
    check_values,
    ensure_grid,
    input_option,
    major_dimension,
    read_target,
    render_option,
    resolve,
    single_cell,
    table_end,
    value_range,
    write_values,
)
from sheetstream.emulator.guard import Ctx, api
from sheetstream.emulator.model import DriveFile


def _range(ctx: Ctx) -> str:
    return str(ctx.request.path_params["range"])


def _id(ctx: Ctx) -> str:
    return str(ctx.request.path_params["id"])


@api("sheets", "read")
async def values_get(ctx: Ctx) -> dict[str, Any]:
    """GET /v4/spreadsheets/{id}/values/{range}."""
    book = ctx.file(_id(ctx))
    option = render_option(ctx.param("valueRenderOption"))
    dimension = major_dimension(ctx.param("majorDimension"))
    with ctx.state.lock:
        return value_range(read_target(book, _range(ctx)), option, dimension)


@api("sheets", "read")
async def values_batch_get(ctx: Ctx) -> dict[str, Any]:
    """GET /v4/spreadsheets/{id}/values:batchGet?ranges=...&ranges=... (one request against quota)."""
    book = ctx.file(_id(ctx))
    option = render_option(ctx.param("valueRenderOption"))
    dimension = major_dimension(ctx.param("majorDimension"))
    ranges = ctx.request.query_params.getlist("ranges")
    with ctx.state.lock:
        out: dict[str, Any] = {"spreadsheetId": book.id}
        if ranges:
            out["valueRanges"] = [value_range(read_target(book, text), option, dimension) for text in ranges]
        return out


def _update_response(
    ctx: Ctx, book: DriveFile, target: Target, result: dict[str, Any], body: dict[str, Any]
) -> dict[str, Any]:
    out = {"spreadsheetId": book.id, **result}
    include = body.get("includeValuesInResponse") if body else None
    if include is None:
        include = ctx.flag("includeValuesInResponse")
    if include:
        option = render_option(
            body.get("responseValueRenderOption") or ctx.param("responseValueRenderOption"),
            "responseValueRenderOption",
        )
        shown = read_target(book, result["updatedRange"])
        out["updatedData"] = value_range(shown, option, "ROWS")
    return out


@api("sheets", "write")
async def values_update(ctx: Ctx) -> dict[str, Any]:
    """PUT /v4/spreadsheets/{id}/values/{range}?valueInputOption=RAW|USER_ENTERED."""
    book = ctx.file(_id(ctx), "write")
    user_entered = input_option(ctx.param("valueInputOption"))
    body = await ctx.body()
    values = check_values(body.get("values"))
    dimension = major_dimension(body.get("majorDimension"))
    with ctx.state.lock:
        target = resolve(book, _range(ctx))
        result = write_values(target, values, user_entered, dimension)
        ctx.state.commit(book)
        return _update_response(ctx, book, target, result, {})


@api("sheets", "write")
async def values_batch_update(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets/{id}/values:batchUpdate."""
    book = ctx.file(_id(ctx), "write")
    body = await ctx.body()
    user_entered = input_option(body.get("valueInputOption"))
    data = body.get("data") or []
    if not isinstance(data, list):
        raise invalid_argument("Invalid value at 'data': expected a list of ValueRange")
    with ctx.state.lock:
        saved = copy.deepcopy(book.sheets)
        try:
            responses = []
            for i, item in enumerate(data):
                if not isinstance(item, dict) or "range" not in item:
                    raise invalid_argument(f"Invalid data[{i}]: a ValueRange with a range is required")
                target = resolve(book, str(item["range"]))
                values = check_values(item.get("values"), f"data[{i}].values")
                result = write_values(
                    target, values, user_entered, major_dimension(item.get("majorDimension"))
                )
                responses.append(_update_response(ctx, book, target, result, body))
        except Exception:
            book.sheets = saved
            raise
        out: dict[str, Any] = {"spreadsheetId": book.id}
        written = [r for r in responses if "updatedCells" in r]
        if written:
            out.update(
                totalUpdatedRows=sum(r["updatedRows"] for r in written),
                totalUpdatedColumns=sum(r["updatedColumns"] for r in written),
                totalUpdatedCells=sum(r["updatedCells"] for r in written),
                totalUpdatedSheets=len({r["updatedRange"].rpartition("!")[0] for r in written}),
            )
        if responses:
            out["responses"] = responses
        ctx.state.commit(book)
        return out


@api("sheets", "write")
async def values_append(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets/{id}/values/{range}:append: write below the table found at the range."""
    book = ctx.file(_id(ctx), "write")
    user_entered = input_option(ctx.param("valueInputOption"))
    insert = ctx.param("insertDataOption") or "OVERWRITE"
    if insert not in ("OVERWRITE", "INSERT_ROWS"):
        raise invalid_argument(f"Invalid insertDataOption: {insert}")
    body = await ctx.body()
    values = check_values(body.get("values"))
    dimension = major_dimension(body.get("majorDimension"))
    with ctx.state.lock:
        target = resolve(book, _range(ctx))
        sheet, box = target.sheet, target.box
        col_end = sheet.col_count if single_cell(target.rng) else min(box.c1, sheet.col_count)
        end = table_end(sheet, box, col_end)
        out: dict[str, Any] = {"spreadsheetId": book.id}
        if end > box.r0:
            last_col = max(
                (
                    c + 1
                    for r in range(box.r0, end)
                    for c in range(box.c0, col_end)
                    if sheet.get(r, c) is not None
                ),
                default=box.c0 + 1,
            )
            out["tableRange"] = box_text(sheet.title, Box(box.r0, box.c0, end, last_col))
        height, width = len(values), max((len(r) for r in values), default=0)
        if dimension == "COLUMNS":
            height, width = width, height
        if insert == "INSERT_ROWS" and height:
            sheet.insert_rows(end, height)
        ensure_grid(sheet, end + height, box.c0 + width)
        at = Target(
            sheet, A1Range(sheet.title, end, box.c0), Box(end, box.c0, sheet.row_count, sheet.col_count)
        )
        result = write_values(at, values, user_entered, dimension)
        ctx.state.commit(book)
        out["updates"] = _update_response(ctx, book, at, result, {})
        return out


@api("sheets", "write")
async def values_clear(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets/{id}/values/{range}:clear."""
    book = ctx.file(_id(ctx), "write")
    await ctx.body()
    with ctx.state.lock:
        target = read_target(book, _range(ctx))
        target.sheet.clear(target.box)
        ctx.state.commit(book)
        return {"spreadsheetId": book.id, "clearedRange": target.text}


@api("sheets", "write")
async def values_batch_clear(ctx: Ctx) -> dict[str, Any]:
    """POST /v4/spreadsheets/{id}/values:batchClear."""
    book = ctx.file(_id(ctx), "write")
    body = await ctx.body()
    ranges = body.get("ranges") or []
    with ctx.state.lock:
        targets = [read_target(book, str(text)) for text in ranges]  # all parsed before any is cleared
        for target in targets:
            target.sheet.clear(target.box)
        ctx.state.commit(book)
        out: dict[str, Any] = {"spreadsheetId": book.id}
        if targets:
            out["clearedRanges"] = [t.text for t in targets]
        return out
