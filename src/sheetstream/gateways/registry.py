"""The connection registry: which gateway node holds which subscriptions, and presence counts per source, in Redis.

URL: the Redis bus's URL (``redis://host:port/db?stream_prefix=NAME``); keys live under the same prefix:

- ``{prefix}:node:{node_id}``: a hash per node, ``connections`` (open WebSockets), ``subscriptions`` (total) and
  ``source:{id}`` (subscriptions to that source), with ``updated_at``. The node rewrites it every heartbeat and
  gives it a TTL of a few heartbeats, so a node that dies (``kill -9``, lost host) vanishes by itself.
- ``{prefix}:nodes``: a sorted set of node ids scored by their last heartbeat (seconds since the epoch), pruned
  of nodes older than the TTL (and their hashes) whenever it is read.

Presence of a source is the sum over live nodes. The figures are as fresh as the last heartbeat, which is what
dashboards, readiness probes and scaling decisions need; delivery never depends on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import structlog

from sheetstream.buses.redis import parse_redis_url

log = structlog.get_logger("sheetstream.registry")

SOURCE_FIELD = "source:"


@dataclass(frozen=True, slots=True)
class NodePresence:
    """What one gateway node holds."""

    node_id: str
    connections: int
    subscriptions: int
    sources: dict[str, int] = field(default_factory=dict)
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Holdings:
    """A node's connections and its subscriptions per source, as the hub reports them."""

    connections: int
    sources: dict[str, int]


class ConnectionRegistry:
    """This node's entry in the registry (heartbeat), and reads over every live node."""

    def __init__(
        self,
        url: str,
        node_id: str,
        holdings: Callable[[], Holdings] | None = None,
        *,
        interval_s: float = 5.0,
        ttl_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        connection_url, options = parse_redis_url(url)
        self.url = connection_url
        self.prefix = options.stream_prefix
        self.node_id = node_id
        self.holdings = holdings
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.clock = clock
        self.nodes_key = f"{self.prefix}:nodes"
        self._client: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None

    def node_key(self, node_id: str) -> str:
        """The hash of one node."""
        return f"{self.prefix}:node:{node_id}"

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool (opened on first use)."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(self.url, decode_responses=True)
        return self._client

    async def start(self) -> None:
        """Write this node's entry now, then keep it fresh in the background."""
        await self.heartbeat()
        self._task = asyncio.create_task(self._beat(), name="registry heartbeat")

    async def stop(self) -> None:
        """Stop the heartbeat and remove this node's entry (a crash leaves it to expire)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):  # Redis may be down: the TTL cleans up instead
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.delete(self.node_key(self.node_id))
                    pipe.zrem(self.nodes_key, self.node_id)
                    await pipe.execute()
            await self._client.aclose()
            self._client = None

    async def heartbeat(self) -> None:
        """Rewrite this node's hash from the hub's holdings and renew its TTL."""
        held = self.holdings() if self.holdings is not None else Holdings(0, {})
        now = self.clock()
        mapping: dict[str, str | int | float] = {
            "connections": held.connections,
            "subscriptions": sum(held.sources.values()),
            "updated_at": now,
        }
        mapping.update({SOURCE_FIELD + source: count for source, count in held.sources.items() if count})
        key = self.node_key(self.node_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, max(1, round(self.ttl_s)))
            pipe.zadd(self.nodes_key, {self.node_id: now})
            await pipe.execute()

    async def nodes(self) -> list[NodePresence]:
        """Every live node's holdings, by node id (nodes past their TTL are pruned)."""
        await self._prune()
        node_ids: list[str] = sorted(await self.client.zrange(self.nodes_key, 0, -1))  # type: ignore[arg-type]
        async with self.client.pipeline(transaction=False) as pipe:
            for node_id in node_ids:
                pipe.hgetall(self.node_key(node_id))
            hashes = await pipe.execute()
        out: list[NodePresence] = []
        for node_id, data in zip(node_ids, hashes, strict=True):
            if not data:
                continue  # its hash expired before the sorted set was pruned
            sources = {k[len(SOURCE_FIELD):]: int(v) for k, v in data.items() if k.startswith(SOURCE_FIELD)}
            out.append(
                NodePresence(
                    node_id=node_id,
                    connections=int(data.get("connections", 0)),
                    subscriptions=int(data.get("subscriptions", 0)),
                    sources=sources,
                    updated_at=float(data.get("updated_at", 0.0)),
                )
            )
        return out

    async def _prune(self) -> None:
        """Drop nodes whose last heartbeat is older than the TTL, with their hashes (which may outlive the score)."""
        stale: list[str] = await self.client.zrangebyscore(  # type: ignore[assignment]
            self.nodes_key, "-inf", self.clock() - self.ttl_s
        )
        if not stale:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.nodes_key, *stale)
            pipe.delete(*(self.node_key(node_id) for node_id in stale))
            await pipe.execute()

    async def presence(self) -> dict[str, int]:
        """Subscriptions per source, summed over live nodes."""
        total: Counter[str] = Counter()
        for node in await self.nodes():
            total.update(node.sources)
        return dict(total)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.heartbeat()
            except Exception as exc:  # Redis down: try again next beat; the entry may expire meanwhile
                log.warning("registry heartbeat failed", node=self.node_id, error=repr(exc))
