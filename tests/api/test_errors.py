"""Every error answer is `{"error": {"code", "message", "details"?}}` with the right status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sheetstream.stores.base import SourceRecord
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import Clock, RecordingControl, client_for, make_app

FILE = {"kind": "file", "config": {"path": "/data/prices.csv"}}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking status, code and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert set(error) <= {"code", "message", "details"}
    return error


def fields_of(error: dict[str, Any]) -> list[str]:
    return [d["field"] for d in error["details"]]


async def test_missing_kind_names_the_field(client: httpx.AsyncClient) -> None:
    error = error_of(await client.post("/v1/sources", json={"config": {}}), 422, "validation_error")
    assert fields_of(error) == ["body.kind"]
    assert "body.kind" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": 7, "config": {"path": "x"}}, "body.kind"),
        ({"kind": "file", "config": "path=x"}, "body.config"),
        ({"kind": "file", "config": None}, "body.config"),
        ({"kind": "file", "config": {"path": "x"}, "poll_interval_s": "fast"}, "body.poll_interval_s"),
        ({"kind": "file", "config": {"path": "x"}, "poll_interval_s": -1}, "body.poll_interval_s"),
        ({"kind": "file", "config": {"path": "x"}, "poll_interval_s": 0}, "body.poll_interval_s"),
        ({"kind": "file", "config": {"path": "x"}, "paused": "yes"}, "body.paused"),
        ({"kind": "file", "config": {"path": "x"}, "name": ["a"]}, "body.name"),
        ({"kind": "file", "config": {"path": "x"}, "poll_interval": 5}, "body.poll_interval"),
    ],
)
async def test_wrong_types_and_values_are_field_errors(
    client: httpx.AsyncClient, control: RecordingControl, body: dict[str, Any], field: str
) -> None:
    error = error_of(await client.post("/v1/sources", json=body), 422, "validation_error")
    assert fields_of(error) == [field]
    assert control.calls == []


async def test_several_field_errors_are_all_listed(client: httpx.AsyncClient) -> None:
    error = error_of(await client.post("/v1/sources", json={"poll_interval_s": -5}), 422, "validation_error")
    assert sorted(fields_of(error)) == ["body.config", "body.kind", "body.poll_interval_s"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "file", "config": {}}, "path"),
        ({"kind": "ftp", "config": {"url": "x"}}, "ftp"),
        ({"kind": "http_csv", "config": {"url": "not a url"}}, "url"),
        ({"kind": "file", "config": {"path": "/d/x.csv", "format": "docx"}}, "docx"),
    ],
)
async def test_bad_config_is_422_invalid_config_and_nothing_is_stored(
    client: httpx.AsyncClient, store: MemoryStore, body: dict[str, Any], words: str
) -> None:
    error = error_of(await client.post("/v1/sources", json=body), 422, "invalid_config")
    assert words in error["message"]
    assert (await store.list_sources())[0] == []


async def test_patch_with_bad_config_keeps_the_old_one(client: httpx.AsyncClient, control: RecordingControl) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    error = error_of(await client.patch(f"/v1/sources/{created['id']}", json={"config": {}}), 422, "invalid_config")
    assert "path" in error["message"]
    assert (await client.get(f"/v1/sources/{created['id']}")).json()["config"] == FILE["config"]
    assert control.calls == [("reload", created["id"])]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"config": None}, "body.config"),
        ({"paused": None}, "body.paused"),
        ({"poll_interval_s": -1}, "body.poll_interval_s"),
        ({"kind": "http_csv"}, "body.kind"),
    ],
)
async def test_patch_field_errors(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    created = (await client.post("/v1/sources", json=FILE)).json()
    error = error_of(await client.patch(f"/v1/sources/{created['id']}", json=body), 422, "validation_error")
    assert fields_of(error) == [field]


async def test_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/sources", content=b"{oops", headers={"content-type": "application/json"})
    error = error_of(response, 422, "invalid_json")
    assert fields_of(error) == ["body"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/sources?limit=0", "query.limit"),
        ("/v1/sources?limit=1001", "query.limit"),
        ("/v1/sources?limit=ten", "query.limit"),
        ("/v1/sources/abc/changes?limit=0", "query.limit"),
        ("/v1/sources/abc/changes?since=-1", "query.since"),
    ],
)
async def test_query_parameters_out_of_range(client: httpx.AsyncClient, path: str, field: str) -> None:
    error = error_of(await client.get(path), 422, "validation_error")
    assert fields_of(error) == [field]


@pytest.mark.parametrize("cursor", ["garbage!", "Zm9v", "", "%%%"])
async def test_a_cursor_not_made_by_the_api_is_422(client: httpx.AsyncClient, cursor: str) -> None:
    error = error_of(await client.get("/v1/sources", params={"cursor": cursor}), 422, "validation_error")
    assert fields_of(error) == ["query.cursor"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/sources/nope"),
        ("PATCH", "/v1/sources/nope"),
        ("DELETE", "/v1/sources/nope"),
        ("GET", "/v1/sources/nope/snapshot"),
        ("GET", "/v1/sources/nope/changes"),
        ("GET", "/v1/sources/nope/changes?epoch=e1&since=3"),
        ("POST", "/v1/sources/nope/refresh"),
    ],
)
async def test_unknown_source_is_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
    error = error_of(await client.request(method, path, **kwargs), 404, "source_not_found")
    assert "nope" in error["message"]
    assert error["details"] == {"source": "nope"}


async def test_unknown_route_is_404_not_found(client: httpx.AsyncClient) -> None:
    error = error_of(await client.get("/v1/nothing/here"), 404, "not_found")
    assert "/v1/nothing/here" in error["message"]


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/v1/sources")
    error = error_of(response, 405, "method_not_allowed")
    assert "PUT" in error["message"]
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    error_of(await client.post("/v1/sources/abc/snapshot"), 405, "method_not_allowed")


class BrokenStore(MemoryStore):
    """A store whose reads fail the way a bug would."""

    async def get_source(self, source_id: str) -> SourceRecord:
        raise RuntimeError("secret internals at /srv/app.py line 12")

    async def list_sources(self, *, limit: int = 100, cursor: str | None = None) -> tuple[list[SourceRecord], str | None]:
        raise OSError("database is locked")


async def test_unexpected_failure_is_500_internal_without_details(
    control: RecordingControl, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    async with client_for(make_app(BrokenStore(), control, clock)) as http:
        response = await http.get("/v1/sources/abc")
    error = error_of(response, 500, "internal")
    assert "details" not in error
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = capsys.readouterr()
    assert "secret internals" in logged.out + logged.err  # the server log has it instead


async def test_routes_answer_503_when_no_services_are_attached() -> None:
    from sheetstream.api import create_api_app

    async with client_for(create_api_app(None)) as http:
        error_of(await http.get("/v1/sources"), 503, "unavailable")
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize("headers", [{"content-type": "application/x-www-form-urlencoded"}, {}])
async def test_json_sent_without_a_json_content_type_says_what_to_send(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/sources", content=b'{"kind": "file", "config": {"path": "x"}}', headers=headers)
    error = error_of(response, 422, "invalid_json")
    assert "Content-Type: application/json" in error["message"]


async def test_missing_body_is_a_field_error(client: httpx.AsyncClient) -> None:
    error = error_of(await client.post("/v1/sources"), 422, "validation_error")
    assert fields_of(error) == ["body"]
