"""The backends the contract suites run over, and the rule for backends that need a server.

To run the suites over a new backend, add one `pytest.param(factory, id=...)` line to STORE_BACKENDS or
BUS_BACKENDS. A factory takes the test's tmp_path and returns the URL of an empty backend; a backend that needs
a server gets its URL from `require_service`, which fails on CI and skips elsewhere when the server is down.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sheetstream.buses.base import Bus
from sheetstream.buses.registry import open_bus
from sheetstream.stores.base import Store
from sheetstream.stores.registry import open_store
from tests.buses.redis_keys import drop_redis_keys
from tests.stores.postgres_schemas import POSTGRES_DEFAULT, POSTGRES_ENV, drop_test_schema, fresh_schema_url

BackendFactory = Callable[[Path], str]

DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "http": 80, "https": 443}


def require_service(env_var: str, default_url: str, *, timeout_s: float = 1.0) -> str:
    """The URL of a server some tests need (from `env_var`, else `default_url`), once it accepts connections.

    If it does not: pytest.fail when CI=true (a CI run must not silently skip a backend), else pytest.skip with
    the reason and how to fix it.
    """
    url = os.environ.get(env_var, default_url)
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = f"cannot reach {host}:{port} for {url!r} ({exc}): start the server or set {env_var}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return url


def sqlite_file(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def postgres_store(_tmp_path: Path) -> str:
    """A PostgreSQL store on the test server in a fresh schema (`store_url` drops it after the test)."""
    return fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT), max_size=4)


STORE_BACKENDS = [
    pytest.param(lambda _tmp_path: "memory://", id="memory"),
    pytest.param(sqlite_file, id="sqlite"),
    pytest.param(postgres_store, id="postgres"),
]


def redis_bus(_tmp_path: Path) -> str:
    """A Redis bus on the test server with a fresh stream prefix (`drop_redis_keys` deletes its keys)."""
    url = require_service("SHEETSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    return f"{url}?stream_prefix=sheetstream-test-{uuid.uuid4().hex}&retry_after_ms=200"


BUS_BACKENDS = [
    pytest.param(lambda _tmp_path: "memory://", id="memory"),
    pytest.param(redis_bus, id="redis"),
]


@pytest.fixture(params=STORE_BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty store of each backend; a PostgreSQL test schema is dropped afterwards."""
    factory: BackendFactory = request.param
    url = factory(tmp_path)
    try:
        yield url
    finally:
        await drop_test_schema(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An open, empty store of each backend."""
    opened = open_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def twin_store(store_url: str) -> AsyncIterator[Store]:
    """A second store on the same database as `store`, as another process opens it (skipped for memory://)."""
    if store_url.startswith("memory:"):
        pytest.skip("two memory stores share nothing: there is no second instance of one database")
    opened = open_store(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=BUS_BACKENDS)
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    """An open bus of each backend."""
    factory: BackendFactory = request.param
    opened = open_bus(factory(tmp_path))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
        await drop_redis_keys(opened)
