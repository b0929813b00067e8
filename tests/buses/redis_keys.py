"""Cleanup for tests on the real Redis: every key under a bus's stream prefix is deleted after the test."""

from __future__ import annotations

import redis.asyncio as aioredis

from sheetstream.buses.base import Bus
from sheetstream.buses.redis import RedisBus


async def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key named `prefix:*` on the Redis at `url`; the number deleted."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        return int(await client.delete(*keys)) if keys else 0
    finally:
        await client.aclose()


async def drop_redis_keys(bus: Bus) -> None:
    """Delete the keys a Redis bus wrote (other buses leave nothing behind)."""
    if isinstance(bus, RedisBus):
        await drop_prefix(bus.url, bus.options.stream_prefix)
