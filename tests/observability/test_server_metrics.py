"""Acceptance: a real server's `/metrics` parses with Prometheus's parser and its counters move with real traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from tests.e2e.harness import ServerProcess, Subscriber, wait_for, write_atomically
from tests.observability.samples import Samples, sample, scrape


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    yield proc
    proc.stop()


def _scrape_until(server: ServerProcess, ready: object, timeout_s: float = 15.0) -> Samples:
    """Scrape until `ready(samples)` holds (gauges follow the sockets' closing a moment later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(server.http)
        if ready(samples) or time.monotonic() > deadline:  # type: ignore[operator]
            return samples
        time.sleep(0.02)


async def test_counters_move_as_clients_and_sources_drive_traffic(server: ServerProcess, tmp_path: Path) -> None:
    before = await asyncio.to_thread(scrape, server.http)
    path = tmp_path / "prices.csv"
    write_atomically(path, "name,price\napple,1\n")
    source = server.add_source("file", {"path": str(path)}, poll_interval_s=30)["id"]
    broken = server.add_source("file", {"path": str(tmp_path / "missing.csv")}, poll_interval_s=30)["id"]
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1, what="the first read")

    subscribers = [await Subscriber(server.ws, source).subscribe() for _ in range(3)]
    for sub in subscribers:
        await sub.wait_version(1)
    async with connect(server.ws) as raw:
        await raw.send("{not json")
        assert orjson.loads(await raw.recv())["code"] == "bad_json"
        during = await asyncio.to_thread(scrape, server.http)
    assert sample(during, "sheetstream_connections_open") == 4
    assert sample(during, "sheetstream_subscriptions_open") == 3

    write_atomically(path, "name,price\napple,2\npear,3\n")
    await asyncio.to_thread(server.refresh, source)
    for sub in subscribers:
        await sub.wait_version(2)
    await asyncio.to_thread(
        wait_for, lambda: server.source(broken)["status"]["state"] == "error", what="the broken source's error"
    )
    for sub in subscribers:
        await sub.close()
    after = await asyncio.to_thread(
        _scrape_until, server, lambda s: sample(s, "sheetstream_connections_open") == 0
    )

    def moved(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert sample(after, "sheetstream_connections_open") == 0
    assert sample(after, "sheetstream_subscriptions_open") == 0
    # 3 x (subscribed + snapshot + change 2) + 1 error
    assert moved("sheetstream_deliveries_total") >= 10
    assert moved("sheetstream_protocol_errors_total", code="bad_json") == 1
    assert moved("sheetstream_source_reads_total", kind="file", outcome="ok") >= 2
    assert moved("sheetstream_source_reads_total", kind="file", outcome="error") >= 1
    assert moved("sheetstream_source_read_seconds_count", kind="file") >= 3
    assert moved("sheetstream_changes_detected_total", kind="file") == 2
    assert moved("sheetstream_changes_committed_total", kind="file") == 2
    assert moved("sheetstream_change_ops_count") == 2
    assert moved("sheetstream_change_ops_sum") >= 2
    assert moved("sheetstream_bus_messages_consumed_total") == 2
    assert moved("sheetstream_store_read_seconds_count", read="snapshot") == 3
    assert moved("sheetstream_slow_consumer_closes_total") == 0
    assert sample(after, "process_resident_memory_bytes") > 0
