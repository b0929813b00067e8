"""Credentials never leave the API: no `credentials`, header values masked; sending a read config back keeps them."""

from __future__ import annotations

import httpx
import orjson

from sheetstream.api.sources import merge_config, public_config
from sheetstream.stores.base import NewSource
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0

SECRET = "Bearer s3cr3t-t0ken"
KEY = "-----BEGIN PRIVATE KEY-----xyz"


async def test_header_values_are_masked_everywhere(client: httpx.AsyncClient, store: MemoryStore) -> None:
    config = {"url": "https://example.com/data.csv", "headers": {"Authorization": SECRET, "X-Team": "blue"}}
    created = await client.post("/v1/sources", json={"kind": "http_csv", "config": config})
    assert created.status_code == 201, created.text
    source_id = created.json()["id"]
    answers = [
        created,
        await client.get(f"/v1/sources/{source_id}"),
        await client.get("/v1/sources"),
        await client.patch(f"/v1/sources/{source_id}", json={"name": "renamed"}),
    ]
    for answer in answers:
        assert SECRET not in answer.text and "blue" not in answer.text
    assert created.json()["config"]["headers"] == {"Authorization": "***", "X-Team": "***"}
    stored = await store.get_source(source_id)
    assert stored.config["headers"] == config["headers"]


async def test_credentials_are_never_returned(client: httpx.AsyncClient, store: MemoryStore) -> None:
    record = await store.create_source(
        NewSource(kind="google_sheets", config={"spreadsheet_id": "abc", "credentials": {"private_key": KEY}}), now=T0
    )
    one = await client.get(f"/v1/sources/{record.id}")
    listed = await client.get("/v1/sources")
    for answer in (one, listed):
        assert answer.status_code == 200
        assert KEY not in answer.text and "credentials" not in answer.text
    assert one.json()["config"] == {"spreadsheet_id": "abc"}


async def test_patching_back_a_read_config_keeps_the_secret_header(client: httpx.AsyncClient, store: MemoryStore) -> None:
    config = {"url": "https://example.com/data.csv", "headers": {"Authorization": SECRET}}
    source_id = (await client.post("/v1/sources", json={"kind": "http_csv", "config": config})).json()["id"]
    shown = (await client.get(f"/v1/sources/{source_id}")).json()["config"]
    shown["url"] = "https://example.com/other.csv"
    response = await client.patch(f"/v1/sources/{source_id}", json={"config": shown})
    assert response.status_code == 200, response.text
    stored = (await store.get_source(source_id)).config
    assert stored == {"url": "https://example.com/other.csv", "headers": {"Authorization": SECRET}}


def test_public_config_drops_credentials_and_masks_headers() -> None:
    config = {"spreadsheet_id": "abc", "credentials": "vault:sheets", "headers": {"A": "1"}}
    assert public_config(config) == {"spreadsheet_id": "abc", "headers": {"A": "***"}}
    assert config["credentials"] == "vault:sheets"  # the stored dict is left alone


def test_merge_config_keeps_stored_credentials_and_masked_headers() -> None:
    stored = {"spreadsheet_id": "abc", "credentials": "vault:sheets", "headers": {"A": "1", "B": "2"}}
    sent = {"spreadsheet_id": "def", "headers": {"A": "***", "B": "new", "C": "***"}}
    assert merge_config(stored, sent) == {
        "spreadsheet_id": "def",
        "credentials": "vault:sheets",
        "headers": {"A": "1", "B": "new", "C": "***"},
    }
    assert merge_config(stored, {"spreadsheet_id": "abc", "credentials": None}) == {"spreadsheet_id": "abc"}
    assert merge_config(stored, {"spreadsheet_id": "abc", "credentials": "vault:other"})["credentials"] == "vault:other"
    assert merge_config({}, {"path": "x", "credentials": None}) == {"path": "x"}
    assert orjson.dumps(merge_config({}, {"path": "x"})) == b'{"path":"x"}'
