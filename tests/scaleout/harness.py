"""Several sheetstream role processes on one shared store and one Redis, and a private redis-server to restart.

`Cluster` starts `sheetstream api`, `monitor` and `gateway` processes as children (each on its own port, all on
the same store and bus), waits for their `/readyz`, and stops or kills them. `RedisServer` runs a throwaway
redis-server without persistence in a temporary directory, so a test may kill and restart it; the machine's own
Redis is never restarted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.contracts.conftest import require_service
from tests.e2e.harness import ChildProcess, free_port

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    """The test Redis (from SHEETSTREAM_TEST_REDIS), once it answers; fails on CI, skips elsewhere."""
    return require_service("SHEETSTREAM_TEST_REDIS", REDIS_URL)


def shared_store(tmp_path: Path) -> str:
    """A store every process of a test shares: PostgreSQL (a fresh test schema) when it is there, else SQLite."""
    try:
        from tests.stores.postgres_schemas import POSTGRES_DEFAULT, POSTGRES_ENV, fresh_schema_url
    except ImportError:
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT))


def drop_store(url: str) -> None:
    """Drop a PostgreSQL test schema (a SQLite file goes with the temporary directory); callable from a loop."""
    if not url.startswith("postgres"):
        return
    from tests.stores.postgres_schemas import drop_test_schema

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(drop_test_schema(url))).result()


def drop_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix:` on the Redis at `url`."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def until(predicate: Callable[[], object], what: str, timeout_s: float = 15.0) -> None:
    """Poll `predicate` until it holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Node(ChildProcess):
    """One `sheetstream ROLE` child process."""

    def __init__(self, role: str, name: str, workdir: Path, store: str, bus: str, *extra: str) -> None:
        super().__init__(workdir, f"{name}.log")
        self.role = role
        self.name = name
        self.store = store
        self.bus = bus
        self.extra = extra

    def cmd(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "sheetstream", self.role, "--port", str(self.port), "--store", self.store,
            "--bus", self.bus, "--log-level", "warning", "--backoff-max-s", "1", "--anonymous", *self.extra,
        ]
        return cmd if self.role == "api" else [*cmd, "--node-id", self.name]


class Cluster:
    """api + monitors + gateways on one store and one Redis bus prefix."""

    def __init__(self, workdir: Path, store: str, redis: str, *, monitors: int = 2, gateways: int = 2,
                 monitor_args: tuple[str, ...] = ()) -> None:
        self.prefix = f"sheetstream-scaleout-{uuid.uuid4().hex[:12]}"
        self.redis = redis
        self.bus = f"{redis}?stream_prefix={self.prefix}&retry_after_ms=1000&block_ms=500"
        self.store = store
        self.api = Node("api", "api", workdir, store, self.bus)
        self.monitors = [
            Node("monitor", f"monitor-{n}", workdir, store, self.bus, *monitor_args)
            for n in range(1, monitors + 1)
        ]
        self.gateways = [Node("gateway", f"gateway-{n}", workdir, store, self.bus) for n in range(1, gateways + 1)]

    @property
    def nodes(self) -> list[Node]:
        return [self.api, *self.monitors, *self.gateways]

    def start(self, timeout_s: float = 60.0) -> Cluster:
        """Start every node at once (stores migrate under a lock) and wait until all are ready."""
        self.wait_ready([node.launch() for node in self.nodes], timeout_s)
        return self

    def wait_ready(self, nodes: list[Node], timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        waiting = list(nodes)
        while waiting:
            waiting = [node for node in waiting if not node.ready()]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout_s} s: {[n.name for n in waiting]}")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def add_source(self, kind: str, config: dict[str, Any], **fields: Any) -> str:
        response = httpx.post(f"{self.api.http}/v1/sources", json={"kind": kind, "config": config, **fields}, timeout=10)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def version(self, source: str) -> int:
        return int(httpx.get(f"{self.api.http}/v1/sources/{source}", timeout=10).json()["version"])

    def refresh(self, source: str) -> None:
        assert httpx.post(f"{self.api.http}/v1/sources/{source}/refresh", timeout=10).status_code == 202


class RedisServer:
    """A private redis-server with no persistence, on a free port in `workdir`: safe to kill and restart."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
