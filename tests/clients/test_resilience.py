"""Acceptance: the Python client survives 10 forced disconnects during 200 changes and yields every version once."""

from __future__ import annotations

import asyncio
import random
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

from sheetstream.client import Event, LocalCopy, subscribe
from sheetstream.core.codec import tabs_from_json
from tests.clients.proxy import CuttingProxy
from tests.e2e.harness import ServerProcess, wait_for, write_tabs

pytestmark = pytest.mark.slow

CHANGES = 200
CUTS = 10


def _edit(tabs: list[dict[str, Any]], step: int, rng: random.Random) -> None:
    """Cell edits mostly, with row inserts and deletes."""
    rows = tabs[0]["rows"]
    if step % 7 == 0:
        rows.insert(rng.randrange(1, len(rows) + 1), [f"r{step}", str(step)])
    elif step % 11 == 0 and len(rows) > 5:
        del rows[rng.randrange(1, len(rows))]
    else:
        rows[rng.randrange(1, len(rows))][1] = f"v{step}"


async def _wait(predicate: Any, what: str, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


async def test_ten_cuts_during_200_changes_every_version_exactly_once_in_order(tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "book.json"
    tabs: list[dict[str, Any]] = [
        {"id": 0, "title": "T", "rows": [["key", "value"], *[[f"k{i}", "0"] for i in range(10)]]}
    ]
    write_tabs(path, tabs)
    server = ServerProcess(tmp_path).start()
    proxy = await CuttingProxy(server.port).start()
    events: list[Event] = []
    copy = LocalCopy()

    async def follow() -> None:
        stream = subscribe(
            f"ws://127.0.0.1:{proxy.port}/v1/ws", source, backoff_initial_s=0.01, backoff_max_s=0.05
        )
        async with aclosing(stream):
            async for event in stream:
                events.append(event)
                copy.update(event)

    def subscribed() -> int:
        return sum(1 for e in events if e.type == "subscribed")

    follower: asyncio.Task[None] | None = None
    try:
        # Files are replaced atomically here, so no settle time is needed before reading them.
        source = server.add_source("file", {"path": str(path), "settle_s": 0}, poll_interval_s=60)["id"]
        server.refresh(source)
        await asyncio.to_thread(
            wait_for, lambda: server.source(source)["version"] >= 1, what="the first read"
        )
        follower = asyncio.create_task(follow())
        await _wait(lambda: copy.version >= 1, "the snapshot")
        start = copy.version

        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:

            async def version() -> int:
                return int((await http.get(f"/v1/sources/{source}")).json()["version"])

            last = start
            for step in range(1, CHANGES + 1):
                _edit(tabs, step, rng)
                write_tabs(path, tabs)
                assert (await http.post(f"/v1/sources/{source}/refresh")).status_code == 202
                deadline = asyncio.get_running_loop().time() + 15
                while (current := await version()) <= last:
                    assert asyncio.get_running_loop().time() < deadline, f"change {step} was not committed"
                    await asyncio.sleep(0.005)
                last = current
                if step % (CHANGES // CUTS) == CHANGES // CUTS // 2:
                    # Cut only a connection that is subscribed, so each cut is a disconnect of its own.
                    await _wait(lambda: subscribed() == proxy.cuts + 1, "the client to resubscribe")
                    proxy.cut()
            final = last
            await _wait(lambda: copy.version == final, f"the client to reach version {final}")
            snapshot = (await http.get(f"/v1/sources/{source}/snapshot")).json()
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await proxy.close()
        server.stop()

    versions = [e.version for e in events if e.type == "change"]
    assert proxy.cuts == CUTS
    assert sum(1 for e in events if e.type == "disconnected") >= CUTS
    assert final - start >= CHANGES
    assert versions == list(range(start + 1, final + 1)), "a version was lost, repeated or reordered"
    assert [e.type for e in events].count("snapshot") == 1, (
        "every resume should replay, not resend a snapshot"
    )
    assert all(e.recovered for e in [e for e in events if e.type == "subscribed"][1:])
    assert copy.snapshot == tabs_from_json(snapshot["tabs"])
