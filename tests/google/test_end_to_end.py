"""Acceptance 2 and 5: `sheetstream serve` as a real process reading a spreadsheet from the emulator, a real
`websockets` subscriber, and edits made with gspread (unmodified) and hints posted to the hook receivers.

2. A cell written with gspread arrives as ONE `set` op; a row inserted with insertDimension as ONE `insert_rows`;
   a tab renamed as `rename_tab`.
5. With a poll interval of an hour and no Drive change feed, only a hint can explain a read: a Drive push
   notification, or an Apps Script call, makes the change arrive within a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheetstream.emulator import RunningEmulator
from sheetstream.emulator.clients import credentials, gspread_client
from tests.e2e.harness import ServerProcess, Subscriber, free_port, wait_for

pytestmark = pytest.mark.slow

SECRET = "apps-script-secret-for-tests"


@pytest.fixture
def gc(emulator: RunningEmulator, robot: dict[str, Any]) -> Iterator[Any]:
    client = gspread_client(emulator.base_url, credentials(robot))
    yield client
    client.http_client.session.close()


def source_config(emulator: RunningEmulator, robot: dict[str, Any], spreadsheet_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "spreadsheet_id": spreadsheet_id,
        "base_url": emulator.base_url,
        "credentials": {"service_account_json": robot},
        **extra,
    }


def last_change(sub: Subscriber) -> dict[str, Any]:
    return sub.of_type("change")[-1]


async def test_gspread_edits_arrive_as_single_ops(
    tmp_path: Path, emulator: RunningEmulator, robot: dict[str, Any], gc: Any
) -> None:
    book = gc.create("People")
    ws = book.sheet1
    ws.update([["name", "score"], ["Ada", "36"], ["Grace", "41"], ["Linus", "29"]], "A1")
    server = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    try:
        source = server.add_source(
            "google_sheets", source_config(emulator, robot, book.id, min_interval_s=0.2), poll_interval_s=0.5
        )
        sub = await Subscriber(server.ws, source["id"]).subscribe()
        try:
            await sub.wait_version(1)

            await asyncio.to_thread(ws.update_acell, "B3", "42")
            await sub.wait_version(2)
            assert last_change(sub)["ops"] == [
                {"op": "set", "tab": 0, "row": 2, "col": 1, "a1": "B3", "old": "41", "new": "42"}
            ]

            # insertDimension and the new row's values in one batch, as a user inserting a row and typing it.
            body = {
                "requests": [
                    {"insertDimension": {"range": {"sheetId": 0, "dimension": "ROWS", "startIndex": 2, "endIndex": 3},
                                         "inheritFromBefore": False}},
                    {"updateCells": {"start": {"sheetId": 0, "rowIndex": 2, "columnIndex": 0},
                                     "rows": [{"values": [{"userEnteredValue": {"stringValue": "Barbara"}},
                                                          {"userEnteredValue": {"stringValue": "50"}}]}],
                                     "fields": "userEnteredValue"}},
                ]
            }
            await asyncio.to_thread(book.batch_update, body)
            await sub.wait_version(3)
            ops = last_change(sub)["ops"]
            # One insert_rows, no cell of the rows below reported changed; the tab's extent grows (resize).
            assert [op for op in ops if op["op"] != "resize"] == [
                {"op": "insert_rows", "tab": 0, "at": 2, "rows": [["Barbara", "50"]]}
            ]

            await asyncio.to_thread(ws.update_title, "Staff")
            await sub.wait_version(4)
            ops = last_change(sub)["ops"]
            assert [op["op"] for op in ops] == ["rename_tab"]
            assert ops == [{"op": "rename_tab", "tab": 0, "old": "Sheet1", "new": "Staff"}]
            assert [v for v in sub.versions() if v >= 2] == [2, 3, 4]  # one change per edit, no extra read
        finally:
            await sub.close()
    finally:
        server.stop()


@pytest.fixture
def hinted_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose only reason to read a Google source early is a hint."""
    port = free_port()
    server = ServerProcess(
        tmp_path,
        "--backoff-max-s", "1",
        "--google-changes-interval-s", "0",
        "--public-url", f"http://127.0.0.1:{port}",  # Google wants HTTPS; the emulator takes http
        "--apps-script-secret", SECRET,
        port=port,
    ).start()
    yield server
    server.stop()


async def wait_change_after(sub: Subscriber, version: int, since: float) -> float:
    await sub.wait_version(version, timeout_s=5)
    return time.monotonic() - since


async def test_drive_push_and_apps_script_hints_trigger_a_read_within_a_second(
    hinted_server: ServerProcess, emulator: RunningEmulator, robot: dict[str, Any], gc: Any
) -> None:
    book = gc.create("Hinted")
    ws = book.sheet1
    ws.update([["k", "v"], ["a", "1"]], "A1")
    source = hinted_server.add_source(
        "google_sheets", source_config(emulator, robot, book.id, min_interval_s=0.1), poll_interval_s=3600
    )
    hub = emulator.hub
    wait_for(lambda: any(c.file_id == book.id for c in hub.channels.values()), what="a Drive channel on the file")
    sub = await Subscriber(hinted_server.ws, source["id"]).subscribe()
    try:
        await sub.wait_version(1)

        # Drive push: the emulator posts a notification (coalesced over 50 ms) to /v1/hooks/drive.
        sent = len(hub.deliveries)
        await asyncio.to_thread(ws.update_acell, "B2", "2")
        deadline = time.monotonic() + 5
        while not any(d.state == "update" for d in hub.deliveries[sent:]):
            assert time.monotonic() < deadline, "no Drive notification was sent"
            await asyncio.sleep(0.005)
        delivered_at = time.monotonic()
        assert [d.status for d in hub.deliveries[sent:] if d.state == "update"] == [200]
        push_latency = await wait_change_after(sub, 2, delivered_at)
        assert last_change(sub)["ops"][0]["new"] == "2"
        assert push_latency < 1.0

        # Apps Script: the trigger posts the spreadsheet id with the shared secret.
        await asyncio.to_thread(ws.update_acell, "B2", "3")
        async with httpx.AsyncClient(base_url=hinted_server.http) as client:
            bad = await client.post("/v1/hooks/apps-script", json={"spreadsheet_id": book.id},
                                    headers={"X-Sheetstream-Secret": "wrong"})
            assert bad.status_code == 401
            forged = await client.post("/v1/hooks/drive", headers={"X-Goog-Channel-Token": f"{book.id}.forged",
                                                                   "X-Goog-Resource-State": "update"})
            assert forged.status_code == 401
            posted_at = time.monotonic()
            answer = await client.post("/v1/hooks/apps-script", json={"spreadsheet_id": book.id, "change_type": "EDIT"},
                                       headers={"X-Sheetstream-Secret": SECRET})
            assert answer.status_code == 202 and answer.json() == {"sources": [source["id"]]}
            script_latency = await wait_change_after(sub, 3, posted_at)
            assert last_change(sub)["ops"][0]["new"] == "3"
            assert script_latency < 1.0

            # Deleting the source stops its Drive channel.
            assert (await client.delete(f"/v1/sources/{source['id']}")).status_code == 204
        wait_for(lambda: not any(c.file_id == book.id for c in hub.channels.values()), what="the channel stopped")
        print(f"\nhint to change: Drive push {push_latency * 1000:.0f} ms, Apps Script {script_latency * 1000:.0f} ms")
    finally:
        await sub.close()
