"""The Google demo's wiring (emulator + "demo-sheet" source) and the stateless Drive channel tokens."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx

from sheetstream.buses.memory import MemoryBus
from sheetstream.runtime.demo import DEMO_SHEET_NAME, google_credentials_configured, start_google_demo
from sheetstream.runtime.hints import channel_token, verify_channel_token
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.sources.google import GoogleSheetsSource
from sheetstream.stores.memory import MemoryStore


class NoControl:
    def refresh(self, source_id: str) -> None: ...

    def reload(self, source_id: str) -> None: ...


def test_channel_tokens_name_their_spreadsheet_and_cannot_be_forged() -> None:
    token = channel_token("secret", "sheet-1")
    assert verify_channel_token("secret", token) == "sheet-1"
    assert verify_channel_token("other", token) is None
    assert verify_channel_token("secret", "sheet-2" + token[len("sheet-1"):]) is None
    assert verify_channel_token("secret", None) is None
    assert verify_channel_token("", token) is None


def test_credentials_detection(tmp_path: Path) -> None:
    assert not google_credentials_configured({}, home=tmp_path)
    assert google_credentials_configured({"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}, home=tmp_path)
    adc = tmp_path / ".config/gcloud/application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text("{}")
    assert google_credentials_configured({}, home=tmp_path)


async def test_demo_registers_a_readable_google_source(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud credentials here
    store = MemoryStore()
    await store.open()
    services = Services(settings=Settings(), store=store, bus=MemoryBus(), monitor=NoControl(),
                        retention=Settings().retention)
    async with contextlib.AsyncExitStack() as stack:
        source_id = await start_google_demo(stack, services)
        assert source_id is not None
        record = await store.get_source(source_id)
        assert record.name == DEMO_SHEET_NAME and record.kind == "google_sheets"
        assert await start_google_demo(stack, services) == source_id  # a restart reuses the source
        source = GoogleSheetsSource(record.config)
        try:
            fetched = await source.fetch(None)
        finally:
            await source.aclose()
        assert fetched.snapshot is not None
        assert [t.title for t in fetched.snapshot.tabs] == ["People", "Notes"]
        base = record.config["base_url"]
        async with httpx.AsyncClient() as client:  # the README's curl edit
            answer = await client.put(
                f"{base}/v4/spreadsheets/demo-sheet/values/People!C2",
                params={"valueInputOption": "USER_ENTERED"},
                headers={"Authorization": "Bearer demo"},
                json={"values": [["99"]]},
            )
        assert answer.status_code == 200
    await store.close()
