"""The file watcher shared by every file source of a loop: one watch for all their directories."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from sheetstream.sources.file import FileSource
from sheetstream.sources.file_watch import file_watcher


class Hints:
    """Consume a file source's hints in a task, counting them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = FileSource({"path": str(path)})
        self.count = 0
        self.hinted = asyncio.Event()
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        async for _ in self.source.hints():
            self.count += 1
            self.hinted.set()

    async def close(self) -> None:
        await self.source.aclose()
        await asyncio.wait_for(self.task, 5)


@contextlib.asynccontextmanager
async def consuming(paths: list[Path]) -> AsyncIterator[list[Hints]]:
    hints = [Hints(path) for path in paths]
    try:
        yield hints
    finally:
        for h in hints:
            await h.close()


async def hinted_after(h: Hints, poke: Callable[[], object], deadline_s: float = 10.0) -> None:
    """Poke until `h` gets a hint (the watch may be starting again when the first poke lands)."""
    end = time.monotonic() + deadline_s
    while not h.hinted.is_set():
        assert time.monotonic() < end, f"no hint for {h.path}"
        poke()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(h.hinted.wait(), 0.2)
    h.hinted.clear()


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


async def test_sources_in_several_directories_share_one_watch_and_get_only_their_own_hints(tmp_path: Path) -> None:
    paths = [tmp_path / d / f for d in ("a", "b", "c") for f in ("x.csv", "y.csv")]
    for path in paths:
        path.parent.mkdir(exist_ok=True)
        path.write_text("0\n")
    watcher = file_watcher()
    async with consuming(paths) as hints:
        await asyncio.sleep(0)
        assert sorted(watcher.directories) == sorted(str(tmp_path / d) for d in ("a", "b", "c"))
        assert watcher.running
        for h in hints:
            others = {o.path: o.count for o in hints if o is not h}
            await hinted_after(h, lambda h=h: h.path.write_text(f"{time.monotonic()}\n"))
            await asyncio.sleep(0.1)  # past the watch's 5 ms of quiet: any stray hint would be in
            assert {o.path: o.count for o in hints if o is not h} == others
    await asyncio.sleep(0)
    assert watcher.directories == []
    await asyncio.wait_for(watcher.idle(), 5)
    assert not watcher.running


async def test_twenty_sources_cost_one_watch_not_a_thread_each(tmp_path: Path) -> None:
    paths = [tmp_path / f"d{n}" / "f.csv" for n in range(20)]
    for path in paths:
        path.parent.mkdir()
        path.write_text("0\n")
    before = threads()
    async with consuming(paths) as hints:
        for h in hints[:3]:
            await hinted_after(h, lambda h=h: h.path.write_text(f"{time.monotonic()}\n"))
        assert threads() - before <= 4  # the watch's thread and notify's; one watch per source made 40 more


async def test_a_directory_that_appears_later_is_watched_once_it_exists(tmp_path: Path) -> None:
    present, later = tmp_path / "here" / "p.csv", tmp_path / "later" / "l.csv"
    present.parent.mkdir()
    present.write_text("0\n")
    async with consuming([present, later]) as (p, lt):
        await hinted_after(p, lambda: present.write_text(f"{time.monotonic()}\n"))
        later.parent.mkdir()
        await hinted_after(lt, lambda: later.write_text(f"{time.monotonic()}\n"))
        await hinted_after(p, lambda: present.write_text(f"{time.monotonic()}\n"))  # still watched too


async def test_a_directory_removed_under_the_watch_leaves_the_others_watched_and_is_picked_up_again(
    tmp_path: Path,
) -> None:
    doomed, kept = tmp_path / "doomed" / "d.csv", tmp_path / "kept" / "k.csv"
    for path in (doomed, kept):
        path.parent.mkdir()
        path.write_text("0\n")
    async with consuming([doomed, kept]) as (d, k):
        await hinted_after(d, lambda: doomed.write_text(f"{time.monotonic()}\n"))
        shutil.rmtree(doomed.parent)
        await hinted_after(k, lambda: kept.write_text(f"{time.monotonic()}\n"))
        await asyncio.sleep(0.1)
        d.hinted.clear()  # the removal's own event: what follows must come from watching the new directory

        def recreate() -> None:
            doomed.parent.mkdir(exist_ok=True)
            doomed.write_text(f"{time.monotonic()}\n")

        await hinted_after(d, recreate)
