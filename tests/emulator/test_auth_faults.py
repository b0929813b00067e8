"""Strict and default modes, the token endpoint, API keys, scopes, fault injection and the admin endpoints."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import google.auth.exceptions
import gspread
import httpx
import pytest
from googleapiclient.errors import HttpError

from sheetstream.emulator import EmulatorState, RunningEmulator, create_emulator_app, run_emulator
from sheetstream.emulator.clients import credentials, discovery_service, gspread_client, service_account_info

READONLY = ("https://www.googleapis.com/auth/spreadsheets.readonly",)


def test_strict_mode_refuses_unknown_tokens_and_missing_credentials(emulator: RunningEmulator) -> None:
    url = f"{emulator.base_url}/v4/spreadsheets/whatever/values/A1"
    missing = httpx.get(url)
    assert missing.status_code == 401 and missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert missing.json()["error"]["details"][0]["reason"] == "CREDENTIALS_MISSING"
    forged = httpx.get(url, headers={"Authorization": "Bearer made-up"})
    assert forged.status_code == 401
    bad_key = httpx.get(url, params={"key": "not-configured"})
    assert (
        bad_key.status_code == 400
        and bad_key.json()["error"]["message"] == "API key not valid. Please pass a valid API key."
    )


def test_token_endpoint_checks_the_jwt_signature(
    emulator: RunningEmulator, robot_info: dict[str, str]
) -> None:
    forged = service_account_info(
        robot_info["client_email"], emulator.base_url, key_size=1024
    )  # another key, same email
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        gspread_client(emulator.base_url, credentials(forged)).create("never")
    stranger = service_account_info(
        "stranger@example.com", emulator.base_url, key_size=1024
    )  # never registered
    with pytest.raises(google.auth.exceptions.RefreshError, match="account not found"):
        gspread_client(emulator.base_url, credentials(stranger)).create("never")


def test_readonly_scope_cannot_write(emulator: RunningEmulator, robot_info: dict[str, str], gc: Any) -> None:
    book = gc.create("scoped")
    reader = gspread_client(emulator.base_url, credentials(robot_info, READONLY))
    ws = reader.open_by_key(book.id).sheet1
    assert ws.get_all_values() == [[]]
    with pytest.raises(gspread.exceptions.APIError) as info:
        ws.update([["x"]], "A1")
    assert info.value.code == 403
    assert info.value.error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    reader.http_client.session.close()


def test_api_key_reads_link_shared_spreadsheets_only(emulator: RunningEmulator, gc: Any) -> None:
    emulator.state.api_keys.add("test-key")
    book = gc.create("shared by link")
    book.sheet1.update([["public"]], "A1")
    url = f"{emulator.base_url}/v4/spreadsheets/{book.id}/values/A1"
    assert httpx.get(url, params={"key": "test-key"}).status_code == 403
    emulator.state.share(book.id, "anyone")
    assert httpx.get(url, params={"key": "test-key"}).json()["values"] == [["public"]]
    write = httpx.put(url, params={"key": "test-key", "valueInputOption": "RAW"}, json={"values": [["no"]]})
    assert write.status_code == 401
    export = httpx.get(
        f"{emulator.base_url}/spreadsheets/d/{book.id}/export", params={"format": "csv", "gid": "0"}
    )
    assert export.status_code == 200 and export.text == "public\r\n"


def test_default_mode_accepts_any_bearer_token() -> None:
    state = EmulatorState(seed=1)
    book = state.create_spreadsheet("open")
    with run_emulator(state) as emu:
        response = httpx.get(
            f"{emu.base_url}/v4/spreadsheets/{book.id}", headers={"Authorization": "Bearer anything"}
        )
        assert response.status_code == 200 and response.json()["properties"]["title"] == "open"
        unregistered = service_account_info("anyone@example.com", emu.base_url, key_size=1024)
        service = discovery_service("sheets", emu.base_url, credentials(unregistered))
        assert service.spreadsheets().get(spreadsheetId=book.id).execute()["spreadsheetId"] == book.id
        service.close()


def test_forced_faults_and_latency_from_the_admin_endpoint(emulator: RunningEmulator, sheets: Any) -> None:
    sid = sheets.spreadsheets().create(body={}).execute()["spreadsheetId"]
    admin = f"{emulator.base_url}/emulator/v1/faults"
    set_up = httpx.post(admin, json={"fail_next": [{"status": 503, "count": 2, "match": "/values/"}]})
    assert set_up.status_code == 200 and set_up.json()["fail_next"][0]["count"] == 2
    for _ in range(2):
        with pytest.raises(HttpError) as info:
            sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()
        assert info.value.status_code == 503
        assert json.loads(info.value.content)["error"]["status"] == "UNAVAILABLE"
    assert sheets.spreadsheets().values().get(spreadsheetId=sid, range="A1").execute()["range"] == "Sheet1!A1"
    assert httpx.post(admin, json={"error_rate": 2}).status_code == 400
    assert httpx.post(admin, json={"error_rate": 1.0, "error_codes": [500]}).status_code == 200
    with pytest.raises(HttpError) as info:
        sheets.spreadsheets().get(spreadsheetId=sid).execute()
    assert info.value.status_code == 500
    httpx.delete(admin)
    emulator.state.faults.configure(latency_s=0.2)
    response = httpx.get(f"{emulator.base_url}/v4/spreadsheets/{sid}", headers={"Authorization": "Bearer x"})
    assert response.status_code == 401 and response.elapsed.total_seconds() >= 0.2


def test_quota_is_per_user_and_refills_each_minute(emulator: RunningEmulator, clock: Any) -> None:
    base = emulator.base_url
    http = httpx.Client()
    tokens = [
        http.post(f"{base}/emulator/v1/tokens", json={"identity": f"u{i}@example.com"}).json()["access_token"]
        for i in range(2)
    ]
    book = emulator.state.create_spreadsheet("quota", owner="u0@example.com")
    emulator.state.share(book.id, "u1@example.com")
    http.post(f"{base}/emulator/v1/quotas", json={"read_per_user": 3, "read_per_project": 5})
    emulator.state.quotas.reset()
    url = f"{base}/v4/spreadsheets/{book.id}/values:batchGet"

    def read(i: int) -> int:
        return httpx.get(
            url, params={"ranges": "A1"}, headers={"Authorization": f"Bearer {tokens[i]}"}
        ).status_code

    assert [read(0) for _ in range(4)] == [200, 200, 200, 429]
    assert [read(1) for _ in range(3)] == [200, 200, 429]  # the project's 5 are used up
    assert http.get(f"{base}/emulator/v1/quotas").json()["used"]["read"] == 5
    clock.advance(60)
    assert read(0) == 200
    http.close()


async def test_create_emulator_app_serves_in_process_over_asgi(clock: Any) -> None:
    app = create_emulator_app(clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emu", headers={"Authorization": "Bearer t"}
    ) as client:
        made = (await client.post("/v4/spreadsheets", json={"properties": {"title": "asgi"}})).json()
        path = f"/v4/spreadsheets/{made['spreadsheetId']}/values/{quote('Sheet1!A1:B1', safe='')}"
        await client.put(path, params={"valueInputOption": "USER_ENTERED"}, json={"values": [["1", "=A1"]]})
        got = (await client.get(path, params={"valueRenderOption": "FORMULA"})).json()
    assert got["values"] == [[1, "=A1"]]
    assert app.state.emulator.state.files[made["spreadsheetId"]].version == 2
