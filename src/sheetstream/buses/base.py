"""The Bus port: news of committed change sets, carried to every gateway's dispatcher.

The bus only carries news; the store is the source of truth. A consumer that misses a message notices the
version gap and reads the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable

from sheetstream.core.model import ChangeSet

DeadLetterSink = Callable[[bytes, str, int, str], Awaitable[None]]
"""Takes a message a bus gives up on: `(data, error, tries, entry)`, where `entry` names it on the bus."""


class Delivery:
    """One message taken from the bus; `ack` once it has been handled."""

    __slots__ = ("changeset",)

    def __init__(self, changeset: ChangeSet) -> None:
        self.changeset = changeset

    async def ack(self) -> None:
        """Mark the message handled (a no-op on buses without redelivery)."""

    async def fail(self, error: str) -> None:
        """Handling failed: deliver it again later, a dead letter after too many tries (buses without redelivery ack)."""
        await self.ack()


class Bus(ABC):
    """Publish/subscribe of change sets. Every consumer sees every message published after it started."""

    dead_letter_sink: DeadLetterSink | None = None
    """Where a bus with redelivery puts a message it gives up on (undecodable, or failed too often): set by the
    wiring to the store's dead letters. None: the bus keeps its own (Redis: the `{prefix}:dead` stream)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; running `consume` iterators end."""

    @abstractmethod
    async def publish(self, changeset: ChangeSet) -> None:
        """Send news of a committed change set to every consumer."""

    @abstractmethod
    def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        """Messages published from now on, in publish order per source, until the bus closes."""

    async def healthy(self) -> bool:
        """Whether the bus answers a cheap check now (for `/readyz`); in-process buses always do."""
        return True
