"""Snapshot and change log over REST, after committing change sets into the store directly."""

from __future__ import annotations

from typing import Any

import httpx

from sheetstream.api.schemas import ChangesOut, SnapshotOut
from sheetstream.core.model import AddTab, ChangeSet, InsertRows, SetCell, Snapshot, Tab
from sheetstream.stores.base import Retention
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0

ROWS_1 = (("name", "price"), ("apple", 1.5))
ROWS_2 = (("name", "price"), ("pear", 2), ("apple", 2.5))


async def _source_with_two_changes(client: httpx.AsyncClient, store: MemoryStore) -> dict[str, Any]:
    created = (await client.post("/v1/sources", json={"kind": "file", "config": {"path": "/d/p.csv"}})).json()
    source, epoch = created["id"], created["epoch"]
    first = ChangeSet(source, epoch, 1, T0, (AddTab(tab=0, title="Prices", index=0, rows=ROWS_1),))
    second = ChangeSet(
        source,
        epoch,
        2,
        T0,
        (
            InsertRows(tab=0, at=1, rows=(("pear", 2),)),
            SetCell(tab=0, row=2, col=1, a1="B3", old=1.5, new=2.5),
        ),
    )
    await store.commit(Snapshot((Tab(0, "Prices", ROWS_1),)), first, retention=Retention())
    await store.commit(Snapshot((Tab(0, "Prices", ROWS_2),)), second, retention=Retention())
    return dict(created)


async def test_snapshot_before_the_first_read_is_version_0_without_tabs(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/sources", json={"kind": "file", "config": {"path": "/d/p.csv"}})).json()
    response = await client.get(f"/v1/sources/{created['id']}/snapshot")
    assert response.status_code == 200
    assert response.json() == {"source": created["id"], "epoch": created["epoch"], "version": 0, "tabs": []}


async def test_snapshot_after_two_changes(client: httpx.AsyncClient, store: MemoryStore) -> None:
    created = await _source_with_two_changes(client, store)
    response = await client.get(f"/v1/sources/{created['id']}/snapshot")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "source": created["id"],
        "epoch": created["epoch"],
        "version": 2,
        "tabs": [{"id": 0, "title": "Prices", "rows": [["name", "price"], ["pear", 2], ["apple", 2.5]]}],
    }
    SnapshotOut.model_validate(body)  # the documented shape is the one served
    assert (await client.get(f"/v1/sources/{created['id']}")).json()["version"] == 2


async def test_changes_since_0_are_both_change_sets_in_wire_form(client: httpx.AsyncClient, store: MemoryStore) -> None:
    created = await _source_with_two_changes(client, store)
    source, epoch = created["id"], created["epoch"]
    response = await client.get(f"/v1/sources/{source}/changes", params={"since": 0, "epoch": epoch})
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "source": source,
        "epoch": epoch,
        "version": 2,
        "recovered": True,
        "changes": [
            {
                "source": source,
                "epoch": epoch,
                "version": 1,
                "at": "2025-01-31T12:00:00.000Z",
                "ops": [
                    {"op": "add_tab", "tab": 0, "title": "Prices", "index": 0, "rows": [["name", "price"], ["apple", 1.5]]}
                ],
            },
            {
                "source": source,
                "epoch": epoch,
                "version": 2,
                "at": "2025-01-31T12:00:00.000Z",
                "ops": [
                    {"op": "insert_rows", "tab": 0, "at": 1, "rows": [["pear", 2]]},
                    {"op": "set", "tab": 0, "row": 2, "col": 1, "a1": "B3", "old": 1.5, "new": 2.5},
                ],
            },
        ],
    }
    ChangesOut.model_validate(body)


async def test_changes_since_a_version_limit_and_omitted_epoch(client: httpx.AsyncClient, store: MemoryStore) -> None:
    created = await _source_with_two_changes(client, store)
    url = f"/v1/sources/{created['id']}/changes"

    async def versions(**params: Any) -> list[int]:
        body = (await client.get(url, params=params)).json()
        assert body["recovered"] is True and body["version"] == 2
        return [c["version"] for c in body["changes"]]

    assert await versions(since=1) == [2]
    assert await versions(since=2) == []
    assert await versions(since=0, limit=1) == [1]
    assert await versions() == [1, 2]  # since defaults to 0, epoch to the current one


async def test_wrong_epoch_or_future_version_is_not_recovered(client: httpx.AsyncClient, store: MemoryStore) -> None:
    created = await _source_with_two_changes(client, store)
    url = f"/v1/sources/{created['id']}/changes"
    cases: list[dict[str, str | int]] = [{"since": 1, "epoch": "some-old-epoch"}, {"since": 7, "epoch": created["epoch"]}]
    for params in cases:
        response = await client.get(url, params=params)
        assert response.status_code == 200
        assert response.json() == {
            "source": created["id"],
            "epoch": created["epoch"],
            "version": 2,
            "recovered": False,
            "changes": [],
        }
