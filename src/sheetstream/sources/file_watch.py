"""One file-system watcher per event loop, shared by every file source in it.

watchfiles runs each watch in a thread that wakes every `step` (5 ms here) and takes the GIL to check whether it
should stop: one such thread per file source cost an idle server about 0.15 % of a core and two threads per
source (3 % and 45 threads with 20 sources). Here one watch covers the directories of every file source of the
loop; it is started again, with the new set of directories, when a source needs a directory that is not watched
yet, when a watched one is no longer needed, and (checked every second) when a directory appears, or is removed or
replaced under the watch.

    watcher = file_watcher()               # this loop's
    async for _ in watcher.hints(path, stop):
        ...                                # something happened to `path` (write, replace, delete, create)

Events are handed on after 5 ms without another (`step`), 500 ms at most (`debounce`), as watchfiles does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import weakref
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import structlog

log = structlog.get_logger("sheetstream.sources.file")

STEP_MS = 5
DEBOUNCE_MS = 500
CHECK_S = 1.0
"""How often the watched directories are checked (one that appeared, or was removed or replaced)."""


class Watcher:
    """The hints of every watched file of one event loop, from one watchfiles watch over their directories."""

    def __init__(self) -> None:
        self._waiting: dict[str, dict[str, set[asyncio.Event]]] = {}
        """Directory -> file name -> the flags of the hint iterators waiting on that file."""
        self._restart = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def directories(self) -> list[str]:
        """The directories some iterator waits on (watched, or looked for until they exist)."""
        return list(self._waiting)

    @property
    def running(self) -> bool:
        """Whether the watch task runs (it ends when no iterator is left)."""
        return self._task is not None and not self._task.done()

    async def idle(self) -> None:
        """Wait until the watch task has ended, once no iterator is left."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def hints(self, path: Path, stop: asyncio.Event) -> AsyncIterator[None]:
        """Yield after each batch of events on `path` (its directory watched, not recursively) until `stop` is set."""
        if stop.is_set():
            return
        flag = asyncio.Event()
        self._add(path, flag)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                hinted = asyncio.ensure_future(flag.wait())
                await asyncio.wait({hinted, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not hinted.done():
                    hinted.cancel()
                    return
                flag.clear()
                yield None
        finally:
            stopped.cancel()
            self._remove(path, flag)

    def _add(self, path: Path, flag: asyncio.Event) -> None:
        directory, name = str(path.parent), path.name
        names = self._waiting.get(directory)
        if names is None:
            names = self._waiting[directory] = {}
            self._restart.set()  # a directory to add to the watch
        names.setdefault(name, set()).add(flag)
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="file watcher")

    def _remove(self, path: Path, flag: asyncio.Event) -> None:
        directory, name = str(path.parent), path.name
        names = self._waiting.get(directory, {})
        flags = names.get(name, set())
        flags.discard(flag)
        if not flags:
            names.pop(name, None)
        if not names and self._waiting.pop(directory, None) is not None:
            self._restart.set()  # one directory fewer (and if none is left, the task ends)

    def _wanted(self, _change: object, changed: str) -> bool:
        return os.path.basename(changed) in self._waiting.get(os.path.dirname(changed), {})

    def _hint(self, changed: str) -> None:
        for flag in self._waiting.get(os.path.dirname(changed), {}).get(os.path.basename(changed), ()):
            flag.set()

    async def _run(self) -> None:
        from watchfiles import awatch  # imported here: only file sources need a watcher

        while self._waiting:
            self._restart.clear()
            watched = _present(self._waiting)
            if not watched:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._restart.wait(), CHECK_S)
                continue
            try:
                async for changes in awatch(
                    *watched,
                    watch_filter=self._wanted,
                    stop_event=self._restart,
                    recursive=False,
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    rust_timeout=int(CHECK_S * 1000),
                    yield_on_timeout=True,
                ):
                    for _change, changed in changes:
                        self._hint(changed)
                    if _present(self._waiting) != watched:
                        break  # a directory appeared, or one was removed or replaced: watch what is there now
            except Exception:  # the watch failed: look again shortly
                log.warning("file watcher stopped; starting it again", exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._restart.wait(), CHECK_S)


def _present(directories: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Those of `directories` that exist, with their (device, inode): a stat each, when the watch starts and then
    once a second, so that a directory that appears, or is removed or replaced, is watched as it is now."""
    present = {}
    for directory in directories:
        with contextlib.suppress(OSError):
            st = os.stat(directory)
            if stat.S_ISDIR(st.st_mode):
                present[directory] = (st.st_dev, st.st_ino)
    return present


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watcher] = weakref.WeakKeyDictionary()


def file_watcher() -> Watcher:
    """The running loop's watcher (made on first use)."""
    loop = asyncio.get_running_loop()
    watcher = _WATCHERS.get(loop)
    if watcher is None:
        watcher = _WATCHERS[loop] = Watcher()
    return watcher
