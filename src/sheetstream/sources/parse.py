"""Parse the bytes of a CSV, TSV, XLSX or JSON document into titled tabs, and those into a Snapshot.

Formats:

- CSV / TSV: one tab titled `default_title` (a file's stem, else "Sheet1"); every cell is a string. The bytes are
  UTF-8 (a BOM is accepted) unless an encoding is given (an HTTP charset).
- XLSX: one tab per worksheet in workbook order. Empty cells are "", numbers stay numbers, dates and times become
  ISO-8601 strings; formulas give their cached values.
- JSON, one of:
  (a) a list of lists: one tab of rows;
  (b) a list of objects: a header row (the union of the keys, in first-seen order), then one row per object;
  (c) ``{"tabs": [{"title": ..., "rows": [...], "id": 7?}, ...]}``: an explicit ``id`` is the tab's id;
  (d) an object of title -> rows, where rows are as in (a) or (b).
  Nested lists and objects inside a cell become compact JSON strings; null becomes "".

Any malformed input raises SourceError (retryable: a file may be half-written, a server may be mid-deploy) whose
message names the origin, the format and the problem.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, TypeAlias

import orjson

from sheetstream.core.model import Cell, Rows, Snapshot, Tab, normalize_cell
from sheetstream.core.tabs import assign_tab_ids
from sheetstream.errors import SourceError

Format: TypeAlias = Literal["csv", "tsv", "xlsx", "json"]
FORMATS: tuple[Format, ...] = ("csv", "tsv", "xlsx", "json")

RawRows: TypeAlias = list[list[Cell]]


@dataclass(frozen=True, slots=True)
class ParsedTab:
    """One tab read from a document; `id` is set only when the document names it (JSON form (c))."""

    title: str
    rows: RawRows
    id: int | None = None


def parse(
    data: bytes,
    fmt: Format,
    *,
    origin: str,
    default_title: str = "Sheet1",
    encoding: str | None = None,
) -> list[ParsedTab]:
    """Parse `data` as `fmt`; `origin` (e.g. "file /data/x.csv") prefixes every error message."""
    if fmt in ("csv", "tsv"):
        return [ParsedTab(default_title, _parse_delimited(data, fmt, origin, encoding))]
    if fmt == "xlsx":
        return _parse_xlsx(data, origin)
    if fmt == "json":
        return _parse_json(data, origin, default_title)
    raise ValueError(f"unknown format {fmt!r}")  # callers validate the format first


def build_snapshot(previous: Snapshot | None, tabs: Sequence[ParsedTab]) -> Snapshot:
    """Turn parsed tabs into a Snapshot, keeping tab ids stable against `previous` where the document has none."""
    explicit = [t.id for t in tabs if t.id is not None]
    if len(set(explicit)) != len(explicit):
        raise SourceError(f"duplicate tab ids in the document: {sorted(explicit)}")
    if len(explicit) == len(tabs):
        return Snapshot(tuple(Tab(t.id, t.title, _as_rows(t.rows)) for t in tabs if t.id is not None))
    taken = set(explicit)
    # Tabs without an id are matched only against previous tabs whose id the document does not claim itself.
    prior = None if previous is None else Snapshot(tuple(t for t in previous.tabs if t.id not in taken))
    implicit = [(t.title, _as_rows(t.rows)) for t in tabs if t.id is None]
    assigned = list(assign_tab_ids(prior, implicit).tabs)
    seen = [*taken, *(t.id for t in assigned), *(t.id for t in (previous.tabs if previous else ()))]
    next_id = max(seen, default=-1) + 1
    pending = iter(assigned)
    out: list[Tab] = []
    for t in tabs:
        if t.id is not None:
            out.append(Tab(t.id, t.title, _as_rows(t.rows)))
            continue
        tab = next(pending)
        if tab.id in taken:  # a new tab got an id the document gives to another tab explicitly
            tab, next_id = Tab(next_id, tab.title, tab.rows), next_id + 1
        out.append(tab)
    return Snapshot(tuple(out))


def _as_rows(rows: RawRows) -> Rows:
    return tuple(tuple(row) for row in rows)


# --- CSV / TSV -----------------------------------------------------------------------------------------------


def _parse_delimited(data: bytes, fmt: Format, origin: str, encoding: str | None) -> RawRows:
    label = fmt.upper()
    try:
        text = data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{origin}: not valid {encoding or 'UTF-8'} at byte {exc.start} ({label} must be UTF-8 text)"
        ) from exc
    except LookupError as exc:
        raise SourceError(f"{origin}: unknown text encoding {encoding!r}") from exc
    if encoding and text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    try:
        return [list(row) for row in reader]
    except csv.Error as exc:
        raise SourceError(f"{origin}: invalid {label} at line {reader.line_num}: {exc}") from exc


# --- XLSX ----------------------------------------------------------------------------------------------------


def _xlsx_cell(value: object) -> Cell:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return normalize_cell(value)


def _parse_xlsx(data: bytes, origin: str) -> list[ParsedTab]:
    import openpyxl  # imported here: only XLSX sources pay for it

    try:
        # openpyxl warns about harmless oddities of workbooks written by other tools (unknown extensions, styles).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                return [
                    ParsedTab(
                        ws.title, [[_xlsx_cell(v) for v in row] for row in ws.iter_rows(values_only=True)]
                    )
                    for ws in book.worksheets
                ]
            finally:
                book.close()
    except zipfile.BadZipFile as exc:
        raise SourceError(
            f"{origin}: not a valid XLSX workbook (truncated or not a zip file: {exc})"
        ) from exc
    except Exception as exc:  # openpyxl raises many types (KeyError, ValueError, XML errors) for broken parts
        raise SourceError(f"{origin}: not a valid XLSX workbook ({type(exc).__name__}: {exc})") from exc


# --- JSON ----------------------------------------------------------------------------------------------------


def _json_cell(value: Any) -> Cell:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return normalize_cell(value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _json_rows(value: Any, where: str) -> RawRows:
    """Rows from a list of lists (a) or a list of objects (b)."""
    if not isinstance(value, list):
        raise SourceError(f"{where}: expected a list of rows, got {_kind(value)}")
    if all(isinstance(r, list) for r in value):
        return [[_json_cell(c) for c in row] for row in value]
    if all(isinstance(r, dict) for r in value):
        header: dict[str, None] = {}
        for obj in value:
            header.update(dict.fromkeys(obj))
        return [list(header), *[[_json_cell(obj.get(k)) for k in header] for obj in value]]
    first = value[0]
    bad = next(i for i, r in enumerate(value) if not isinstance(r, list | dict) or type(r) is not type(first))
    also = f" while row 0 is {_kind(first)}" if bad else ""
    raise SourceError(
        f"{where}: rows must be all lists or all objects; row {bad} is {_kind(value[bad])}{also}"
    )


def _is_tabs_document(doc: dict[str, Any]) -> bool:
    tabs = doc.get("tabs")
    return isinstance(tabs, list) and all(isinstance(t, dict) and "rows" in t for t in tabs)


def _parse_json(data: bytes, origin: str, default_title: str) -> list[ParsedTab]:
    where = f"{origin}: JSON"
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        what = "empty document" if not data.strip() else str(exc)
        raise SourceError(f"{origin}: invalid JSON: {what}") from exc
    if isinstance(doc, list):
        return [ParsedTab(default_title, _json_rows(doc, where))]
    if not isinstance(doc, dict):
        raise SourceError(
            f'{where} must be a list of rows, an object of tab title -> rows, or {{"tabs": [...]}};'
            f" got {_kind(doc)}"
        )
    if _is_tabs_document(doc):
        out: list[ParsedTab] = []
        for i, tab in enumerate(doc["tabs"]):
            tab_id = tab.get("id")
            if tab_id is not None and (not isinstance(tab_id, int) or isinstance(tab_id, bool) or tab_id < 0):
                raise SourceError(f"{where} tabs[{i}].id must be a non-negative integer, got {tab_id!r:.50}")
            title = tab.get("title", f"Sheet{i + 1}")
            if not isinstance(title, str):
                raise SourceError(f"{where} tabs[{i}].title must be a string, got {_kind(title)}")
            out.append(ParsedTab(title, _json_rows(tab["rows"], f"{where} tabs[{i}].rows"), tab_id))
        return out
    return [ParsedTab(title, _json_rows(rows, f"{where} tab {title!r}")) for title, rows in doc.items()]
