"""Acceptance of the scale-out topology with real processes: api + 2 monitors + 2 gateways on one store and Redis.

1. Clients on both gateways get every change of every source exactly once, in order.
2. `kill -9` of a gateway: its clients resume on the other with no loss and no duplicate; the killed node, started
   again under the same name, serves live changes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sheetstream.client import Event, subscribe
from tests.e2e.harness import Subscriber, wait_for, write_atomically
from tests.scaleout.harness import Cluster, drop_redis_prefix, drop_store, redis_url, shared_store, until

pytestmark = pytest.mark.slow


def csv_text(step: int) -> str:
    return f"key,value\nrow,{step}\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module; each test adds its own sources."""
    workdir = tmp_path_factory.mktemp("cluster")
    running = Cluster(workdir, shared_store(workdir), redis_url())
    try:
        yield running.start()
    finally:
        running.stop()
        drop_redis_prefix(running.redis, running.prefix)
        drop_store(running.store)


def add_csv_source(cluster: Cluster, path: Path, poll_interval_s: float = 30.0) -> str:
    write_atomically(path, csv_text(0))
    source = cluster.add_source("file", {"path": str(path)}, poll_interval_s=poll_interval_s)
    wait_for(lambda: cluster.version(source) >= 1, what="the first read")
    return source


async def test_clients_on_both_gateways_get_every_change_once_in_order(cluster: Cluster, tmp_path: Path) -> None:
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    sources = [await asyncio.to_thread(add_csv_source, cluster, path) for path in paths]
    subscribers = [await Subscriber(gw.ws, source).subscribe() for gw in cluster.gateways for source in sources]
    for sub in subscribers:
        await sub.wait_version(1)

    steps = 8
    for step in range(1, steps + 1):
        for path, source in zip(paths, sources, strict=True):
            write_atomically(path, csv_text(step))
            await asyncio.to_thread(cluster.refresh, source)
            await asyncio.to_thread(wait_for, lambda s=source, v=step: cluster.version(s) >= v + 1, 15.0, "a commit")
    for sub in subscribers:
        await sub.wait_version(steps + 1)
    await asyncio.sleep(0.3)  # let anything extra (a duplicate) arrive before checking there is none
    for sub in subscribers:
        await sub.close()

    for sub in subscribers:
        base = sub.of_type("snapshot")[0]["version"]
        assert sub.versions() == list(range(base + 1, steps + 2)), (sub.url, sub.source)
        values = [change["ops"][0]["new"] for change in sub.of_type("change")]
        assert values == [str(v - 1) for v in range(base + 1, steps + 2)]
        assert not sub.of_type("error")


async def test_kill_9_of_a_gateway_clients_resume_on_the_other(cluster: Cluster, tmp_path: Path) -> None:
    path = tmp_path / "stream.csv"
    source = await asyncio.to_thread(add_csv_source, cluster, path, 0.2)
    doomed, survivor = cluster.gateways
    seen: list[int] = []
    urls: list[str] = []

    async def follow() -> None:
        """Follow on the first gateway; when it goes, resume on the other from the last version seen."""
        position: tuple[str, int] | None = None
        for url in (doomed.ws, survivor.ws):
            urls.append(url)
            async for event in subscribe(url, source, since=position, backoff_max_s=0.2):
                if event.type == "disconnected":
                    break
                position = record(event) or position

    def record(event: Event) -> tuple[str, int] | None:
        if event.type == "change":
            seen.append(event.version or 0)
        if event.type in ("change", "snapshot"):
            return event.epoch or "", event.version or 0
        return None

    follower = asyncio.create_task(follow())
    step = 0

    async def write_for(seconds: float) -> None:
        nonlocal step
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            step += 1
            write_atomically(path, csv_text(step))
            await asyncio.sleep(0.1)  # paces the edits: slower than the file source's settle time

    try:
        await write_for(1.0)
        writer = asyncio.create_task(write_for(1.0))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(doomed.kill)
        at_kill = len(seen)
        await writer
        final = await asyncio.to_thread(lambda: cluster.version(source))
        await until(lambda: seen and seen[-1] >= final, "the last version")
        await asyncio.sleep(0.3)  # a duplicate, if any, would arrive now
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

    assert urls == [doomed.ws, survivor.ws]
    assert seen == list(range(seen[0], final + 1)), "every version once, in order, across the failover"
    assert at_kill >= 3 and len(seen) >= at_kill + 3, "the stream ran before and after the kill"

    # The killed node comes back under its name (its consumer group is started afresh) and serves again.
    await asyncio.to_thread(lambda: cluster.wait_ready([doomed.launch()]))
    back = await Subscriber(doomed.ws, source).subscribe()
    try:
        await back.wait_version(final)
        write_atomically(path, csv_text(step + 1))
        await back.wait_version(final + 1)
        assert back.versions() == [final + 1]
    finally:
        await back.close()
