"""`/v1/sources` CRUD and refresh: shapes, status codes, what reaches the monitor, and paging."""

from __future__ import annotations

import httpx

from sheetstream.stores.base import NewSource
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0, Clock, RecordingControl

FILE = {"kind": "file", "config": {"path": "/data/prices.csv"}}


async def test_create_answers_201_with_the_source_and_its_location(
    client: httpx.AsyncClient, control: RecordingControl
) -> None:
    response = await client.post("/v1/sources", json={**FILE, "name": "prices", "poll_interval_s": 2})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/sources/{body['id']}"
    assert body == {
        "id": body["id"],
        "name": "prices",
        "kind": "file",
        "config": {"path": "/data/prices.csv"},
        "poll_interval_s": 2.0,
        "paused": False,
        "status": {"state": "pending", "message": None, "since": None},
        "epoch": body["epoch"],
        "version": 0,
        "created_at": "2025-01-31T12:00:00.000Z",
        "updated_at": "2025-01-31T12:00:00.000Z",
    }
    assert body["id"] and body["epoch"]
    assert control.calls == [("reload", body["id"])]


async def test_create_defaults_name_poll_interval_and_paused(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/sources", json=FILE)).json()
    assert (body["name"], body["poll_interval_s"], body["paused"]) == (None, 5.0, False)


async def test_the_default_poll_interval_is_a_setting(
    store: MemoryStore, control: RecordingControl, clock: Clock
) -> None:
    from sheetstream.runtime.settings import Settings
    from tests.api.conftest import client_for, make_app

    async with client_for(make_app(store, control, clock, Settings(anonymous=True, default_poll_interval_s=12))) as http:
        assert (await http.post("/v1/sources", json=FILE)).json()["poll_interval_s"] == 12.0
        assert (await http.post("/v1/sources", json={**FILE, "poll_interval_s": 2})).json()["poll_interval_s"] == 2.0


async def test_create_paused_shows_paused_status(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/sources", json={**FILE, "paused": True})).json()
    assert body["paused"] is True
    assert body["status"] == {"state": "paused", "message": None, "since": "2025-01-31T12:00:00.000Z"}


async def test_get_answers_the_stored_source(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    response = await client.get(f"/v1/sources/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, control: RecordingControl, clock: Clock
) -> None:
    created = (await client.post("/v1/sources", json={**FILE, "name": "prices"})).json()
    clock.advance(60)
    response = await client.patch(f"/v1/sources/{created['id']}", json={"poll_interval_s": 30, "paused": True})
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["config"], body["poll_interval_s"], body["paused"]) == (
        "prices",
        {"path": "/data/prices.csv"},
        30.0,
        True,
    )
    assert body["status"]["state"] == "paused"
    assert body["created_at"] == "2025-01-31T12:00:00.000Z"
    assert body["updated_at"] == "2025-01-31T12:01:00.000Z"
    assert control.calls == [("reload", created["id"]), ("reload", created["id"])]
    assert (await client.get(f"/v1/sources/{created['id']}")).json() == body


async def test_patch_replaces_config_and_clears_name(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/sources", json={**FILE, "name": "prices"})).json()
    response = await client.patch(
        f"/v1/sources/{created['id']}", json={"name": None, "config": {"path": "/data/other.tsv"}, "paused": False}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] is None
    assert body["config"] == {"path": "/data/other.tsv"}
    assert body["status"]["state"] == "pending"


async def test_empty_patch_changes_nothing_and_does_not_reload(
    client: httpx.AsyncClient, control: RecordingControl
) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    response = await client.patch(f"/v1/sources/{created['id']}", json={})
    assert response.status_code == 200
    assert response.json() == created
    assert control.calls == [("reload", created["id"])]


async def test_delete_answers_204_then_the_source_is_gone(
    client: httpx.AsyncClient, control: RecordingControl
) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    response = await client.delete(f"/v1/sources/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert control.calls == [("reload", created["id"]), ("reload", created["id"])]
    assert (await client.get(f"/v1/sources/{created['id']}")).status_code == 404
    assert (await client.delete(f"/v1/sources/{created['id']}")).status_code == 404


async def test_refresh_answers_202_and_asks_the_monitor(
    client: httpx.AsyncClient, control: RecordingControl
) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    control.calls.clear()
    response = await client.post(f"/v1/sources/{created['id']}/refresh")
    assert response.status_code == 202
    assert response.json() == {"source": created["id"], "status": "queued"}
    assert control.calls == [("refresh", created["id"])]


async def test_refresh_of_an_unknown_source_is_404_and_asks_nothing(
    client: httpx.AsyncClient, control: RecordingControl
) -> None:
    response = await client.post("/v1/sources/nope/refresh")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "source_not_found"
    assert control.calls == []


async def test_error_status_is_shown_with_its_message_and_time(client: httpx.AsyncClient, store: MemoryStore) -> None:
    from sheetstream.stores.base import SourceStatus

    created = (await client.post("/v1/sources", json=FILE)).json()
    await store.set_status(created["id"], SourceStatus("error", "file /data/prices.csv: not found", T0))
    status = (await client.get(f"/v1/sources/{created['id']}")).json()["status"]
    assert status == {"state": "error", "message": "file /data/prices.csv: not found", "since": "2025-01-31T12:00:00.000Z"}


async def test_list_pages_through_250_sources_in_id_order(client: httpx.AsyncClient, store: MemoryStore) -> None:
    for i in range(250):
        await store.create_source(NewSource(kind="file", config={"path": f"/d/{i}.csv"}), now=T0)
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/sources", params=params)
        assert response.status_code == 200
        page = response.json()
        sizes.append(len(page["items"]))
        seen += [item["id"] for item in page["items"]]
        if "next_cursor" not in page:
            break
        cursor = page["next_cursor"]
        assert isinstance(cursor, str) and cursor
    assert sizes == [100, 100, 50]
    assert seen == sorted(seen)
    assert len(set(seen)) == 250


async def test_list_default_page_and_empty_store(client: httpx.AsyncClient, store: MemoryStore) -> None:
    assert (await client.get("/v1/sources")).json() == {"items": []}
    for i in range(101):
        await store.create_source(NewSource(kind="file", config={"path": f"/d/{i}.csv"}), now=T0)
    page = (await client.get("/v1/sources")).json()
    assert len(page["items"]) == 100
    assert "next_cursor" in page
