"""A1 parsing and echoing, value parsing and rendering, Google's trimming, field masks: pure functions."""

from __future__ import annotations

import pytest

from sheetstream.emulator.a1 import A1Range, Box, RangeError, bind, box_text, parse_range, quote_title
from sheetstream.emulator.cells import SKIP, Cell, format_number, parse_input, render, transpose, trim
from sheetstream.emulator.fields import FieldMaskError, apply_fields, parse_fields, selects
from sheetstream.emulator.grid import resolve, value_range
from sheetstream.emulator.model import SPREADSHEET_MIME, DriveFile, Sheet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sheet1!A1:C5", A1Range("Sheet1", 0, 0, 5, 3)),
        ("A1:C5", A1Range(None, 0, 0, 5, 3)),
        ("C5:A1", A1Range(None, 0, 0, 5, 3)),
        ("B3", A1Range(None, 2, 1, 3, 2)),
        ("$B$3", A1Range(None, 2, 1, 3, 2)),
        ("A:C", A1Range(None, 0, 0, None, 3)),
        ("2:5", A1Range(None, 1, 0, 5, None)),
        ("A2:C", A1Range(None, 1, 0, None, 3)),
        ("'My Tab'!AA10:AB", A1Range("My Tab", 9, 26, None, 28)),
        ("'It''s'!A1", A1Range("It's", 0, 0, 1, 1)),
        ("'a!b'!B:B", A1Range("a!b", 0, 1, None, 2)),
        ("'Only a tab'", A1Range("Only a tab")),
        ("My Tab!A1", A1Range("My Tab", 0, 0, 1, 1)),
    ],
)
def test_parse_range(text: str, expected: A1Range) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text", ["", "NOPE!A5:F15!", "A:5", "Sheet1!A", "'unclosed!A1", "'x'A1", "!A1", "A0", "1:A"]
)
def test_parse_range_rejects(text: str) -> None:
    with pytest.raises(RangeError):
        parse_range(text)


def test_bind_and_echo_close_open_ends_at_the_grid() -> None:
    assert bind(A1Range("S", None, 0, None, 1), 10, 26) == Box(0, 0, 10, 1)
    assert bind(A1Range("S"), 1000, 26) == Box(0, 0, 1000, 26)
    assert box_text("Sheet1", Box(0, 0, 1000, 26)) == "Sheet1!A1:Z1000"
    assert box_text("My Tab", Box(1, 1, 2, 2)) == "'My Tab'!B2"
    assert [quote_title(t) for t in ["Data", "A1", "It's", "2024", "R1C1", "_x"]] == [
        "Data",
        "'A1'",
        "'It''s'",
        "'2024'",
        "'R1C1'",
        "_x",
    ]


def _book() -> DriveFile:
    sheet = Sheet(0, "Sheet1", row_count=10, col_count=5)
    other = Sheet(7, "Data", index=1, row_count=4, col_count=3)
    return DriveFile("id", "Book", SPREADSHEET_MIME, 0.0, 0.0, sheets=[sheet, other])


def test_resolve_prefers_a_tab_title_then_cells_on_the_first_tab() -> None:
    book = _book()
    assert resolve(book, "data").sheet.sheet_id == 7  # titles match case-insensitively
    assert resolve(book, "Data").box == Box(0, 0, 4, 3)
    assert resolve(book, "B2").sheet.sheet_id == 0
    assert resolve(book, "Data!A:A").text == "Data!A1:A4"


@pytest.mark.parametrize(
    ("raw", "user_entered", "cell"),
    [
        ("12", True, Cell(12)),
        ("-1.50", True, Cell(-1.5)),
        ("1e3", True, Cell(1000)),
        ("12", False, Cell("12")),
        ("true", True, Cell(True)),
        ("=A1+1", True, Cell(None, "=A1+1")),
        ("=A1+1", False, Cell("=A1+1")),
        ("'007", True, Cell("007")),
        ("1,234", True, Cell("1,234")),
        (3.0, False, Cell(3.0)),
        (False, True, Cell(False)),
        ("", True, None),
    ],
)
def test_parse_input(raw: object, user_entered: bool, cell: Cell | None) -> None:
    assert parse_input(raw, user_entered) == cell


def test_null_is_skip_and_lists_are_refused() -> None:
    assert parse_input(None, True) is SKIP
    with pytest.raises(ValueError, match="list_value"):
        parse_input([1], True)


def test_render_options() -> None:
    formula = Cell(3, "=1+2")
    assert [render(formula, o) for o in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")] == [
        "3",
        3,
        "=1+2",
    ]
    assert render(Cell(None, "=NOW()"), "FORMATTED_VALUE") == ""
    assert render(Cell(True), "FORMATTED_VALUE") == "TRUE"
    assert render(Cell(2.0), "UNFORMATTED_VALUE") == 2 and isinstance(
        render(Cell(2.0), "UNFORMATTED_VALUE"), int
    )
    assert [format_number(x) for x in (1.0, 0.1 + 0.2, 3.14159265358979, 1e20, -7)] == [
        "1",
        "0.3",
        "3.141592654",
        "1E+20",
        "-7",
    ]


def test_trim_drops_trailing_empties_and_keeps_inner_gaps() -> None:
    assert trim([[None, "a", None], [], [None], ["b"], [None, None], []]) == [["", "a"], [], [], ["b"]]
    assert trim([[None], []]) == []
    assert transpose([["a", "b"], ["c"]], 2) == [["a", "c"], ["b", None]]


def test_value_range_trims_ragged_rows_and_omits_values_when_empty() -> None:
    book = _book()
    sheet = book.tabs()[0]
    sheet.set(1, 1, Cell("x"))
    sheet.set(3, 0, Cell(5))
    sheet.set(3, 3, Cell(None, "=X"))
    target = resolve(book, "Sheet1")
    assert value_range(target, "FORMATTED_VALUE", "ROWS") == {
        "range": "Sheet1!A1:E10",
        "majorDimension": "ROWS",
        "values": [[], ["", "x"], [], ["5", "", "", ""]],
    }
    assert value_range(target, "FORMULA", "COLUMNS")["values"] == [
        ["", "", "", 5],
        ["", "x"],
        [],
        ["", "", "", "=X"],
    ]
    assert "values" not in value_range(resolve(book, "Data"), "FORMATTED_VALUE", "ROWS")


def test_field_masks() -> None:
    resource = {
        "a": 1,
        "sheets": [{"properties": {"sheetId": 0, "title": "T", "index": 0}, "data": [1]}],
        "z": {"y": 2, "x": 3},
    }
    assert apply_fields(parse_fields("sheets.properties(sheetId,title)"), resource) == {
        "sheets": [{"properties": {"sheetId": 0, "title": "T"}}]
    }
    assert apply_fields(parse_fields("a,z/y"), resource) == {"a": 1, "z": {"y": 2}}
    assert apply_fields(parse_fields("*"), resource) == resource
    assert selects(parse_fields("sheets"), "sheets", "data")
    assert not selects(parse_fields("sheets.properties"), "sheets", "data")
    for bad in ("a(b", "a,,b", "(x)"):
        with pytest.raises(FieldMaskError):
            parse_fields(bad)
