"""`/v1/dead-letters` (list, read, replay, delete) and the hooks' hint dead letters, over the real app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sheetstream.api import create_api_app
from sheetstream.buses.memory import MemoryBus
from sheetstream.core.codec import changeset_to_json
from sheetstream.core.model import ChangeSet, SetCell
from sheetstream.runtime.dead_letters import DeadLetters
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewDeadLetter, NewSource, Retention
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0, Clock, client_for

SECRET = "s3cret"


class Control:
    """A SourceControl whose `refresh` raises while `broken`."""

    def __init__(self) -> None:
        self.broken = False
        self.refreshed: list[str] = []

    def refresh(self, source_id: str) -> None:
        if self.broken:
            raise ConnectionError("monitor unreachable")
        self.refreshed.append(source_id)

    def reload(self, source_id: str) -> None:
        """Not used here."""


class Env:
    """The app over a memory store and bus, with a consumer on the bus to see what replays publish."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        self.bus = MemoryBus()
        self.control = Control()
        self.clock = Clock()
        self.published = self.bus.consume("test")
        settings = Settings(anonymous=True, max_deliveries=2, apps_script_secret=SECRET)
        services = Services(
            settings=settings, store=self.store, bus=self.bus, monitor=self.control, retention=Retention()
        )
        self.app: FastAPI = create_api_app(services)
        self.app.state.clock = self.clock
        self.letters = DeadLetters(self.store, bus=self.bus, clock=self.clock)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    made = Env()
    await made.bus.open()
    yield made
    await made.bus.close()


@pytest.fixture
async def http(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(env.app) as client:
        yield client


def cs(version: int) -> ChangeSet:
    return ChangeSet("src1", "E", version, T0, (SetCell(0, 1, 0, "A2", "old", f"new {version}"),))


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


async def test_list_is_newest_first_without_payloads_and_pages(env: Env, http: httpx.AsyncClient) -> None:
    letters = [await env.letters.changeset_failed(cs(v), f"ValueError: v{v}", 5) for v in (1, 2, 3)]
    first = await http.get("/v1/dead-letters", params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [item["id"] for item in page["items"]] == [letters[2].id, letters[1].id]
    assert page["items"][0] == {
        "id": letters[2].id,
        "kind": "changeset",
        "source": "src1",
        "error": "ValueError: v3",
        "attempts": 5,
        "first_failed_at": "2025-01-31T12:00:00.000Z",
        "last_failed_at": "2025-01-31T12:00:00.000Z",
    }
    second = (await http.get("/v1/dead-letters", params={"limit": 2, "cursor": page["next_cursor"]})).json()
    assert [item["id"] for item in second["items"]] == [letters[0].id]
    assert "next_cursor" not in second


async def test_an_empty_list(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/dead-letters")
    assert (response.status_code, response.json()) == (200, {"items": []})


@pytest.mark.parametrize("params", [{"cursor": "%%%"}, {"cursor": "YWJj"}, {"limit": 0}, {"limit": 1001}])
async def test_bad_list_parameters_are_422(http: httpx.AsyncClient, params: dict[str, Any]) -> None:
    response = await http.get("/v1/dead-letters", params=params)
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"


async def test_read_shows_the_payload(env: Env, http: httpx.AsyncClient) -> None:
    letter = await env.letters.changeset_failed(cs(7), "ValueError: boom", 5)
    response = await http.get(f"/v1/dead-letters/{letter.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["payload"] == changeset_to_json(cs(7))
    assert (body["id"], body["kind"], body["error"], body["attempts"]) == (
        letter.id,
        "changeset",
        "ValueError: boom",
        5,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/dead-letters/999"),
        ("POST", "/v1/dead-letters/999/replay"),
        ("DELETE", "/v1/dead-letters/999"),
        ("GET", "/v1/dead-letters/not-a-number"),
    ],
)
async def test_unknown_ids_are_404_not_found(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert error_of(response)["details"] == {"id": path.split("/")[3]}


async def test_delete_is_204_and_the_letter_is_gone(env: Env, http: httpx.AsyncClient) -> None:
    letter = await env.letters.changeset_failed(cs(1), "e", 1)
    response = await http.delete(f"/v1/dead-letters/{letter.id}")
    assert (response.status_code, response.content) == (204, b"")
    assert (await http.get(f"/v1/dead-letters/{letter.id}")).status_code == 404


async def test_replaying_a_change_set_publishes_it_again_and_deletes_the_letter(
    env: Env, http: httpx.AsyncClient
) -> None:
    letter = await env.letters.changeset_failed(cs(4), "ValueError: boom", 5)
    response = await http.post(f"/v1/dead-letters/{letter.id}/replay")
    assert (response.status_code, response.json()) == (200, {"replayed": True})
    assert (await anext(env.published)).changeset == cs(4)
    assert (await http.get(f"/v1/dead-letters/{letter.id}")).status_code == 404


async def test_a_failing_replay_is_409_and_the_letter_stays_with_one_more_attempt(
    env: Env, http: httpx.AsyncClient
) -> None:
    letter = await env.store.add_dead_letter(
        NewDeadLetter(
            "changeset", None, {"entry": "s/1-0", "data": "garbage"}, "cannot decode", 1, key="entry:s/1-0"
        ),
        now=T0,
    )
    env.clock.advance(60)
    response = await http.post(f"/v1/dead-letters/{letter.id}/replay")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "replay_failed"
    assert "no change set" in error["message"]
    assert error["details"]["id"] == letter.id and error["details"]["attempts"] == 2
    kept = (await http.get(f"/v1/dead-letters/{letter.id}")).json()
    assert kept["attempts"] == 2 and kept["error"] == error["details"]["error"]
    assert kept["last_failed_at"] == "2025-01-31T12:01:00.000Z"


async def test_a_hook_hint_that_keeps_failing_is_a_dead_letter_and_replays_once_fixed(
    env: Env, http: httpx.AsyncClient
) -> None:
    record = await env.store.create_source(
        NewSource(kind="google_sheets", config={"spreadsheet_id": "sheet-9"}), now=T0
    )
    env.control.broken = True
    hook = await http.post(
        "/v1/hooks/apps-script", json={"spreadsheet_id": "sheet-9"}, headers={"X-Sheetstream-Secret": SECRET}
    )
    assert hook.status_code == 202
    letter_id = hook.json()["dead_letter"]
    assert hook.json()["sources"] == []
    letter = (await http.get(f"/v1/dead-letters/{letter_id}")).json()
    assert (letter["kind"], letter["source"], letter["attempts"]) == ("hint", None, 2)
    assert letter["payload"] == {"origin": "apps_script", "spreadsheet_id": "sheet-9"}
    assert letter["error"] == "ConnectionError: monitor unreachable"
    assert SECRET not in str(letter)

    failed = await http.post(f"/v1/dead-letters/{letter_id}/replay")
    assert failed.status_code == 409 and error_of(failed)["details"]["attempts"] == 3

    env.control.broken = False
    replayed = await http.post(f"/v1/dead-letters/{letter_id}/replay")
    assert replayed.status_code == 200
    assert env.control.refreshed == [record.id]
    assert (await http.get("/v1/dead-letters")).json() == {"items": []}


async def test_a_working_hook_answers_without_a_dead_letter(env: Env, http: httpx.AsyncClient) -> None:
    record = await env.store.create_source(
        NewSource(kind="google_sheets", config={"spreadsheet_id": "sheet-1"}), now=T0
    )
    hook = await http.post(
        "/v1/hooks/apps-script", json={"spreadsheet_id": "sheet-1"}, headers={"X-Sheetstream-Secret": SECRET}
    )
    assert (hook.status_code, hook.json()) == (202, {"sources": [record.id]})


async def test_metrics_show_the_depth_from_the_store(env: Env, http: httpx.AsyncClient) -> None:
    for version in (1, 2, 3):
        await env.letters.changeset_failed(cs(version), "e", 1)
    text = (await http.get("/metrics")).text
    assert "\nsheetstream_dead_letters 3.0\n" in text
    assert 'sheetstream_dead_letters_added_total{kind="hint"}' in text
