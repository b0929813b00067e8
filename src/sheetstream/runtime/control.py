"""Source control across processes: the API role asks monitors in other processes to reload or read a source.

- `RedisSourceControl`: what the API role hands the REST routes when the monitors run elsewhere. `reload` and
  `refresh` PUBLISH ``{"op", "source"}`` on the Redis channel ``{prefix}:control`` (the bus URL's prefix).
- `follow_commands`: the monitor role's side, calling `Monitor.reload` / `Monitor.refresh` for each command.

Pub/sub is at-most-once (a monitor that was reconnecting misses commands) and there may be no Redis at all:
commands only make monitors react sooner. What guarantees that they converge on the store is their lease round
(`SourceClaims`, every ttl/3), which lists the sources again.
"""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis
import structlog

from sheetstream.buses.redis import parse_redis_url
from sheetstream.runtime.services import SourceControl

log = structlog.get_logger("sheetstream.control")

OPS = ("reload", "refresh")


def control_channel(bus_url: str) -> tuple[str, str]:
    """The Redis connection URL and channel name of the control channel beside the Redis bus at `bus_url`."""
    url, options = parse_redis_url(bus_url)
    return url, f"{options.stream_prefix}:control"


class RedisSourceControl:
    """`SourceControl` that tells every monitor process, through Redis pub/sub."""

    def __init__(self, bus_url: str) -> None:
        url, self.channel = control_channel(bus_url)
        self._client = aioredis.Redis.from_url(url)
        self._pending: set[asyncio.Task[None]] = set()

    def refresh(self, source_id: str) -> None:
        """Ask the monitor watching this source to read it now."""
        self._send("refresh", source_id)

    def reload(self, source_id: str) -> None:
        """Ask every monitor to (re)start or stop watching this source."""
        self._send("reload", source_id)

    async def close(self) -> None:
        """Wait briefly for commands in flight, then disconnect."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=2.0)
        await self._client.aclose()

    def _send(self, op: str, source_id: str) -> None:
        task = asyncio.create_task(self._publish(op, source_id), name=f"control {op} {source_id}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, op: str, source_id: str) -> None:
        try:
            await self._client.publish(self.channel, orjson.dumps({"op": op, "source": source_id}))
        except Exception as exc:  # the monitors' store rescan still picks the change up
            log.warning("control command not sent", op=op, source=source_id, error=repr(exc))


async def follow_commands(bus_url: str, monitor: SourceControl, *, retry_s: float = 1.0) -> None:
    """Carry out control commands for `monitor` until cancelled, resubscribing after Redis failures."""
    url, channel = control_channel(bus_url)
    client = aioredis.Redis.from_url(url)
    try:
        while True:
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    async for message in pubsub.listen():
                        _carry_out(monitor, message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("control channel lost; resubscribing", error=repr(exc), retry_in_s=retry_s)
                await asyncio.sleep(retry_s)
    finally:
        await client.aclose()


def _carry_out(monitor: SourceControl, data: object) -> None:
    try:
        command = orjson.loads(data) if isinstance(data, bytes | str) else None
        op, source = command["op"], command["source"]  # type: ignore[index]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        log.warning("bad control command ignored", data=repr(data)[:200])
        return
    if op in OPS and isinstance(source, str):
        getattr(monitor, op)(source)

