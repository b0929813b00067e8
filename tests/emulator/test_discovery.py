"""Acceptance: google-api-python-client built from the bundled discovery documents, unmodified, against the emulator.

Every answer is also checked against the discovery document's schema (no field Google does not declare).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from tests.emulator.schemas import check


def _create(sheets: Any, title: str, **body: Any) -> dict[str, Any]:
    book = sheets.spreadsheets().create(body={"properties": {"title": title}, **body}).execute()
    check("sheets", "Spreadsheet", book)
    return book  # type: ignore[no-any-return]


def _error(info: pytest.ExceptionInfo[HttpError]) -> dict[str, Any]:
    return json.loads(info.value.content)["error"]  # type: ignore[no-any-return]


def test_spreadsheet_life(sheets: Any, drive: Any) -> None:
    book = _create(sheets, "discovery life")
    sid = book["spreadsheetId"]
    assert book["sheets"][0]["properties"]["sheetId"] == 0
    values = sheets.spreadsheets().values()

    update = values.update(
        spreadsheetId=sid,
        range="Sheet1!A1",
        valueInputOption="USER_ENTERED",
        body={"values": [["id", "qty"], ["a", "3"], ["b", "4.5"], ["c", "TRUE"]]},
        includeValuesInResponse=True,
    ).execute()
    check("sheets", "UpdateValuesResponse", update)
    assert update["updatedRange"] == "Sheet1!A1:B4" and update["updatedCells"] == 8
    assert update["updatedData"]["values"][3] == ["c", "TRUE"]

    reply = (
        sheets.spreadsheets()
        .batchUpdate(
            spreadsheetId=sid,
            body={
                "requests": [
                    {
                        "addSheet": {
                            "properties": {
                                "title": "My Tab",
                                "gridProperties": {"rowCount": 5, "columnCount": 3},
                            }
                        }
                    },
                    {
                        "insertDimension": {
                            "range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}
                        }
                    },
                    {
                        "updateCells": {
                            "start": {"sheetId": 0, "rowIndex": 1},
                            "fields": "userEnteredValue",
                            "rows": [
                                {
                                    "values": [
                                        {"userEnteredValue": {"stringValue": "new"}},
                                        {"userEnteredValue": {"numberValue": 1}},
                                    ]
                                }
                            ],
                        }
                    },
                ]
            },
        )
        .execute()
    )
    check("sheets", "BatchUpdateSpreadsheetResponse", reply)
    tab_id = reply["replies"][0]["addSheet"]["properties"]["sheetId"]
    assert reply["replies"][1:] == [{}, {}]

    sheets.spreadsheets().batchUpdate(
        spreadsheetId=sid,
        body={
            "requests": [
                {
                    "updateSheetProperties": {
                        "properties": {"sheetId": tab_id, "title": "It's mine"},
                        "fields": "title",
                    }
                },
                {
                    "deleteDimension": {
                        "range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 2, "endIndex": 3}
                    }
                },
            ]
        },
    ).execute()
    append = values.append(
        spreadsheetId=sid, range="'It''s mine'!A1", valueInputOption="RAW", body={"values": [["raw", "=1+1"]]}
    ).execute()
    check("sheets", "AppendValuesResponse", append)
    assert append["updates"]["updatedRange"] == "'It''s mine'!A1:B1"

    got = values.batchGet(
        spreadsheetId=sid,
        ranges=["Sheet1", "'It''s mine'!A:B", "Sheet1!B2:B"],
        valueRenderOption="UNFORMATTED_VALUE",
    ).execute()
    check("sheets", "BatchGetValuesResponse", got)
    assert [r["range"] for r in got["valueRanges"]] == [
        "Sheet1!A1:Z1000",
        "'It''s mine'!A1:B5",
        "Sheet1!B2:B1000",
    ]
    assert got["valueRanges"][0]["values"] == [["id", "qty"], ["new", 1], ["b", 4.5], ["c", True]]
    assert got["valueRanges"][1]["values"] == [["raw", "=1+1"]]  # RAW keeps text as text
    assert got["valueRanges"][2]["values"] == [[1], [4.5], [True]]

    columns = values.get(spreadsheetId=sid, range="A1:B2", majorDimension="COLUMNS").execute()
    assert columns == {
        "range": "Sheet1!A1:B2",
        "majorDimension": "COLUMNS",
        "values": [["id", "new"], ["qty", "1"]],
    }

    meta = (
        sheets.spreadsheets()
        .get(spreadsheetId=sid, fields="sheets.properties(sheetId,title,index)")
        .execute()
    )
    assert meta == {
        "sheets": [
            {"properties": {"sheetId": 0, "title": "Sheet1", "index": 0}},
            {"properties": {"sheetId": tab_id, "title": "It's mine", "index": 1}},
        ]
    }
    grid = (
        sheets.spreadsheets().get(spreadsheetId=sid, ranges=["Sheet1!A2:B2"], includeGridData=True).execute()
    )
    check("sheets", "Spreadsheet", grid)
    assert [s["properties"]["title"] for s in grid["sheets"]] == ["Sheet1"]
    cells = grid["sheets"][0]["data"][0]["rowData"][0]["values"]
    assert cells[1] == {
        "userEnteredValue": {"numberValue": 1},
        "effectiveValue": {"numberValue": 1},
        "formattedValue": "1",
    }

    cleared = values.batchClear(spreadsheetId=sid, body={"ranges": ["Sheet1!A2:B4"]}).execute()
    check("sheets", "BatchClearValuesResponse", cleared)
    assert "values" not in values.get(spreadsheetId=sid, range="A2:B4").execute()

    sheets.spreadsheets().batchUpdate(
        spreadsheetId=sid, body={"requests": [{"deleteSheet": {"sheetId": tab_id}}]}
    ).execute()
    info = drive.files().get(fileId=sid, fields="id,name,mimeType,version,modifiedTime").execute()
    check("drive", "File", info)
    assert info["name"] == "discovery life" and int(info["version"]) >= 6


def test_batch_update_is_all_or_nothing(sheets: Any) -> None:
    sid = _create(sheets, "discovery atomic")["spreadsheetId"]
    with pytest.raises(HttpError) as info:
        sheets.spreadsheets().batchUpdate(
            spreadsheetId=sid,
            body={
                "requests": [
                    {"addSheet": {"properties": {"title": "Two"}}},
                    {"deleteSheet": {"sheetId": 12345}},
                ]
            },
        ).execute()
    assert info.value.status_code == 400
    assert _error(info)["message"] == "Invalid requests[1].deleteSheet: No grid with id: 12345"
    titles = [
        s["properties"]["title"] for s in sheets.spreadsheets().get(spreadsheetId=sid).execute()["sheets"]
    ]
    assert titles == ["Sheet1"]


def test_values_batch_update_and_limits(sheets: Any) -> None:
    sid = _create(sheets, "discovery limits")["spreadsheetId"]
    values = sheets.spreadsheets().values()
    result = values.batchUpdate(
        spreadsheetId=sid,
        body={
            "valueInputOption": "RAW",
            "data": [{"range": "A1:B1", "values": [[1, 2]]}, {"range": "C3", "values": [["x"]]}],
        },
    ).execute()
    check("sheets", "BatchUpdateValuesResponse", result)
    assert result["totalUpdatedCells"] == 3 and result["totalUpdatedSheets"] == 1
    with pytest.raises(HttpError) as too_big:
        values.update(
            spreadsheetId=sid, range="A1:B1", valueInputOption="RAW", body={"values": [[1], [2]]}
        ).execute()
    assert (
        _error(too_big)["message"]
        == "Requested writing within range [Sheet1!A1:B1], but tried writing to row [2]"
    )
    with pytest.raises(HttpError) as past_grid:
        values.update(
            spreadsheetId=sid, range="A1001", valueInputOption="RAW", body={"values": [[1]]}
        ).execute()
    assert (
        _error(past_grid)["message"]
        == "Range (Sheet1!A1001) exceeds grid limits. Max rows: 1000, max columns: 26"
    )
    with pytest.raises(HttpError) as no_option:
        values.update(spreadsheetId=sid, range="A1", body={"values": [[1]]}).execute()
    assert _error(no_option)["message"] == "Invalid valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED"


def test_errors_raise_http_error_with_google_bodies(sheets: Any, other_sheets: Any, emulator: Any, clock: Any) -> None:
    with pytest.raises(HttpError) as missing:
        sheets.spreadsheets().get(spreadsheetId="no-such-spreadsheet").execute()
    assert missing.value.status_code == 404
    assert _error(missing) == {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
    }

    sid = _create(sheets, "discovery errors")["spreadsheetId"]
    with pytest.raises(HttpError) as bad:
        sheets.spreadsheets().values().get(spreadsheetId=sid, range="NOPE!A5:F15").execute()
    assert bad.value.status_code == 400
    assert _error(bad) == {
        "code": 400,
        "message": "Unable to parse range: NOPE!A5:F15",
        "status": "INVALID_ARGUMENT",
    }

    with pytest.raises(HttpError) as denied:
        other_sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()
    assert denied.value.status_code == 403
    assert _error(denied) == {
        "code": 403,
        "message": "The caller does not have permission",
        "status": "PERMISSION_DENIED",
    }

    emulator.state.quotas.configure(read_per_project=2)
    emulator.state.quotas.reset()
    clock.advance(60 - clock() % 60)  # start of a quota window: a minute boundary mid-test would refill it
    sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()
    sheets.spreadsheets().values().batchGet(
        spreadsheetId=sid, ranges=["A1", "B2", "C3"]
    ).execute()  # one request
    with pytest.raises(HttpError) as limited:
        sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()
    assert limited.value.status_code == 429
    error = _error(limited)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["metadata"]["quota_limit"] == "ReadRequestsPerMinutePerProject"
