"""What every Bus must do. Subclass `BusContract` in a test module that has a `bus` fixture."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sheetstream.buses.base import Bus, Delivery
from sheetstream.core.model import ChangeSet, SetCell

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WAIT_S = 5.0


def news(version: int, source: str = "s1") -> ChangeSet:
    """News of change `version` of `source`."""
    return ChangeSet(source, "e1", version, T0, (SetCell(0, 0, 0, "A1", version - 1, version),))


async def take(iterator: AsyncIterator[Delivery], count: int) -> list[ChangeSet]:
    """The next `count` change sets, acking each; fails if they do not come within WAIT_S."""
    out: list[ChangeSet] = []
    async with asyncio.timeout(WAIT_S):
        while len(out) < count:
            delivery = await anext(iterator)
            await delivery.ack()
            out.append(delivery.changeset)
    return out


async def drain(iterator: AsyncIterator[Delivery]) -> list[ChangeSet]:
    """Every change set until the iterator ends; fails if it does not end within WAIT_S."""
    out: list[ChangeSet] = []
    async with asyncio.timeout(WAIT_S):
        async for delivery in iterator:
            out.append(delivery.changeset)
    return out


class BusContract:
    """The Bus port's behaviour, backend by backend."""

    async def test_every_consumer_gets_every_message_in_order(self, bus: Bus) -> None:
        first, second = bus.consume("gateway-1"), bus.consume("gateway-2")
        sent = [news(v, source) for v in range(1, 11) for source in ("s1", "s2")]
        for cs in sent:
            await bus.publish(cs)
        assert await take(first, len(sent)) == sent
        assert await take(second, len(sent)) == sent

    async def test_a_consumer_set_up_before_publishing_misses_nothing(self, bus: Bus) -> None:
        consumer = bus.consume("dispatcher")
        await bus.publish(news(1))
        assert await take(consumer, 1) == [news(1)]

    async def test_a_later_consumer_gets_only_later_messages(self, bus: Bus) -> None:
        early = bus.consume("early")
        await bus.publish(news(1))
        await bus.publish(news(2))
        assert await take(early, 2) == [news(1), news(2)]
        late = bus.consume("late")
        await bus.publish(news(3))
        assert await take(late, 1) == [news(3)]
        assert await take(early, 1) == [news(3)]

    async def test_a_waiting_consumer_gets_a_message_published_later(self, bus: Bus) -> None:
        consumer = bus.consume("waiting")
        waiter = asyncio.ensure_future(take(consumer, 1))
        await bus.publish(news(1))
        assert await waiter == [news(1)]

    async def test_publish_with_no_consumer_is_fine(self, bus: Bus) -> None:
        await bus.publish(news(1))
        consumer = bus.consume("after")
        await bus.publish(news(2))
        assert await take(consumer, 1) == [news(2)]

    async def test_ack_is_awaitable(self, bus: Bus) -> None:
        consumer = bus.consume("acker")
        await bus.publish(news(1))
        async with asyncio.timeout(WAIT_S):
            delivery = await anext(consumer)
        await delivery.ack()
        await delivery.ack()  # twice is harmless
        assert delivery.changeset == news(1)

    async def test_close_ends_running_iterators(self, bus: Bus) -> None:
        consumers = [bus.consume(f"c{n}") for n in range(3)]
        await bus.publish(news(1))
        assert [await take(c, 1) for c in consumers] == [[news(1)]] * 3
        running = [asyncio.ensure_future(drain(c)) for c in consumers]
        await bus.close()
        assert await asyncio.gather(*running) == [[], [], []]
