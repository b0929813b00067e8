"""The in-process bus: every `consume` call gets its own queue and every published change set is copied to each.

URL: ``memory://``. It reaches consumers in the same process only (the embedded mode, and tests).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from typing import Final, cast

from sheetstream.buses.base import Bus, Delivery
from sheetstream.core.model import ChangeSet
from sheetstream.errors import ConfigError

_CLOSED: Final = object()


class MemoryBus(Bus):
    """Fan-out to unbounded per-consumer queues. Delivery needs no ack and nothing is redelivered."""

    def __init__(self) -> None:
        # Weak, so a consumer dropped before it was ever iterated does not keep collecting messages.
        self._queues: weakref.WeakSet[asyncio.Queue[object]] = weakref.WeakSet()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> MemoryBus:
        """A new bus for ``memory://``."""
        if url.rstrip("/").lower() != "memory:":
            raise ConfigError(f"the memory bus takes no location or options: use 'memory://', not {url!r}")
        return cls()

    async def open(self) -> None:
        """Nothing to connect to; a closed bus can be opened again."""
        self._closed = False

    async def close(self) -> None:
        """End every running `consume` iterator once it has taken what was published before."""
        self._closed = True
        for queue in list(self._queues):
            queue.put_nowait(_CLOSED)
        self._queues = weakref.WeakSet()

    async def publish(self, changeset: ChangeSet) -> None:
        """Queue the change set for every current consumer (none is fine)."""
        if self._closed:
            raise RuntimeError("cannot publish on a closed bus")
        for queue in list(self._queues):
            queue.put_nowait(changeset)

    def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        """Messages published from this call on, in publish order, until the bus closes.

        The queue is registered here, not at the first iteration, so a consumer set up before anything is
        published misses nothing. `consumer` only names it: every call gets every message.
        """
        queue: asyncio.Queue[object] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(_CLOSED)
        else:
            self._queues.add(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[object]) -> AsyncIterator[Delivery]:
        try:
            while True:
                item = await queue.get()
                if item is _CLOSED:
                    return
                yield Delivery(cast(ChangeSet, item))
        finally:
            self._queues.discard(queue)
