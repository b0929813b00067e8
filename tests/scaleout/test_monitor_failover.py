"""Acceptance: `kill -9` of a monitor: the other takes its sources over within the lease ttl, versions go on."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.e2e.harness import Subscriber, wait_for, write_atomically
from tests.scaleout.harness import Cluster, drop_redis_prefix, drop_store, redis_url, shared_store

pytestmark = pytest.mark.slow

LEASE_TTL_S = 2.0


def lease_holders(cluster: Cluster) -> dict[str, str]:
    """source id -> the monitor holding its lease, read from the store the cluster shares."""
    from sheetstream.runtime.leases import SOURCE_PREFIX
    from sheetstream.runtime.monitor import utc_now
    from sheetstream.stores.registry import open_store

    async def read() -> dict[str, str]:
        store = open_store(cluster.store)
        await store.open()
        try:
            held = await store.lease_holders(SOURCE_PREFIX, now=utc_now())
        finally:
            await store.close()
        return {name[len(SOURCE_PREFIX):]: holder for name, holder in held.items()}

    return asyncio.run(read())


async def test_kill_9_of_a_monitor_the_other_takes_over_within_the_lease(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, shared_store(tmp_path), redis_url(), gateways=1,
                      monitor_args=("--lease-ttl-s", str(LEASE_TTL_S)))
    paths = [tmp_path / f"s{n}.csv" for n in range(6)]
    try:
        await asyncio.to_thread(cluster.start)
        sources = []
        for path in paths:
            write_atomically(path, "key,value\nrow,0\n")
            sources.append(await asyncio.to_thread(cluster.add_source, "file", {"path": str(path)},
                                                   poll_interval_s=0.2))
        # Both monitors are alive: the sources are spread over them, one lease each.
        await asyncio.to_thread(wait_for, lambda: set(lease_holders(cluster)) == set(sources)
                                and len(set(lease_holders(cluster).values())) == 2, 20.0, "sources spread")
        holders = await asyncio.to_thread(lease_holders, cluster)
        victim = next(m for m in cluster.monitors if m.name == holders[sources[0]])
        survivor = next(m for m in cluster.monitors if m is not victim)
        orphans = [s for s in sources if holders[s] == victim.name]

        subs = [await Subscriber(cluster.gateways[0].ws, s).subscribe() for s in orphans]
        for sub in subs:
            await sub.wait_version(1)
        for n, path in enumerate(paths):
            if sources[n] in orphans:
                write_atomically(path, "key,value\nrow,1\n")
        for sub in subs:
            await sub.wait_version(2)

        await asyncio.to_thread(victim.kill)
        killed_at = time.monotonic()
        await asyncio.to_thread(
            wait_for, lambda: all(h == survivor.name for h in lease_holders(cluster).values()), 3 * LEASE_TTL_S,
            "the survivor to hold every lease",
        )
        takeover_s = time.monotonic() - killed_at
        for step in (2, 3):
            for n, path in enumerate(paths):
                if sources[n] in orphans:
                    write_atomically(path, f"key,value\nrow,{step}\n")
            for sub in subs:
                await sub.wait_version(step + 1)
        await asyncio.sleep(0.3)  # a duplicate, if any, would arrive now
        for sub in subs:
            await sub.close()
        api_versions = [await asyncio.to_thread(cluster.version, s) for s in orphans]
    finally:
        cluster.stop()
        drop_redis_prefix(cluster.redis, cluster.prefix)
        drop_store(cluster.store)

    # Within the ttl plus one renewal round (ttl/3) of the survivor, and a little slack for this busy machine.
    assert takeover_s < LEASE_TTL_S * 4 / 3 + 2.0
    assert api_versions == [4] * len(orphans)
    for sub in subs:
        base = sub.of_type("snapshot")[0]["version"]
        assert sub.versions() == list(range(base + 1, 5)), sub.source
