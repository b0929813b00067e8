"""The REST API over a sealing store: 400 `secret_key_required` without a key, a clear status with a wrong key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sheetstream.auth.secretbox import SecretBox
from sheetstream.stores.memory import MemoryStore
from sheetstream.stores.sealed import SealedStore, open_sealed_store
from tests.api.conftest import Clock, RecordingControl, client_for, make_app
from tests.contracts.conftest import require_service
from tests.stores.postgres_schemas import POSTGRES_DEFAULT, POSTGRES_ENV, drop_test_schema, fresh_schema_url

SECRET = "Bearer s3cr3t-t0ken"
HTTP_CONFIG = {"url": "http://127.0.0.1:9/data.csv", "headers": {"Authorization": SECRET}}


@pytest.fixture
async def keyless_postgres_api() -> AsyncIterator[httpx.AsyncClient]:
    url = fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT), max_size=2)
    store = open_sealed_store(url)
    await store.open()
    try:
        async with client_for(make_app(store, RecordingControl(), Clock())) as client:
            yield client
    finally:
        await store.close()
        await drop_test_schema(url)


async def test_postgres_without_a_key_answers_400_secret_key_required(
    keyless_postgres_api: httpx.AsyncClient,
) -> None:
    client = keyless_postgres_api
    refused = await client.post("/v1/sources", json={"kind": "http_csv", "config": HTTP_CONFIG})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "secret_key_required" and "SHEETSTREAM_SECRET_KEY" in error["message"]
    assert SECRET not in refused.text
    sheet = {"spreadsheet_id": "abc", "credentials": {"api_key": "AIza-k3y"}}
    assert (
        await client.post("/v1/sources", json={"kind": "google_sheets", "config": sheet})
    ).status_code == 400

    # Sources without secrets work as before, and cannot be given some later.
    created = await client.post(
        "/v1/sources", json={"kind": "http_csv", "config": {"url": HTTP_CONFIG["url"]}}
    )
    assert created.status_code == 201, created.text
    source_id = created.json()["id"]
    patched = await client.patch(f"/v1/sources/{source_id}", json={"config": HTTP_CONFIG})
    assert patched.status_code == 400 and patched.json()["error"]["code"] == "secret_key_required"
    assert (await client.get(f"/v1/sources/{source_id}")).json()["config"] == {"url": HTTP_CONFIG["url"]}
    assert len((await client.get("/v1/sources")).json()["items"]) == 1


async def test_a_source_the_key_cannot_decrypt_shows_an_error_and_must_be_sent_its_secrets_again() -> None:
    inner = MemoryStore()
    async with client_for(
        make_app(SealedStore(inner, SecretBox.generate()), RecordingControl(), Clock())
    ) as before:
        created = await before.post("/v1/sources", json={"kind": "http_csv", "config": HTTP_CONFIG})
    source_id = created.json()["id"]

    async with client_for(
        make_app(SealedStore(inner, SecretBox.generate()), RecordingControl(), Clock())
    ) as client:
        shown = await client.get(f"/v1/sources/{source_id}")
        assert shown.status_code == 200
        status = shown.json()["status"]
        assert status["state"] == "error" and "cannot be decrypted" in status["message"]
        assert shown.json()["config"]["headers"] == {"Authorization": "***"}
        assert "$sealed" not in shown.text and SECRET not in shown.text
        assert (await client.get("/v1/sources")).status_code == 200

        # Sending the config back as read would keep a secret nobody can read: refused with a clear answer.
        kept = await client.patch(f"/v1/sources/{source_id}", json={"config": shown.json()["config"]})
        assert kept.status_code == 422 and "send them again" in kept.json()["error"]["message"]
        fresh = {**HTTP_CONFIG, "headers": {"Authorization": "Bearer n3w"}}
        fixed = await client.patch(f"/v1/sources/{source_id}", json={"config": fresh})
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["status"]["state"] == "pending"  # readable again: the monitor reads it next
