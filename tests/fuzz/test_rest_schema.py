"""schemathesis over the checked-in OpenAPI document, against the real app: no 5xx, no answer outside the schema.

The app runs in-process (ASGI) over a MemoryStore with a recording monitor, as in tests/api, with the hook
secrets set (an unset Apps Script secret turns its hook off with a documented 503). A few sources exist before
the run, and path parameters and the hook secret are often swapped for real ones, so the fuzzer reaches the
code behind a found source or an accepted hook and not only the 404s and 401s of random values. Every call
carries an API key with both scopes; schemathesis's `ignored_auth` check then also calls each operation without
it and with a wrong one, and expects a refusal.

Checks: schemathesis's defaults except `positive_data_acceptance`: the schema cannot say everything the API
checks (a cursor must be one it handed out, a kind one it knows), and those schema-valid requests are rightly
answered with a documented 422.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sheetstream.api import create_api_app
from sheetstream.auth.keys import mint_key
from sheetstream.core.model import AddTab, ChangeSet, Snapshot, Tab
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource, Retention
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import T0, Clock, RecordingControl

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
ROWS = (("name", "price"), ("apple", 1.5))


async def _seeded_store() -> tuple[MemoryStore, list[str]]:
    store = MemoryStore()
    await store.open()
    ids = []
    for n, kind in enumerate(("file", "http_csv")):
        config = {"path": f"/d/{n}.csv"} if kind == "file" else {"url": f"https://example.com/{n}.csv"}
        record = await store.create_source(NewSource(kind=kind, config=config, name=f"s{n}"), now=T0)
        change = ChangeSet(record.id, record.epoch, 1, T0, (AddTab(tab=0, title="Prices", index=0, rows=ROWS),))
        await store.commit(Snapshot((Tab(0, "Prices", ROWS),)), change, retention=Retention())
        ids.append(record.id)
    return store, ids


async def _api_key(store: MemoryStore) -> str:
    key, record = mint_key("fuzz", ["read", "write"], now=T0)
    await store.create_api_key(record)
    return key


STORE, SOURCE_IDS = asyncio.run(_seeded_store())
API_KEY = asyncio.run(_api_key(STORE))
SECRET = "fuzz-secret"
# No rate limit: the fuzzer sends far more than a minute's worth of requests from one key.
SETTINGS = Settings(apps_script_secret=SECRET, hook_secret=SECRET, rest_requests_per_min=0)
APP = create_api_app(
    Services(settings=SETTINGS, store=STORE, bus=None, monitor=RecordingControl(), retention=Retention())  # type: ignore[arg-type]
)
APP.state.clock = Clock()

schema = schemathesis.openapi.from_path(OPENAPI)
schema.app = APP  # the probes of `ignored_auth` go to the app too


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Half the time, a source that exists."""
    if not path_parameters or "source_id" not in path_parameters:
        return st.just(path_parameters)
    known = st.sampled_from(SOURCE_IDS).map(lambda source_id: {**path_parameters, "source_id": source_id})
    return st.one_of(st.just(path_parameters), known)


@schema.hook
def flatmap_headers(context: Any, headers: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    """Half the time, the right Apps Script secret."""
    if not headers or "x-sheetstream-secret" not in headers:
        return st.just(headers)
    return st.sampled_from([headers, {**headers, "x-sheetstream-secret": SECRET}])


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        app=APP,
        headers={"Authorization": f"Bearer {API_KEY}", "X-API-Key": API_KEY},
        excluded_checks=[positive_data_acceptance],
    )


async def test_a_body_that_is_not_utf8_is_invalid_json_422_not_a_bare_400() -> None:
    """Found by the fuzzer: FastAPI answered such a body with an undocumented 400."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://api.test") as http:
        for method, path in (("POST", "/v1/sources"), ("PATCH", f"/v1/sources/{SOURCE_IDS[0]}")):
            response = await http.request(
                method, path, content=b"\xc4\xa2\x1f|\xff", headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, response.text
            assert response.json()["error"]["code"] == "invalid_json"
