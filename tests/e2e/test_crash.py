"""Acceptance: `kill -9` in the middle of a stream of changes, restart: no gap, no repeat, clients resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sheetstream.client import LocalCopy, subscribe
from sheetstream.core.model import Snapshot, Tab
from tests.e2e.harness import ServerProcess, wait_for, write_atomically

pytestmark = pytest.mark.slow


def _csv(n: int) -> str:
    return "step,value\n" + "".join(f"{i},{n if i == n % 7 else 0}\n" for i in range(7)) + f"last,{n}\n"


async def test_kill_9_mid_stream_then_restart_continues_versions(tmp_path: Path) -> None:
    path = tmp_path / "stream.csv"
    write_atomically(path, _csv(0))
    server = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    try:
        source = server.add_source("file", {"path": str(path)}, poll_interval_s=0.2)["id"]
        await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1, what="the first read")

        copy = LocalCopy()
        seen: list[tuple[str, int]] = []
        disconnects = 0

        async def follow() -> None:
            nonlocal disconnects
            async for event in subscribe(server.ws, source, backoff_max_s=0.5):
                if event.type == "change":
                    seen.append((event.epoch or "", event.version or 0))
                if event.type == "disconnected":
                    disconnects += 1
                copy.update(event)

        follower = asyncio.create_task(follow())
        step = 0

        async def write_for(seconds: float) -> None:
            nonlocal step
            end = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < end:
                step += 1
                write_atomically(path, _csv(step))
                await asyncio.sleep(0.1)  # slower than the file source's settle time

        await write_for(1.5)
        writer = asyncio.create_task(write_for(0.5))
        await asyncio.sleep(0.25)
        await asyncio.to_thread(server.kill)  # in the middle of the writes
        await writer
        before_restart = len(seen)
        await asyncio.to_thread(server.start)
        await write_for(1.5)

        final = step
        await asyncio.to_thread(
            wait_for, lambda: server.source(source)["version"] > 0 and copy.version == server.source(source)["version"]
            and copy.snapshot.tabs and copy.snapshot.tabs[0].rows[-1] == ("last", str(final)),
            30.0, "the client to catch up after the restart",
        )
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

        assert disconnects >= 1, "the client never noticed the crash"
        assert before_restart > 0
        versions = [v for _, v in seen]
        assert versions == list(range(versions[0], versions[-1] + 1)), "gap or repeat in what the client saw"
        assert len({e for e, _ in seen}) == 1

        # The store's log itself has no gap and no repeat across the crash.
        response = await asyncio.to_thread(
            httpx.get, f"{server.http}/v1/sources/{source}/changes", params={"since": 0, "limit": 1000}
        )
        body = response.json()
        logged = [c["version"] for c in body["changes"]]
        assert logged == list(range(1, logged[-1] + 1))
        assert logged[-1] == copy.version
        expected = Snapshot((Tab(0, path.stem, [r.split(",") for r in _csv(final).splitlines()]),))
        assert copy.snapshot.tabs[0].rows == expected.tabs[0].rows
    finally:
        server.stop()
