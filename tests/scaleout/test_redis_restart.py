"""Acceptance: Redis restarted (losing every stream and group) in the middle of a stream: clients miss nothing.

The cluster runs on a private redis-server without persistence, killed and started again on the same port; the
machine's Redis is not touched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sheetstream.client import subscribe
from tests.e2e.harness import wait_for, write_atomically
from tests.scaleout.harness import Cluster, RedisServer, drop_store, shared_store, until

pytestmark = pytest.mark.slow


async def test_gateways_recover_from_a_redis_restart_and_clients_miss_nothing(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path).start()
    cluster = Cluster(tmp_path, shared_store(tmp_path), redis_server.url, monitors=1)
    path = tmp_path / "stream.csv"
    write_atomically(path, "key,value\nrow,0\n")
    seen: dict[str, list[int]] = {gw.name: [] for gw in cluster.gateways}

    async def follow(name: str, url: str, source: str) -> None:
        async for event in subscribe(url, source, backoff_max_s=0.2):
            if event.type == "change":
                seen[name].append(event.version or 0)

    followers: list[asyncio.Task[None]] = []
    try:
        await asyncio.to_thread(cluster.start)
        source = await asyncio.to_thread(cluster.add_source, "file", {"path": str(path)}, poll_interval_s=0.2)
        await asyncio.to_thread(wait_for, lambda: cluster.version(source) >= 1, what="the first read")
        followers = [asyncio.create_task(follow(gw.name, gw.ws, source)) for gw in cluster.gateways]
        step = 0

        async def write_for(seconds: float) -> None:
            nonlocal step
            end = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < end:
                step += 1
                write_atomically(path, f"key,value\nrow,{step}\n")
                await asyncio.sleep(0.1)  # paces the edits: slower than the file source's settle time

        await write_for(1.0)
        await asyncio.to_thread(redis_server.kill)
        before_restart = await asyncio.to_thread(cluster.version, source)
        await write_for(1.0)  # committed while Redis is down: their news is lost
        await asyncio.to_thread(redis_server.start)
        await write_for(1.5)
        final = await asyncio.to_thread(cluster.version, source)
        await until(lambda: all(v and v[-1] >= final for v in seen.values()), "the last version", 20.0)
        await asyncio.sleep(0.3)  # a duplicate, if any, would arrive now
    finally:
        for task in followers:
            task.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        cluster.stop()
        redis_server.kill()
        drop_store(cluster.store)

    assert final > before_restart + 5, "changes were committed during and after the outage"
    for name, versions in seen.items():
        assert versions == list(range(versions[0], final + 1)), name
