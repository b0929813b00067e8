"""The Redis Streams bus beyond the contract: URL options, bounded retention, retries, dead letters, restarts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sheetstream.buses.base import Delivery
from sheetstream.buses.redis import RedisBus, parse_redis_url
from sheetstream.buses.registry import open_bus
from sheetstream.errors import ConfigError
from tests.buses.redis_keys import drop_prefix
from tests.contracts.bus_contract import news, take
from tests.contracts.conftest import require_service

WAIT_S = 5.0


@pytest.fixture
def redis_url() -> str:
    return require_service("SHEETSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A fresh stream prefix whose keys are deleted after the test."""
    name = f"sheetstream-test-{uuid.uuid4().hex}"
    yield name
    await drop_prefix(redis_url, name)


async def open_redis_bus(redis_url: str, prefix: str, **options: object) -> RedisBus:
    query = "&".join(f"{k}={v}" for k, v in {"stream_prefix": prefix, **options}.items())
    bus = open_bus(f"{redis_url}?{query}")
    assert isinstance(bus, RedisBus)
    await bus.open()
    return bus


def test_url_options_are_parsed_and_the_rest_goes_to_redis() -> None:
    url, options = parse_redis_url("redis://h:6380/2?stream_prefix=p&maxlen=50&shards=4&socket_timeout=3")
    assert url == "redis://h:6380/2?socket_timeout=3"
    assert (options.stream_prefix, options.maxlen, options.shards) == ("p", 50, 4)


@pytest.mark.parametrize(
    ("query", "message"),
    [("maxlen=lots", "maxlen='lots' must be a int"), ("shards=0", "shards must be at least 1"),
     ("stream_prefix=a b", "stream_prefix")],
)
def test_bad_options_are_refused_with_the_option_named(query: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_bus(f"redis://127.0.0.1/0?{query}")


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    bus = open_bus("redis://:secret@127.0.0.1:1/0?socket_connect_timeout=1")
    with pytest.raises(ConfigError, match=r"cannot reach the Redis bus at redis://127\.0\.0\.1:1/0") as caught:
        await bus.open()
    assert "secret" not in str(caught.value)


async def test_retention_is_bounded(redis_url: str, prefix: str) -> None:
    bus = await open_redis_bus(redis_url, prefix, maxlen=10)
    try:
        for version in range(1, 501):
            await bus.publish(news(version))
        length = await bus.client.xlen(bus.streams[0])
        # MAXLEN ~ trims whole radix-tree nodes (100 entries each by default): about maxlen, never everything.
        assert 10 <= length <= 110
    finally:
        await bus.close()


async def test_sources_spread_over_shards_and_each_keeps_its_order(redis_url: str, prefix: str) -> None:
    bus = await open_redis_bus(redis_url, prefix, shards=3)
    try:
        consumer = bus.consume("node")
        sources = [f"s{n}" for n in range(12)]
        for version in (1, 2, 3):
            for source in sources:
                await bus.publish(news(version, source))
        got = await take(consumer, 36)
        for source in sources:
            assert [cs.version for cs in got if cs.source == source] == [1, 2, 3]
        used = [await bus.client.xlen(stream) for stream in bus.streams]
        assert sum(used) == 36 and all(used), used
    finally:
        await bus.close()


async def test_an_undecodable_message_goes_to_the_dead_letters_and_the_rest_flows(
    redis_url: str, prefix: str
) -> None:
    bus = await open_redis_bus(redis_url, prefix)
    try:
        consumer = bus.consume("node")
        await bus.publish(news(1))
        await bus.client.xadd(bus.streams[0], {b"cs": b"{not json"})
        await bus.publish(news(2))
        assert await take(consumer, 2) == [news(1), news(2)]
        letters = await bus.dead_letters()
        assert len(letters) == 1
        assert letters[0]["data"] == "{not json"
        assert letters[0]["error"].startswith("cannot decode: invalid JSON")
        assert letters[0]["group"] == "node"
        assert await bus.client.xpending(bus.streams[0], "node") == {
            "pending": 0, "min": None, "max": None, "consumers": []
        }
    finally:
        await bus.close()


async def test_a_failing_message_is_retried_then_dead_lettered_with_its_error(redis_url: str, prefix: str) -> None:
    bus = await open_redis_bus(redis_url, prefix, retry_after_ms=50, block_ms=20, max_deliveries=3)
    try:
        consumer = bus.consume("node")
        await bus.publish(news(1))
        tries: list[Delivery] = []
        async with asyncio.timeout(WAIT_S):
            while len(tries) < 3:
                delivery = await anext(consumer)
                assert delivery.changeset == news(1)
                tries.append(delivery)
                await delivery.fail(f"boom {len(tries)}")
            await bus.publish(news(2))
            following = await anext(consumer)  # the rest flows meanwhile
            await following.ack()
            waiting = asyncio.ensure_future(anext(consumer))  # keeps the consumer running: it buries news(1)
            while True:
                if await bus.dead_letters():
                    break
                await asyncio.sleep(0.01)
            await bus.publish(news(3))
            last = await waiting
            await last.ack()
        assert (following.changeset, last.changeset) == (news(2), news(3))  # news(1) did not come a fourth time
        [letter] = await bus.dead_letters()
        assert (letter["error"], letter["deliveries"]) == ("boom 3", "3")
    finally:
        await bus.close()


async def test_a_message_taken_but_not_acked_is_delivered_again(redis_url: str, prefix: str) -> None:
    bus = await open_redis_bus(redis_url, prefix, retry_after_ms=50, block_ms=20)
    try:
        first = bus.consume("node")
        await bus.publish(news(1))
        async with asyncio.timeout(WAIT_S):
            taken = await anext(first)
        await first.aclose()  # as a dispatcher whose handler crashed before the ack
        assert taken.changeset == news(1)
        again = bus.consume("node")  # the same process consumes again: it resumes, pending entries too
        await bus.publish(news(2))
        got = await take(again, 2)
        assert sorted(cs.version for cs in got) == [1, 2]
    finally:
        await bus.close()


async def test_a_node_started_again_starts_from_now(redis_url: str, prefix: str) -> None:
    before = await open_redis_bus(redis_url, prefix)
    consumer = before.consume("gateway-1")
    await before.publish(news(1))
    assert await take(consumer, 1) == [news(1)]
    await before.publish(news(2))  # never read by this process
    await before.close()

    after = await open_redis_bus(redis_url, prefix)
    try:
        consumer = after.consume("gateway-1")
        await after.publish(news(3))
        assert await take(consumer, 1) == [news(3)]
    finally:
        await after.close()


async def test_a_vanished_stream_is_read_again_from_its_start(redis_url: str, prefix: str) -> None:
    """As after a Redis restart without persistence: the stream and the node's group are gone."""
    bus = await open_redis_bus(redis_url, prefix, block_ms=20)
    try:
        consumer = bus.consume("node")
        await bus.publish(news(1))
        assert await take(consumer, 1) == [news(1)]
        await bus.client.delete(bus.streams[0])
        reader = asyncio.ensure_future(take(consumer, 2))
        publisher = await open_redis_bus(redis_url, prefix)
        try:
            await publisher.publish(news(2))
            await publisher.publish(news(3))
        finally:
            await publisher.close()
        assert await reader == [news(2), news(3)]
    finally:
        await bus.close()


async def test_groups_of_nodes_gone_for_long_are_dropped(redis_url: str, prefix: str) -> None:
    bus = await open_redis_bus(redis_url, prefix, stale_group_s=1)
    client = aioredis.Redis.from_url(redis_url)
    try:
        stream = bus.streams[0]
        await client.xgroup_create(stream, "gone", id="0", mkstream=True)
        await bus.publish(news(0))
        await client.xreadgroup("gone", "gone", {stream: ">"})  # the group gets its consumer
        await client.xgroup_create(stream, "starting", id="0")  # no consumer yet: kept
        async with asyncio.timeout(WAIT_S):
            while True:
                consumers = await client.xinfo_consumers(stream, "gone")
                if consumers[0]["idle"] > 1000:
                    break
                await asyncio.sleep(0.05)
        consumer = bus.consume("node")
        await bus.publish(news(1))
        assert await take(consumer, 1) == [news(1)]
        names = sorted(g["name"].decode() for g in await client.xinfo_groups(stream))
        assert names == ["node", "starting"]
    finally:
        await client.aclose()
        await bus.close()
