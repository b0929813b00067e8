"""`/healthz` answers while the process runs; `/readyz` also needs the store to answer."""

from __future__ import annotations

import httpx

from sheetstream.stores.base import SourceRecord
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import Clock, RecordingControl, client_for, make_app


class UnreachableStore(MemoryStore):
    """A store whose database went away."""

    async def list_sources(self, *, limit: int = 100, cursor: str | None = None) -> tuple[list[SourceRecord], str | None]:
        raise ConnectionRefusedError("connection to 127.0.0.1:5432 refused")


async def test_healthz_and_readyz_are_ok_with_a_working_store(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


async def test_readyz_is_503_with_the_reason_when_the_store_fails(control: RecordingControl, clock: Clock) -> None:
    async with client_for(make_app(UnreachableStore(), control, clock)) as http:
        assert (await http.get("/healthz")).status_code == 200
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "5432 refused" in body["reason"]
