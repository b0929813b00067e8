"""Fixtures for the REST API tests: the real app over a MemoryStore, a fixed clock and a recording monitor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from sheetstream.api import create_api_app
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import Retention, Store
from sheetstream.stores.memory import MemoryStore

T0 = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)


@dataclass
class RecordingControl:
    """A SourceControl that remembers what the API asked of the monitor."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def refresh(self, source_id: str) -> None:
        self.calls.append(("refresh", source_id))

    def reload(self, source_id: str) -> None:
        self.calls.append(("reload", source_id))


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_app(store: Store, control: RecordingControl, clock: Clock, settings: Settings | None = None) -> FastAPI:
    """The API app as the server builds it, with the test's store, monitor, clock and settings.

    The default settings accept requests without an API key (`anonymous`): tests/api/test_keys.py covers keys.
    """
    settings = settings or Settings(anonymous=True)
    services = Services(settings=settings, store=store, bus=None, monitor=control, retention=Retention())  # type: ignore[arg-type]
    app = create_api_app(services)
    app.state.clock = clock
    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client speaking to `app` in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def control() -> RecordingControl:
    return RecordingControl()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(store: MemoryStore, control: RecordingControl, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(store, control, clock)) as http:
        yield http
