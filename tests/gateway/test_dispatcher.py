"""The dispatcher: bus in, one encoded frame per change out to the hub, and it never dies on one bad message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sheetstream.buses.base import Bus, Delivery
from sheetstream.buses.memory import MemoryBus
from sheetstream.core.messages import encode_change_frame
from sheetstream.core.model import ChangeSet, SetCell
from sheetstream.runtime.dispatcher import Dispatcher

from .conftest import wait_for

AT = datetime(2026, 1, 1, tzinfo=UTC)


def cs(version: int) -> ChangeSet:
    return ChangeSet("S", "E", version, AT, (SetCell(1, 0, 0, "A1", "", str(version)),))


class RecordingHub:
    """Records what it is given; refuses the versions in `refuse`."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = refuse
        self.published: list[tuple[ChangeSet, bytes]] = []

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        if changeset.version in self.refuse:
            raise ValueError(f"cannot handle version {changeset.version}")
        self.published.append((changeset, frame))


class AckedDelivery(Delivery):
    __slots__ = ("acked",)

    def __init__(self, changeset: ChangeSet, acked: list[int]) -> None:
        super().__init__(changeset)
        self.acked = acked

    async def ack(self) -> None:
        self.acked.append(self.changeset.version)


class FlakyBus(Bus):
    """A bus whose first `consume` fails after one message; later ones deliver the rest, with acks."""

    def __init__(self, changes: list[ChangeSet]) -> None:
        self.changes = changes
        self.consumes = 0
        self.acked: list[int] = []

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def publish(self, changeset: ChangeSet) -> None:
        self.changes.append(changeset)

    def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        self.consumes += 1
        return self._iterate(fail=self.consumes == 1)

    async def _iterate(self, *, fail: bool) -> AsyncIterator[Delivery]:
        while self.changes:
            yield AckedDelivery(self.changes.pop(0), self.acked)
            if fail:
                raise ConnectionError("bus connection lost")


async def test_each_change_is_encoded_once_and_published() -> None:
    bus = MemoryBus()
    await bus.open()
    hub = RecordingHub()
    dispatcher = Dispatcher(bus, hub)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0)  # one turn: the task runs up to its first wait, so its consumer queue exists
    for version in (1, 2):
        await bus.publish(cs(version))
    await wait_for(lambda: len(hub.published) == 2, "two changes")
    assert [(c.version, frame) for c, frame in hub.published] == [
        (v, encode_change_frame(cs(v))) for v in (1, 2)
    ]
    await bus.close()
    await asyncio.wait_for(task, 5)  # run() returns when the bus closes
    assert dispatcher.dispatched == 2


async def test_a_message_the_hub_cannot_handle_is_skipped_and_acked() -> None:
    bus = FlakyBus([cs(1), cs(2), cs(3)])
    bus.consumes = 1  # no consume failure in this test
    hub = RecordingHub(refuse=frozenset({2}))
    dispatcher = Dispatcher(bus, hub)
    await asyncio.wait_for(dispatcher.run(), 5)
    assert [c.version for c, _ in hub.published] == [1, 3]
    assert bus.acked == [1, 2, 3]
    assert (dispatcher.dispatched, dispatcher.failed) == (2, 1)


async def test_a_failing_bus_is_consumed_again() -> None:
    bus = FlakyBus([cs(1), cs(2), cs(3)])
    hub = RecordingHub()
    dispatcher = Dispatcher(bus, hub)
    dispatcher.retry_initial_s = 0.0
    await asyncio.wait_for(dispatcher.run(), 5)
    assert bus.consumes == 2
    assert [c.version for c, _ in hub.published] == [1, 2, 3]
