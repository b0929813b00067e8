"""Parsing CSV, TSV, XLSX and JSON bytes into tabs, and tabs into snapshots with stable ids."""

from __future__ import annotations

import io
from datetime import date, datetime

import openpyxl
import pytest

from sheetstream.core.model import Snapshot, Tab
from sheetstream.errors import SourceError
from sheetstream.sources.parse import ParsedTab, build_snapshot, parse


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_csv_keeps_strings_and_quoting_and_strips_bom() -> None:
    data = '\ufeffname,note\n"Smith, J","two\nlines"\n3,4\n'.encode()
    [tab] = parse(data, "csv", origin="test", default_title="people")
    assert tab.title == "people"
    assert tab.rows == [["name", "note"], ["Smith, J", "two\nlines"], ["3", "4"]]


def test_tsv_splits_on_tabs() -> None:
    [tab] = parse(b"a\tb,c\n1\t2\n", "tsv", origin="test")
    assert tab.title == "Sheet1"
    assert tab.rows == [["a", "b,c"], ["1", "2"]]


def test_csv_with_declared_encoding() -> None:
    [tab] = parse("caf\u00e9,x\n".encode("latin-1"), "csv", origin="test", encoding="latin-1")
    assert tab.rows == [["caf\u00e9", "x"]]


def test_csv_not_utf8_names_origin_format_and_byte() -> None:
    with pytest.raises(SourceError) as info:
        parse(b"abc,d\n\xff\xfe", "csv", origin="file data.csv")
    assert str(info.value) == "file data.csv: not valid UTF-8 at byte 6 (CSV must be UTF-8 text)"
    assert info.value.retryable


def test_csv_unknown_encoding_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="unknown text encoding 'klingon'"):
        parse(b"a", "csv", origin="test", encoding="klingon")


def test_xlsx_one_tab_per_sheet_with_typed_cells() -> None:
    data = xlsx_bytes(
        {
            "Prices": [
                ["item", "price", "when"],
                ["tea", 2.5, datetime(2024, 1, 2, 3, 4, 5)],
                ["jam", 3, None],
            ],
            "Empty": [],
            "Dates": [[None, date(2024, 5, 6), True]],
        }
    )
    tabs = parse(data, "xlsx", origin="test")
    assert [t.title for t in tabs] == ["Prices", "Empty", "Dates"]
    assert tabs[0].rows == [["item", "price", "when"], ["tea", 2.5, "2024-01-02T03:04:05"], ["jam", 3, ""]]
    assert isinstance(tabs[0].rows[2][1], int)
    assert build_snapshot(None, tabs).tabs[1].rows == ()
    assert tabs[2].rows == [["", "2024-05-06T00:00:00", True]]


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 not really", b"hello"])
def test_xlsx_garbage(data: bytes) -> None:
    with pytest.raises(SourceError, match=r"^file x\.xlsx: not a valid XLSX workbook") as info:
        parse(data, "xlsx", origin="file x.xlsx")
    assert info.value.retryable


def test_xlsx_truncated() -> None:
    data = xlsx_bytes({"A": [[1, 2]] * 50})
    with pytest.raises(SourceError, match="not a valid XLSX workbook"):
        parse(data[: len(data) // 2], "xlsx", origin="test")


def test_json_list_of_lists_with_nested_values() -> None:
    [tab] = parse(
        b'[["a", 1, 2.5, true, null], [{"x": [1, 2]}, ["y"]]]', "json", origin="t", default_title="d"
    )
    assert tab.title == "d"
    assert tab.rows == [["a", 1, 2.5, True, ""], ['{"x":[1,2]}', '["y"]']]


def test_json_list_of_objects_header_is_union_of_keys_in_first_seen_order() -> None:
    [tab] = parse(b'[{"b": 1, "a": 2}, {"c": "x", "a": 3}, {}]', "json", origin="t")
    assert tab.rows == [["b", "a", "c"], [1, 2, ""], ["", 3, "x"], ["", "", ""]]


def test_json_tabs_document_with_ids() -> None:
    doc = b'{"tabs": [{"title": "A", "rows": [[1]], "id": 7}, {"rows": [{"k": "v"}]}]}'
    tabs = parse(doc, "json", origin="t")
    assert tabs == [ParsedTab("A", [[1]], 7), ParsedTab("Sheet2", [["k"], ["v"]], None)]


def test_json_object_of_titles() -> None:
    # "tabs" holding plain rows (not tab objects) is just a tab named "tabs".
    tabs = parse(b'{"one": [[1, 2]], "two": [{"k": 1}], "tabs": [[3]]}', "json", origin="t")
    assert tabs == [ParsedTab("one", [[1, 2]]), ParsedTab("two", [["k"], [1]]), ParsedTab("tabs", [[3]])]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "t: invalid JSON: empty document"),
        (b'{"a": [[1]', "t: invalid JSON: "),
        (
            b"42",
            't: JSON must be a list of rows, an object of tab title -> rows, or {"tabs": [...]}; got a number',
        ),
        (
            b'[[1], {"a": 1}]',
            "t: JSON: rows must be all lists or all objects; row 1 is an object while row 0 is a list",
        ),
        (b'["x"]', "t: JSON: rows must be all lists or all objects; row 0 is a string"),
        (b'{"A": "text"}', "t: JSON tab 'A': expected a list of rows, got a string"),
        (b'{"tabs": [{"rows": [], "id": -1}]}', "t: JSON tabs[0].id must be a non-negative integer, got -1"),
        (
            b'{"tabs": [{"rows": [], "id": true}]}',
            "t: JSON tabs[0].id must be a non-negative integer, got True",
        ),
        (b'{"tabs": [{"rows": [], "title": 3}]}', "t: JSON tabs[0].title must be a string, got a number"),
    ],
)
def test_json_garbage_messages(data: bytes, message: str) -> None:
    with pytest.raises(SourceError) as info:
        parse(data, "json", origin="t")
    assert str(info.value).startswith(message)
    assert info.value.retryable


def test_build_snapshot_assigns_ids_and_keeps_them_across_a_rename() -> None:
    first = build_snapshot(None, [ParsedTab("A", [["1"]]), ParsedTab("B", [["2"]])])
    assert [(t.id, t.title) for t in first.tabs] == [(0, "A"), (1, "B")]
    renamed = build_snapshot(first, [ParsedTab("Alpha", [["1"]]), ParsedTab("B", [["2"]])])
    assert [(t.id, t.title) for t in renamed.tabs] == [(0, "Alpha"), (1, "B")]


def test_build_snapshot_uses_explicit_ids() -> None:
    snap = build_snapshot(None, [ParsedTab("A", [[1]], 5), ParsedTab("B", [], 2)])
    assert snap == Snapshot((Tab(5, "A", ((1,),)), Tab(2, "B", ())))


def test_build_snapshot_mixed_ids_never_collide() -> None:
    previous = Snapshot((Tab(0, "A"), Tab(1, "B")))
    # "B" keeps its id; "new" must not take id 0, which the document gives to "X" explicitly.
    snap = build_snapshot(previous, [ParsedTab("X", [], 0), ParsedTab("B", []), ParsedTab("new", [])])
    ids = {t.title: t.id for t in snap.tabs}
    assert ids["X"] == 0
    assert ids["B"] == 1
    assert ids["new"] not in (0, 1)


def test_build_snapshot_rejects_duplicate_explicit_ids() -> None:
    with pytest.raises(SourceError, match="duplicate tab ids"):
        build_snapshot(None, [ParsedTab("A", [], 1), ParsedTab("B", [], 1)])
