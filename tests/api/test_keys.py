"""REST API keys on `/v1/sources`: 401 for every bad key, 403 for a missing scope, 429 per key, anonymous mode.

The app is the real one over a MemoryStore whose keys are minted as `sheetstream keys create` mints them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from sheetstream.api import openapi_document
from sheetstream.api.auth import RestLimiter, require_scope
from sheetstream.auth.keys import mint_key
from sheetstream.runtime import metrics
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0, Clock, RecordingControl, client_for, make_app

FILE = {"kind": "file", "config": {"path": "/data/prices.csv"}}
READ_ROUTES = ["/v1/sources", "/v1/sources/{id}", "/v1/sources/{id}/snapshot", "/v1/sources/{id}/changes"]
WRITE_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/sources", FILE),
    ("PATCH", "/v1/sources/{id}", {"name": "renamed"}),
    ("POST", "/v1/sources/{id}/refresh", None),
    ("DELETE", "/v1/sources/{id}", None),
]


@dataclass
class Keys:
    """Keys minted into the store, by scope: read, write, both, and one revoked (it had both)."""

    read: str
    write: str
    both: str
    revoked: str


async def mint(store: MemoryStore, *scopes: str, name: str = "test") -> str:
    text, record = mint_key(name, scopes, now=T0)
    await store.create_api_key(record)
    return text


@pytest.fixture
async def keys(store: MemoryStore) -> Keys:
    revoked = await mint(store, "read", "write", name="old")
    await store.revoke_api_key(revoked[4:16], now=T0)
    return Keys(
        read=await mint(store, "read"),
        write=await mint(store, "write"),
        both=await mint(store, "read", "write"),
        revoked=revoked,
    )


@pytest.fixture
async def source_id(store: MemoryStore) -> str:
    return (await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=T0)).id


@pytest.fixture
async def guarded(
    store: MemoryStore, control: RecordingControl, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that is not anonymous: every `/v1/sources` call needs a key."""
    async with client_for(make_app(store, control, clock, Settings())) as http:
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def bad_credentials(keys: Keys) -> dict[str, dict[str, str]]:
    """Every way a request can fail to carry a valid key."""
    real_id = keys.both[4:16]
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "not a key": bearer("hello"),
        "truncated": bearer(keys.both[:-1]),
        "wrong prefix": bearer("xsk" + keys.both[3:]),
        "upper-case id": bearer(keys.both[:4] + real_id.upper() + keys.both[16:]),
        "empty header": {"X-API-Key": ""},
        "malformed header": {"X-API-Key": "ssk_nothex"},
        "unknown key": bearer("ssk_0123456789ab_" + "A" * 43),
        "wrong secret": bearer(f"ssk_{real_id}_" + "B" * 43),
        "wrong secret in header": {"X-API-Key": f"ssk_{real_id}_" + "C" * 43},
        "revoked": bearer(keys.revoked),
        "revoked in header": {"X-API-Key": keys.revoked},
        "two different keys": {**bearer(keys.both), "X-API-Key": keys.read},
    }


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def test_every_bad_credential_is_401_on_every_route(
    guarded: httpx.AsyncClient, keys: Keys, source_id: str, store: MemoryStore, control: RecordingControl
) -> None:
    calls = [("GET", path, None) for path in READ_ROUTES] + WRITE_ROUTES
    refused = 0
    cases = bad_credentials(keys)
    for headers in cases.values():
        for method, path, body in calls:
            response = await guarded.request(method, path.format(id=source_id), json=body, headers=headers)
            assert_refused(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
            refused += 1
    assert refused == len(cases) * len(calls) == 15 * 8
    # Nothing got through: no source made, changed or deleted, nothing asked of the monitor.
    records, _ = await store.list_sources()
    assert [(r.id, r.name) for r in records] == [(source_id, None)]
    assert control.calls == []


async def test_a_read_key_reads_but_may_not_write(
    guarded: httpx.AsyncClient, keys: Keys, source_id: str
) -> None:
    for path in READ_ROUTES:
        response = await guarded.get(path.format(id=source_id), headers=bearer(keys.read))
        assert response.status_code == 200, (path, response.text)
    for method, path, body in WRITE_ROUTES:
        response = await guarded.request(
            method, path.format(id=source_id), json=body, headers=bearer(keys.read)
        )
        error = assert_refused(response, 403, "forbidden")
        assert "write" in error["message"]
    assert (await guarded.get(f"/v1/sources/{source_id}", headers=bearer(keys.read))).json()["name"] is None


async def test_a_write_key_writes_but_does_not_imply_read(
    guarded: httpx.AsyncClient, keys: Keys, control: RecordingControl
) -> None:
    created = await guarded.post("/v1/sources", json=FILE, headers={"X-API-Key": keys.write})
    assert created.status_code == 201, created.text
    source_id = created.json()["id"]
    patched = await guarded.patch(f"/v1/sources/{source_id}", json={"name": "p"}, headers=bearer(keys.write))
    assert patched.status_code == 200
    assert (
        await guarded.post(f"/v1/sources/{source_id}/refresh", headers=bearer(keys.write))
    ).status_code == 202
    for path in READ_ROUTES:
        assert_refused(
            await guarded.get(path.format(id=source_id), headers=bearer(keys.write)), 403, "forbidden"
        )
    assert (await guarded.delete(f"/v1/sources/{source_id}", headers=bearer(keys.write))).status_code == 204
    assert control.calls == [
        ("reload", source_id),
        ("reload", source_id),
        ("refresh", source_id),
        ("reload", source_id),
    ]


async def test_a_key_with_both_scopes_does_everything_in_either_header(
    guarded: httpx.AsyncClient, keys: Keys
) -> None:
    for headers in (
        bearer(keys.both),
        {"X-API-Key": keys.both},
        {**bearer(keys.both), "X-API-Key": keys.both},
        {"authorization": f"bearer  {keys.both} "},
    ):
        created = await guarded.post("/v1/sources", json=FILE, headers=headers)
        assert created.status_code == 201, created.text
        source_id = created.json()["id"]
        for path in READ_ROUTES:
            assert (await guarded.get(path.format(id=source_id), headers=headers)).status_code == 200
        assert (await guarded.delete(f"/v1/sources/{source_id}", headers=headers)).status_code == 204


async def test_a_revocation_takes_effect_on_the_next_request(
    guarded: httpx.AsyncClient, store: MemoryStore, keys: Keys
) -> None:
    assert (await guarded.get("/v1/sources", headers=bearer(keys.read))).status_code == 200
    await store.revoke_api_key(keys.read[4:16], now=T0)
    assert_refused(await guarded.get("/v1/sources", headers=bearer(keys.read)), 401, "unauthorized")


async def test_authentication_comes_before_validation(guarded: httpx.AsyncClient) -> None:
    # A caller without a key learns nothing about what the route would accept.
    assert_refused(await guarded.post("/v1/sources", json={"bogus": 1}), 401, "unauthorized")
    assert_refused(await guarded.get("/v1/sources", params={"limit": "-1"}), 401, "unauthorized")
    assert_refused(await guarded.get("/v1/sources/nosuch"), 401, "unauthorized")


async def test_anonymous_mode_lets_keyless_calls_in_but_still_checks_a_presented_key(
    client: httpx.AsyncClient, store: MemoryStore, keys: Keys
) -> None:
    created = await client.post("/v1/sources", json=FILE)  # tests/api's app is anonymous
    assert created.status_code == 201
    source_id = created.json()["id"]
    assert (await client.get(f"/v1/sources/{source_id}")).status_code == 200
    for name, headers in bad_credentials(keys).items():
        if name == "missing":
            continue
        assert_refused(await client.get("/v1/sources", headers=headers), 401, "unauthorized")
    # A valid key keeps its scopes: a read key may not write, even where no key at all may.
    assert_refused(
        await client.delete(f"/v1/sources/{source_id}", headers=bearer(keys.read)), 403, "forbidden"
    )
    assert (await client.delete(f"/v1/sources/{source_id}", headers=bearer(keys.write))).status_code == 204


# --- rate limits ------------------------------------------------------------------------------------------------


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limited_app(store: MemoryStore, per_min: int, ticks: Ticks, *, anonymous: bool = False) -> FastAPI:
    app = make_app(
        store, RecordingControl(), Clock(), Settings(anonymous=anonymous, rest_requests_per_min=per_min)
    )
    app.state.rest_limiter = RestLimiter(per_min, clock=ticks)
    return app


async def test_a_key_over_its_limit_gets_429_with_retry_after_then_recovers(
    store: MemoryStore, keys: Keys
) -> None:
    ticks = Ticks()
    async with client_for(limited_app(store, 2, ticks)) as http:  # 2 a minute: one every 30 s, 2 at once
        assert [(await http.get("/v1/sources", headers=bearer(keys.read))).status_code for _ in range(2)] == [
            200,
            200,
        ]
        refused = await http.get("/v1/sources", headers=bearer(keys.read))
        error = assert_refused(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "30"
        assert "30 s" in error["message"]
        # Per key: another key is not held back by the first one's requests.
        assert (await http.get("/v1/sources", headers=bearer(keys.both))).status_code == 200
        ticks.now += 29
        assert_refused(await http.get("/v1/sources", headers=bearer(keys.read)), 429, "rate_limited")
        ticks.now += 1
        assert (await http.get("/v1/sources", headers=bearer(keys.read))).status_code == 200
        assert_refused(await http.get("/v1/sources", headers=bearer(keys.read)), 429, "rate_limited")


async def test_anonymous_requests_and_bad_keys_are_limited_per_address(
    store: MemoryStore, keys: Keys
) -> None:
    ticks = Ticks()
    async with client_for(limited_app(store, 3, ticks, anonymous=True)) as http:
        assert (await http.get("/v1/sources")).status_code == 200
        assert_refused(await http.get("/v1/sources", headers=bearer("nope")), 401, "unauthorized")
        assert (await http.get("/v1/sources")).status_code == 200
        refused = await http.get("/v1/sources")
        assert_refused(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "20"
        assert_refused(await http.get("/v1/sources", headers=bearer("nope")), 429, "rate_limited")
        # A valid key has its own allowance.
        assert (await http.get("/v1/sources", headers=bearer(keys.read))).status_code == 200
        ticks.now += 20
        assert (await http.get("/v1/sources")).status_code == 200


async def test_a_limit_of_0_is_no_limit(store: MemoryStore, keys: Keys) -> None:
    async with client_for(limited_app(store, 0, Ticks())) as http:
        statuses = {(await http.get("/v1/sources", headers=bearer(keys.read))).status_code for _ in range(50)}
    assert statuses == {200}


async def test_the_limit_comes_from_the_settings(store: MemoryStore, keys: Keys) -> None:
    app = make_app(store, RecordingControl(), Clock(), Settings(rest_requests_per_min=1))
    async with client_for(app) as http:
        assert (await http.get("/v1/sources", headers=bearer(keys.read))).status_code == 200
        assert_refused(await http.get("/v1/sources", headers=bearer(keys.read)), 429, "rate_limited")


# --- what stays open, what is counted, what is never shown -------------------------------------------------------


async def test_probes_docs_metrics_web_page_and_hooks_need_no_key(store: MemoryStore) -> None:
    from sheetstream.runtime.server import create_app
    from sheetstream.runtime.services import Services
    from sheetstream.stores.base import Retention

    settings = Settings(apps_script_secret="s3cret", rest_requests_per_min=1)
    services = Services(
        settings=settings, store=store, bus=None, monitor=RecordingControl(), retention=Retention()
    )  # type: ignore[arg-type]
    async with client_for(create_app(services, hub=None)) as http:
        for _ in range(2):  # twice: a limit of 1 a minute does not apply to them either
            for path in (
                "/healthz",
                "/readyz",
                "/metrics",
                "/docs",
                "/openapi.json",
                "/",
                "/static/sheetstream.js",
            ):
                response = await http.get(path)
                assert response.status_code == 200, (path, response.text)
            hook = await http.post(
                "/v1/hooks/apps-script",
                json={"spreadsheet_id": "x"},
                headers={"X-Sheetstream-Secret": "s3cret"},
            )
            assert hook.status_code == 202, hook.text
        assert (await http.post("/v1/hooks/drive")).json()["error"][
            "message"
        ] == "unknown or forged Drive channel token"
        assert_refused(await http.get("/v1/sources"), 401, "unauthorized")


def rejections(code: str) -> float:
    value = metrics.REGISTRY.get_sample_value("sheetstream_rest_rejections_total", {"code": code})
    return value or 0.0


async def test_rejections_are_counted_by_code(store: MemoryStore, keys: Keys) -> None:
    before = {code: rejections(code) for code in ("unauthorized", "forbidden", "rate_limited")}
    async with client_for(limited_app(store, 2, Ticks())) as http:
        await http.get("/v1/sources")
        await http.get("/v1/sources", headers=bearer(keys.revoked))
        await http.post("/v1/sources", json=FILE, headers=bearer(keys.read))
        await http.get("/v1/sources", headers=bearer(keys.read))
        await http.get("/v1/sources", headers=bearer(keys.read))
    after = {code: rejections(code) for code in before}
    assert {code: after[code] - before[code] for code in before} == {
        "unauthorized": 2,
        "forbidden": 1,
        "rate_limited": 1,
    }


async def test_no_key_ever_reaches_a_log_or_an_answer(
    store: MemoryStore,
    keys: Keys,
    source_id: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    with structlog.testing.capture_logs() as logs:
        async with client_for(limited_app(store, 80, Ticks(), anonymous=True)) as http:
            for headers in [*bad_credentials(keys).values(), bearer(keys.read), {"X-API-Key": keys.write}]:
                for method, path, body in [("GET", "/v1/sources", None), *WRITE_ROUTES]:
                    response = await http.request(
                        method, path.format(id=source_id), json=body, headers=headers
                    )
                    answers.append(f"{response.status_code} {response.headers} {response.text}")
            for _ in range(80):  # until the read key is over its limit
                response = await http.get("/v1/sources", headers=bearer(keys.read))
                answers.append(f"{response.status_code} {response.headers} {response.text}")
    statuses = {answer[:3] for answer in answers}
    assert {"200", "401", "403", "429"} <= statuses  # every kind of answer was seen
    logged = f"{logs} {caplog.text} {capsys.readouterr()}"
    assert any(entry.get("key_id") == keys.revoked[4:16] for entry in logs)  # refusals name the key by its id
    secrets_sent = {key[16:] for key in (keys.read, keys.write, keys.both, keys.revoked)} | {
        "A" * 43,
        "B" * 43,
    }
    for secret in secrets_sent:
        assert secret not in logged
        assert not [answer for answer in answers if secret in answer]


def test_every_sources_operation_documents_its_security_and_refusals() -> None:
    doc = openapi_document()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "ssk_<key_id>_<secret>",
        "description": schemes["bearer"]["description"],
    }
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "X-API-Key")
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    operations = [
        (path, op)
        for path, ops in doc["paths"].items()
        if path.startswith(("/v1/sources", "/v1/dead-letters"))
        for op in ops.values()
    ]
    assert len(operations) == 8 + 4
    for path, op in operations:
        assert op["security"] == [{"bearer": []}, {"apiKey": []}], path
        for status in ("401", "403", "429"):
            assert op["responses"][status]["content"]["application/json"]["schema"] == error_ref, (
                path,
                status,
            )
        assert "Retry-After" in op["responses"]["429"]["headers"]
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
    for path, ops in doc["paths"].items():
        if path.startswith(("/v1/hooks/", "/healthz", "/readyz")):  # open: no data, or a secret of their own
            assert all("security" not in op for op in ops.values()), path


async def test_dead_letter_routes_need_a_key_and_the_scope(guarded: httpx.AsyncClient, keys: Keys) -> None:
    reads = ["/v1/dead-letters", "/v1/dead-letters/nosuch"]
    writes = [("POST", "/v1/dead-letters/nosuch/replay"), ("DELETE", "/v1/dead-letters/nosuch")]
    for headers in bad_credentials(keys).values():
        for method, path in [*(("GET", path) for path in reads), *writes]:
            assert_refused(await guarded.request(method, path, headers=headers), 401, "unauthorized")
    assert (await guarded.get(reads[0], headers=bearer(keys.read))).status_code == 200
    assert_refused(await guarded.get(reads[1], headers=bearer(keys.read)), 404, "not_found")  # past the checks
    for method, path in writes:
        assert_refused(await guarded.request(method, path, headers=bearer(keys.read)), 403, "forbidden")
        assert_refused(await guarded.request(method, path, headers=bearer(keys.write)), 404, "not_found")


def test_require_scope_refuses_an_unknown_scope() -> None:
    with pytest.raises(ValueError, match="admin"):
        require_scope("admin")  # type: ignore[arg-type]
