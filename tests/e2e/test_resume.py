"""Acceptance: resume with `since` after a drop, snapshot when history is gone, no loss or doubling while subscribing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, Subscriber, wait_for, write_atomically

pytestmark = pytest.mark.slow


def _csv(n: int) -> str:
    return "k,v\n" + "".join(f"{i},{i * n}\n" for i in range(5))


async def _bump(server: ServerProcess, source: str, path: Path, n: int) -> None:
    """Make change number n and wait until it is committed."""
    write_atomically(path, _csv(n))
    await asyncio.to_thread(server.refresh, source)
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= n, what=f"version {n}")


async def _file_source(server: ServerProcess, path: Path) -> str:
    write_atomically(path, _csv(1))
    source = str(server.add_source("file", {"path": str(path)}, poll_interval_s=30)["id"])
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1, what="the first read")
    return source


async def test_resume_after_20_missed_versions_gets_exactly_those(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    source = await _file_source(server, path)
    for n in range(2, 6):
        await _bump(server, source, path, n)
    sub = await Subscriber(server.ws, source).subscribe()
    await sub.wait_version(5)
    epoch = sub.of_type("snapshot")[0]["epoch"]
    await sub.close()

    for n in range(6, 26):
        await _bump(server, source, path, n)

    back = await Subscriber(server.ws, source).subscribe(since=(epoch, 5))
    await back.wait_version(25)
    await back.close()
    assert back.of_type("subscribed")[0]["recovered"] is True
    assert back.of_type("snapshot") == []
    assert back.versions() == list(range(6, 26))


async def test_resume_older_than_retention_gets_a_snapshot(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--retention-max-changes", "5").start()
    try:
        path = tmp_path / "data.csv"
        source = await _file_source(server, path)
        sub = await Subscriber(server.ws, source).subscribe()
        await sub.wait_version(1)
        epoch = sub.of_type("snapshot")[0]["epoch"]
        await sub.close()
        for n in range(2, 12):
            await _bump(server, source, path, n)

        back = await Subscriber(server.ws, source).subscribe(since=(epoch, 1))
        await back.wait_version(11)
        await back.close()
        subscribed = back.of_type("subscribed")[0]
        assert subscribed["recovered"] is False
        [snapshot] = back.of_type("snapshot")
        assert snapshot["version"] == 11
        assert snapshot["tabs"][0]["rows"][1] == ["0", "0"] and snapshot["tabs"][0]["rows"][2] == ["1", "11"]
        assert back.versions() == []
    finally:
        server.stop()


async def test_changes_committed_while_subscribing_are_neither_lost_nor_doubled(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "data.csv"
    source = await _file_source(server, path)

    async def writer() -> None:
        for n in range(2, 42):
            await _bump(server, source, path, n)

    async def subscribe_repeatedly() -> list[Subscriber]:
        subs = []
        for _ in range(20):
            subs.append(await Subscriber(server.ws, source).subscribe())
            await asyncio.sleep(0.03)
        return subs

    _, subs = await asyncio.gather(writer(), subscribe_repeatedly())
    for sub in subs:
        await sub.wait_version(41)
    await asyncio.sleep(0.2)
    for sub in subs:
        await sub.close()
    for sub in subs:
        [snapshot] = sub.of_type("snapshot")
        assert sub.versions() == list(range(snapshot["version"] + 1, 42)), (snapshot["version"], sub.versions())
