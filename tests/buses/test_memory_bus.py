"""The in-process bus beyond the shared contract."""

from __future__ import annotations

import asyncio
import gc

import pytest

from sheetstream.buses.memory import MemoryBus
from tests.contracts.bus_contract import drain, news, take


async def test_a_consumer_after_close_ends_at_once() -> None:
    bus = MemoryBus()
    await bus.close()
    assert await drain(bus.consume("late")) == []


async def test_publishing_on_a_closed_bus_is_an_error() -> None:
    bus = MemoryBus()
    await bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        await bus.publish(news(1))


async def test_a_closed_bus_can_be_opened_again() -> None:
    bus = MemoryBus()
    await bus.close()
    await bus.open()
    consumer = bus.consume("again")
    await bus.publish(news(1))
    assert await take(consumer, 1) == [news(1)]
    await bus.close()


async def test_close_delivers_what_was_published_before() -> None:
    bus = MemoryBus()
    consumer = bus.consume("c")
    await bus.publish(news(1))
    await bus.close()
    assert await drain(consumer) == [news(1)]


async def test_a_consumer_that_stops_stops_receiving() -> None:
    bus = MemoryBus()
    kept, stopped = bus.consume("kept"), bus.consume("stopped")
    await bus.publish(news(1))
    assert await take(stopped, 1) == [news(1)]
    await stopped.aclose()  # type: ignore[attr-defined]
    del stopped
    never_started = bus.consume("never-started")
    del never_started
    gc.collect()
    await bus.publish(news(2))
    assert await take(kept, 2) == [news(1), news(2)]
    assert len(bus._queues) == 1  # only `kept` still collects messages
    await bus.close()


async def test_a_slow_consumer_does_not_hold_up_a_fast_one() -> None:
    bus = MemoryBus()
    slow, fast = bus.consume("slow"), bus.consume("fast")
    for version in range(1, 101):
        await bus.publish(news(version))
    assert [cs.version for cs in await take(fast, 100)] == list(range(1, 101))
    assert [cs.version for cs in await asyncio.wait_for(take(slow, 100), 5)] == list(range(1, 101))
    await bus.close()
