"""`/readyz` reflects the bus as well as the store: a bus that does not answer makes the process not ready."""

from __future__ import annotations

import uuid

import httpx

from sheetstream.api import create_api_app
from sheetstream.buses.base import Bus
from sheetstream.buses.memory import MemoryBus
from sheetstream.buses.redis import RedisBus
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import Retention
from sheetstream.stores.memory import MemoryStore
from tests.api.conftest import RecordingControl
from tests.contracts.conftest import require_service


class UnreachableBus(MemoryBus):
    """A bus whose server went away."""

    async def healthy(self) -> bool:
        raise ConnectionRefusedError("connection to 127.0.0.1:6379 refused")


async def _readyz(bus: Bus) -> httpx.Response:
    services = Services(
        settings=Settings(), store=MemoryStore(), bus=bus, monitor=RecordingControl(), retention=Retention()
    )
    transport = httpx.ASGITransport(app=create_api_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        return await http.get("/readyz")


async def test_readyz_is_ok_with_an_in_process_bus() -> None:
    response = await _readyz(MemoryBus())
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_503_with_the_reason_when_the_bus_fails() -> None:
    response = await _readyz(UnreachableBus())
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "bus failed" in response.json()["reason"]
    assert "6379 refused" in response.json()["reason"]


async def test_readyz_pings_the_redis_bus() -> None:
    url = require_service("SHEETSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    bus = RedisBus.from_url(f"{url}?stream_prefix=test-ready-{uuid.uuid4().hex}")  # open only reads: no keys
    await bus.open()
    try:
        assert await bus.healthy()
        assert (await _readyz(bus)).status_code == 200
    finally:
        await bus.close()
    closed = await _readyz(bus)
    assert closed.status_code == 503
    assert closed.json()["reason"] == "the bus is not connected"
