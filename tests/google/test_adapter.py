"""The google_sheets source against the strict emulator: requests per read, tabs by sheetId, render options,
tabs renamed or deleted mid-flight, Drive version checks, errors with retry information, and the CSV export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sheetstream.core.model import Snapshot, Tab
from sheetstream.emulator import RunningEmulator
from sheetstream.emulator.cells import Cell
from sheetstream.emulator.model import Sheet
from sheetstream.errors import ConfigError
from sheetstream.sources.google import GoogleSheetsSource, split_range
from sheetstream.sources.google_api import GoogleApiError, retry_after
from sheetstream.sources.registry import validate_config
from tests.google.conftest import ROBOT, edit_cell, make_book


@pytest.fixture
async def opened() -> AsyncIterator[list[GoogleSheetsSource]]:
    sources: list[GoogleSheetsSource] = []
    yield sources
    for source in sources:
        await source.aclose()


def open_source(opened: list[GoogleSheetsSource], emulator: RunningEmulator, creds: Any, **config: Any) -> GoogleSheetsSource:
    source = GoogleSheetsSource({"base_url": emulator.base_url, "credentials": creds, **config})
    opened.append(source)
    return source


def sa(robot: dict[str, Any]) -> dict[str, Any]:
    return {"service_account_json": robot}


async def test_one_batch_per_read_and_drive_skips_unchanged(
    emulator: RunningEmulator, robot: dict[str, Any], opened: list[GoogleSheetsSource]
) -> None:
    book = make_book(emulator.state, 3, 2, owner=ROBOT)
    with emulator.state.lock:
        book.sheets.append(Sheet(7, "Second", rows=[[Cell("x")]]))
        book.reindex()
    source = open_source(opened, emulator, sa(robot), spreadsheet_id=book.id)
    first = await source.fetch(None)
    assert first.snapshot == Snapshot(
        (Tab(0, "Sheet1", [["r0c0", "r0c1"], ["r1c0", "r1c1"], ["r2c0", "r2c1"]]), Tab(7, "Second", [["x"]]))
    )
    assert source.spent == (2, 1)  # tab list + one batchGet for both tabs; one Drive version check
    assert (await source.fetch(first.snapshot)).snapshot is None  # version unchanged: no Sheets request
    assert source.spent == (2, 2)
    edit_cell(emulator.state, book, 0, 0, "new")
    again = await source.fetch(first.snapshot)
    assert again.snapshot is not None and again.snapshot.tab(0).rows[0] == ("new", "r0c1")
    assert source.spent == (3, 3)  # tab list cached: one batchGet


async def test_renamed_and_deleted_tabs_mid_flight(
    emulator: RunningEmulator, robot: dict[str, Any], opened: list[GoogleSheetsSource]
) -> None:
    book = make_book(emulator.state, 1, 1, owner=ROBOT)
    source = open_source(opened, emulator, sa(robot), spreadsheet_id=book.id, ranges=["Sheet1!A1:B"])
    first = await source.fetch(None)
    assert first.snapshot is not None and first.snapshot.tabs[0].title == "Sheet1"
    with emulator.state.lock:
        book.sheets[0].title = "Renamed"
        emulator.state.commit(book, "properties")
    renamed = await source.fetch(first.snapshot)  # the batch names "Sheet1": 400, tab list reloaded, same sheetId
    assert renamed.snapshot == Snapshot((Tab(0, "Renamed", [["r0c0"]]),))
    with emulator.state.lock:
        book.sheets[:] = [Sheet(9, "Other")]  # the watched tab deleted, another added
        book.reindex()
        emulator.state.commit(book, "content")
    gone = await source.fetch(renamed.snapshot)
    assert gone.snapshot == Snapshot()  # the watched tab is gone: no crash, an empty snapshot (remove_tab)


async def test_unformatted_values(emulator: RunningEmulator, robot: dict[str, Any], opened: list[GoogleSheetsSource]) -> None:
    book = emulator.state.create_spreadsheet("Numbers", owner=ROBOT)
    with emulator.state.lock:
        book.sheets[0].set(0, 0, Cell(1.5))
        book.sheets[0].set(0, 1, Cell(True))
        emulator.state.commit(book)
    formatted = open_source(opened, emulator, sa(robot), spreadsheet_id=book.id)
    raw = open_source(opened, emulator, sa(robot), spreadsheet_id=book.id, value_render="UNFORMATTED")
    assert (await formatted.fetch(None)).snapshot.tabs[0].rows == (("1.5", "TRUE"),)  # type: ignore[union-attr]
    assert (await raw.fetch(None)).snapshot.tabs[0].rows == ((1.5, True),)  # type: ignore[union-attr]


async def test_errors_carry_advice_and_retry_information(
    emulator: RunningEmulator, robot: dict[str, Any], opened: list[GoogleSheetsSource]
) -> None:
    missing = open_source(opened, emulator, sa(robot), spreadsheet_id="no-such-sheet", drive_checks=False)
    with pytest.raises(GoogleApiError) as err:
        await missing.fetch(None)
    assert err.value.status == 404 and "check spreadsheet_id" in str(err.value)

    private = make_book(emulator.state, 1, 1, owner="someone@else.example")
    with pytest.raises(GoogleApiError) as err:
        await open_source(opened, emulator, sa(robot), spreadsheet_id=private.id).fetch(None)
    assert err.value.status == 403 and f"share the spreadsheet with {ROBOT}" in str(err.value)

    book = make_book(emulator.state, 1, 1, owner=ROBOT)
    source = open_source(opened, emulator, sa(robot), spreadsheet_id=book.id, drive_checks=False)
    emulator.state.faults.fail_next(429, match="values:batchGet")
    with pytest.raises(GoogleApiError) as err:
        await source.fetch(None)
    assert err.value.rate_limited and err.value.retryable
    emulator.state.faults.fail_next(503)
    with pytest.raises(GoogleApiError) as err:
        await source.fetch(None)
    assert err.value.status == 503 and err.value.retryable
    assert (await source.fetch(None)).snapshot is not None  # and then it recovers


async def test_retry_after_is_honoured_from_the_header() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {"code": 429, "message": "slow down",
                                                                               "status": "RESOURCE_EXHAUSTED"}})

    source = GoogleSheetsSource(
        {"spreadsheet_id": "x", "credentials": {"access_token": "t"}, "drive_checks": False},
        transport=httpx.MockTransport(handler),
    )
    try:
        with pytest.raises(GoogleApiError) as err:
            await source.fetch(None)
    finally:
        await source.aclose()
    assert err.value.retry_after_s == 7.0 and "slow down" in str(err.value)
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("soon") is None


async def test_public_sheet_through_the_csv_export(emulator: RunningEmulator, opened: list[GoogleSheetsSource]) -> None:
    book = make_book(emulator.state, 2, 2, owner=ROBOT)
    source = open_source(opened, emulator, "none", spreadsheet_id=book.id)
    with pytest.raises(GoogleApiError):
        await source.fetch(None)  # not link-shared yet
    emulator.state.share(book.id, "anyone")
    fetched = await source.fetch(None)
    assert fetched.snapshot == Snapshot((Tab(0, "gid:0", [["r0c0", "r0c1"], ["r1c0", "r1c1"]]),))
    assert source.planned_cost() == 1 and source.feed_key is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "spreadsheet_id"),
        ({"spreadsheet_id": "x", "ranges": []}, "ranges"),
        ({"spreadsheet_id": "x", "credentials": "none", "ranges": ["Sheet1"]}, "sheetIds"),
        ({"spreadsheet_id": "x", "value_render": "RAW"}, "value_render"),
        ({"spreadsheet_id": "x", "credentials": {"password": "x"}}, "credentials"),
        ({"spreadsheet_id": "x", "base_url": "ftp://x"}, "base_url"),
        ({"spreadsheet_id": "x", "min_interval_s": 0}, "min_interval_s"),
        ({"spreadsheet_id": "x", "colour": "red"}, "unknown config"),
    ],
)
def test_bad_configs_are_refused_with_the_field_named(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config("google_sheets", config)


def test_split_range() -> None:
    assert split_range("Sheet1") == ("Sheet1", "")
    assert split_range("Prices!A1:D") == ("Prices", "A1:D")
    assert split_range("'It''s here'!B2") == ("It's here", "B2")
    assert split_range("'a!b'") == ("a!b", "")
