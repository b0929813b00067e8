"""Drive v3: version and modifiedTime on every write, the change feed, and push notifications to a real webhook."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sheetstream.emulator import RunningEmulator
from sheetstream.emulator.server import run_asgi
from tests.emulator.schemas import check


class Receiver:
    """A webhook endpoint that records the headers of every notification."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.arrived = threading.Condition()

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self.arrived:
            self.messages.append({k.lower(): v for k, v in request.headers.items()} | {"body": body.decode()})
            self.arrived.notify_all()
        return Response(status_code=200)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        """Block until `count` messages arrived (or fail)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                assert left > 0, (
                    f"only {len(self.messages)} of {count} notifications arrived: {self.messages}"
                )
                self.arrived.wait(left)
            return list(self.messages)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with run_asgi(Starlette(routes=[Route("/hook", rec.hook, methods=["POST"])])) as base:
        yield rec, f"{base}/hook"


def test_every_write_bumps_version_and_modified_time(sheets: Any, drive: Any, clock: Any) -> None:
    sid = sheets.spreadsheets().create(body={"properties": {"title": "versions"}}).execute()["spreadsheetId"]
    before = drive.files().get(fileId=sid, fields="version,modifiedTime").execute()
    clock.advance(1)
    sheets.spreadsheets().values().update(
        spreadsheetId=sid, range="A1", valueInputOption="RAW", body={"values": [["x"]]}
    ).execute()
    after = drive.files().get(fileId=sid, fields="version,modifiedTime").execute()
    assert int(after["version"]) == int(before["version"]) + 1
    assert after["modifiedTime"] > before["modifiedTime"]
    sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()  # reads change nothing
    assert drive.files().get(fileId=sid, fields="version").execute()["version"] == after["version"]


def test_changes_feed_lists_each_changed_file_once(sheets: Any, drive: Any) -> None:
    token = drive.changes().getStartPageToken().execute()
    check("drive", "StartPageToken", token)
    ids = [sheets.spreadsheets().create(body={}).execute()["spreadsheetId"] for _ in range(2)]
    for _ in range(3):
        sheets.spreadsheets().values().clear(spreadsheetId=ids[0], range="A1", body={}).execute()
    page = drive.changes().list(pageToken=token["startPageToken"], fields="*").execute()
    check("drive", "ChangeList", page)
    mine = [c["fileId"] for c in page["changes"] if c["fileId"] in ids]
    assert sorted(mine) == sorted(ids)
    again = drive.changes().list(pageToken=page["newStartPageToken"]).execute()
    assert [c for c in again["changes"] if c["fileId"] in ids] == []


def test_files_list_filters_by_query(sheets: Any, drive: Any) -> None:
    sheets.spreadsheets().create(body={"properties": {"title": "needle 'quoted'"}}).execute()
    found = (
        drive.files()
        .list(
            q="mimeType='application/vnd.google-apps.spreadsheet' and name = 'needle \\'quoted\\''",
            fields="files(id,name)",
        )
        .execute()
    )
    check("drive", "FileList", found)
    assert [f["name"] for f in found["files"]] == ["needle 'quoted'"]


def test_file_watch_sends_sync_then_one_coalesced_update(
    sheets: Any, drive: Any, receiver: tuple[Receiver, str], emulator: RunningEmulator
) -> None:
    rec, address = receiver
    sid = sheets.spreadsheets().create(body={}).execute()["spreadsheetId"]
    channel = (
        drive.files()
        .watch(
            fileId=sid, body={"id": "chan-file-1", "type": "web_hook", "address": address, "token": "secret"}
        )
        .execute()
    )
    check("drive", "Channel", channel)
    [sync] = rec.wait_for(1)
    assert sync["x-goog-resource-state"] == "sync" and sync["x-goog-message-number"] == "1"
    emulator.hub.delay_s = 0.3  # long enough for both writes to land in one burst
    for value in ("a", "b"):
        sheets.spreadsheets().values().update(
            spreadsheetId=sid, range="A1", valueInputOption="RAW", body={"values": [[value]]}
        ).execute()
    messages = rec.wait_for(2)
    update = messages[1]
    assert update["x-goog-resource-state"] == "update"
    assert update["x-goog-changed"] == "content"
    assert update["x-goog-channel-id"] == "chan-file-1"
    assert update["x-goog-channel-token"] == "secret"
    assert update["x-goog-resource-id"] == channel["resourceId"]
    assert update["x-goog-resource-uri"].endswith(f"/drive/v3/files/{sid}?alt=json")
    assert update["x-goog-message-number"] == "2"
    assert update["x-goog-channel-expiration"].endswith("GMT") and update["body"] == ""
    drive.channels().stop(body={"id": "chan-file-1", "resourceId": channel["resourceId"]}).execute()
    emulator.hub.delay_s = 0.05
    sheets.spreadsheets().values().clear(spreadsheetId=sid, range="A1", body={}).execute()
    with pytest.raises(AssertionError):
        rec.wait_for(3, timeout=0.5)  # a stopped channel hears nothing more


def test_changes_watch_reports_change(sheets: Any, drive: Any, receiver: tuple[Receiver, str]) -> None:
    rec, address = receiver
    token = drive.changes().getStartPageToken().execute()["startPageToken"]
    drive.changes().watch(
        pageToken=token, body={"id": "chan-changes-1", "type": "web_hook", "address": address}
    ).execute()
    rec.wait_for(1)
    sheets.spreadsheets().create(body={}).execute()
    change = rec.wait_for(2)[1]
    assert change["x-goog-resource-state"] == "change"
    assert "x-goog-channel-token" not in change


def test_unknown_file_and_channel_use_drive_error_shape(emulator: RunningEmulator) -> None:
    made = httpx.post(f"{emulator.base_url}/emulator/v1/tokens", json={"identity": "robot@example.com"})
    token = made.json()["access_token"]
    response = httpx.get(
        f"{emulator.base_url}/drive/v3/files/nope", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": 404,
            "message": "File not found: nope.",
            "errors": [
                {
                    "message": "File not found: nope.",
                    "domain": "global",
                    "reason": "notFound",
                    "location": "fileId",
                    "locationType": "parameter",
                }
            ],
        }
    }
    stop = httpx.post(
        f"{emulator.base_url}/drive/v3/channels/stop",
        json={"id": "x", "resourceId": "y"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert stop.status_code == 404 and stop.json()["error"]["errors"][0]["reason"] == "notFound"
