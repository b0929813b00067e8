"""Acceptance: gspread, unmodified, against the emulator: a spreadsheet's life, and Google's errors as gspread raises them."""

from __future__ import annotations

from typing import Any

import gspread
import pytest

from sheetstream.emulator import RunningEmulator


def test_create_write_tabs_rows_and_read_back(gc: Any, emulator: RunningEmulator) -> None:
    book = gc.create("gspread life")
    assert book.sheet1.title == "Sheet1" and book.sheet1.id == 0
    ws = book.sheet1
    ws.update([["name", "age"], ["Ada", 36], ["Bob", "41"]], "A1")
    ws.update([["=SUM(B2:B3)", "12.50"]], "A5", value_input_option="USER_ENTERED")

    tab = book.add_worksheet("Scratch", rows=10, cols=5)
    tab.update([["x"]], "B2")
    tab.update_title("Renamed")
    assert [w.title for w in book.worksheets()] == ["Sheet1", "Renamed"]
    assert book.worksheet("Renamed").id == tab.id  # the sheetId survives the rename

    ws.insert_rows([["Cy", 7]], 2)
    ws.delete_rows(4)  # Bob
    ws.append_row(["Dee", 9])

    values = ws.get_all_values()
    assert values[:3] == [["name", "age"], ["Cy", "7"], ["Ada", "36"]]
    assert values[4] == ["", "12.5"]  # formulas are stored, not evaluated: FORMATTED shows ""
    assert ws.get("A5", value_render_option="FORMULA") == [["=SUM(B2:B3)"]]
    assert ws.get("B2:B3", value_render_option="UNFORMATTED_VALUE") == [[7], [36]]
    assert values[3] == ["Dee", "9"]  # appended below the contiguous table that starts at A1
    assert book.worksheet("Renamed").get_all_values() == [["", ""], ["", "x"]]

    book.del_worksheet(book.worksheet("Renamed"))
    assert [w.title for w in book.worksheets()] == ["Sheet1"]
    assert gc.open("gspread life").id == book.id
    assert book.get_lastUpdateTime().endswith("Z")
    with emulator.state.lock:
        assert emulator.state.files[book.id].sheets[0].row_count == 1000  # one inserted, one deleted


def test_batch_get_and_clear(gc: Any) -> None:
    ws = gc.create("gspread batch").sheet1
    ws.update([["a", "b", "c"], ["d", "", "f"], [], ["g"]], "A1")
    got = ws.batch_get(["A1:C2", "C:C", "3:4"])
    assert [list(r) for r in got] == [[["a", "b", "c"], ["d", "", "f"]], [["c"], ["f"]], [[], ["g"]]]
    ws.batch_clear(["A1:A2"])
    assert ws.get_all_values() == [["", "b", "c"], ["", "", "f"], ["", "", ""], ["g", "", ""]]


def test_unknown_spreadsheet_raises_spreadsheet_not_found(gc: Any) -> None:
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        gc.open_by_key("1" * 44)
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        gc.open("no spreadsheet has this title")


def test_bad_range_raises_api_error_400(gc: Any) -> None:
    ws = gc.create("gspread bad range").sheet1
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.spreadsheet.values_get("NOPE!A5:F15")
    assert info.value.code == 400
    assert info.value.error == {
        "code": 400,
        "message": "Unable to parse range: NOPE!A5:F15",
        "status": "INVALID_ARGUMENT",
    }


def test_no_permission_raises_permission_error(gc: Any, other_gc: Any) -> None:
    book = gc.create("gspread private")
    with pytest.raises(PermissionError):
        other_gc.open_by_key(book.id)
    book.share(
        "other@sheetstream-test.iam.gserviceaccount.com", perm_type="user", role="reader", notify=False
    )
    assert other_gc.open_by_key(book.id).sheet1.get_all_values() == [[]]
    with pytest.raises(gspread.exceptions.APIError) as info:
        other_gc.open_by_key(book.id).sheet1.update([["no"]], "A1")
    assert info.value.code == 403


def test_over_quota_raises_api_error_429(gc: Any, emulator: RunningEmulator, clock: Any) -> None:
    ws = gc.create("gspread quota").sheet1
    emulator.state.quotas.configure(read_per_user=5)
    emulator.state.quotas.reset()
    clock.advance(60 - clock() % 60)  # start of a quota window: a minute boundary mid-test would refill it
    for _ in range(5):
        ws.get("A1")
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.get("A1")
    assert info.value.code == 429
    assert info.value.error["status"] == "RESOURCE_EXHAUSTED"
    assert info.value.error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"
    clock.advance(60)  # the next minute refills the quota
    assert ws.acell("A1").value is None
