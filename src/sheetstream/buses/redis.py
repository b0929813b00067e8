"""The Redis Streams bus: news of committed change sets carried to every gateway node.

URL: ``redis://[:password@]host[:port][/db][?stream_prefix=sheetstream&maxlen=10000&shards=1&max_deliveries=5
&retry_after_ms=5000&block_ms=1000&stale_group_s=3600]`` (``rediss://`` for TLS; other query options go to
redis-py). Keys, all under ``stream_prefix``:

- ``{prefix}:changes:{shard}``: the change stream(s). A source always goes to the same shard (crc32 of its id), so
  its changes stay in order; ``XADD ... MAXLEN ~ maxlen`` bounds the retention of each.
- ``{prefix}:dead``: dead letters, one entry per poison message with the error (``MAXLEN ~ 1000``).

Every gateway node must see every message, so each consumer name gets its own consumer group (the node id), not
one shared group: a shared group would hand each message to one node only. A group rather than plain ``XREAD``
because Redis then keeps the node's position and the messages it took but did not ack (the pending list): a node
whose connection drops resumes where it was, a message whose handling failed is delivered again after
``retry_after_ms`` (found with ``XPENDING ... IDLE``, taken back with ``XCLAIM``), and one that failed
``max_deliveries`` times, or cannot be decoded at all (decoding again would fail again), goes to the dead letters.

"From now on" (the Bus contract): `consume` starts after the newest entry this bus knows of when it is called,
that is the stream's head when the bus was opened or the last id it has published or read since. A node that
starts again under the same name starts from now too: its old group is dropped with its pending list, because a
new process has no subscribers that old news could serve (its clients resume from the store). If the stream or
the group vanishes (Redis restarted without persistence, or flushed), reading starts over from the new stream's
start; what was lost is found again by the gateways' version-gap checks against the store.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from sheetstream.buses.base import Bus, Delivery
from sheetstream.core.codec import DecodeError, decode_changeset, encode_changeset
from sheetstream.core.model import ChangeSet
from sheetstream.errors import ConfigError

log = structlog.get_logger("sheetstream.bus.redis")

DATA_FIELD = b"cs"
DEAD_LETTER_MAXLEN = 1000


@dataclass(frozen=True, slots=True)
class RedisBusOptions:
    """The bus's query-string options."""

    stream_prefix: str = "sheetstream"
    maxlen: int = 10_000
    """Entries kept per stream (approximately: Redis trims whole nodes)."""
    shards: int = 1
    max_deliveries: int = 5
    retry_after_ms: int = 5_000
    """How long a taken message may stay unacked before it is delivered again."""
    block_ms: int = 1_000
    """Longest wait of one blocking read (pending messages are checked at least this often)."""
    batch: int = 100
    stale_group_s: int = 3600
    """A consumer group whose consumers have all been idle this long belongs to a node that is gone: dropped."""


def parse_redis_url(url: str) -> tuple[str, RedisBusOptions]:
    """The connection URL (our options removed) and the options; ConfigError naming a bad option."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"not a Redis URL: {url!r} (use redis://host:port/db)")
    fields = {f: type(getattr(RedisBusOptions(), f)) for f in RedisBusOptions.__dataclass_fields__}
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in fields:
            theirs.append((key, value))  # redis-py's own options (socket_timeout ...)
            continue
        try:
            ours[key] = fields[key](value)
        except ValueError:
            raise ConfigError(f"Redis bus option {key}={value!r} must be a {fields[key].__name__}") from None
    options = RedisBusOptions(**ours)
    if not options.stream_prefix or any(c in options.stream_prefix for c in " {}"):
        raise ConfigError(f"stream_prefix {options.stream_prefix!r} must be non-empty without spaces or braces")
    for name in ("maxlen", "shards", "max_deliveries", "retry_after_ms", "block_ms", "batch", "stale_group_s"):
        if getattr(options, name) < 1:
            raise ConfigError(f"Redis bus option {name} must be at least 1")
    return urlunsplit(parts._replace(query=urlencode(theirs))), options


def _stream_id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _id_text(stream_id: tuple[int, int]) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


class RedisDelivery(Delivery):
    """One stream entry taken by a node's group; `ack` is XACK, `fail` leaves it for redelivery."""

    __slots__ = ("_bus", "_done", "_group", "_stream", "entry_id")

    def __init__(self, changeset: ChangeSet, bus: RedisBus, stream: str, group: str, entry_id: bytes) -> None:
        super().__init__(changeset)
        self._bus = bus
        self._stream = stream
        self._group = group
        self.entry_id = entry_id
        self._done = False

    async def ack(self) -> None:
        """XACK the entry (once; a second call does nothing)."""
        if self._done:
            return
        self._done = True
        self._bus._errors.pop((self._stream, self.entry_id), None)
        await self._bus.client.xack(self._stream, self._group, self.entry_id)

    async def fail(self, error: str) -> None:
        """Handling failed: leave the entry pending, to be delivered again after `retry_after_ms`."""
        if not self._done:
            self._done = True
            self._bus._errors[(self._stream, self.entry_id)] = error


class RedisBus(Bus):
    """Change sets on Redis Streams, one consumer group per gateway node."""

    def __init__(self, url: str, options: RedisBusOptions | None = None) -> None:
        self.url = url
        self.options = options or RedisBusOptions()
        prefix = self.options.stream_prefix
        self.streams = [f"{prefix}:changes:{n}" for n in range(self.options.shards)]
        self.dead_letter_stream = f"{prefix}:dead"
        self._client: aioredis.Redis | None = None
        self._closed = asyncio.Event()
        self._last_ids: dict[str, tuple[int, int]] = {}
        self._ready_groups: set[str] = set()
        # Errors of entries whose handling failed, for the dead letter if they keep failing.
        self._errors: dict[tuple[str, bytes], str] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisBus:
        """A new bus for ``redis://host:port/db?stream_prefix=...``."""
        connection_url, options = parse_redis_url(url)
        return cls(connection_url, options)

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool; RuntimeError before `open`."""
        if self._client is None:
            raise RuntimeError("the Redis bus is not open")
        return self._client

    async def open(self) -> None:
        """Connect, and note the head of each stream: `consume` delivers what comes after it."""
        self._closed.clear()
        self._client = aioredis.Redis.from_url(self.url, decode_responses=False)
        try:
            for stream in self.streams:
                newest: Any = await self._client.xrevrange(stream, count=1)
                self._last_ids[stream] = _stream_id(newest[0][0]) if newest else (0, 0)
        except RedisError as exc:
            await self._client.aclose()
            self._client = None
            raise ConfigError(f"cannot reach the Redis bus at {self._safe_url()}: {exc}") from exc

    async def close(self) -> None:
        """Disconnect; running `consume` iterators end."""
        self._closed.set()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def healthy(self) -> bool:
        """PING the server (False before `open`; a connection error is raised for `/readyz` to report)."""
        return self._client is not None and bool(await self._client.ping())

    def stream_of(self, source: str) -> str:
        """The stream carrying `source`'s changes."""
        if len(self.streams) == 1:
            return self.streams[0]
        return self.streams[zlib.crc32(source.encode()) % len(self.streams)]

    async def publish(self, changeset: ChangeSet) -> None:
        """XADD the change set to its source's stream, trimming the stream to about `maxlen` entries."""
        if self._closed.is_set() or self._client is None:
            raise RuntimeError("cannot publish on a closed bus")
        stream = self.stream_of(changeset.source)
        entry_id: Any = await self._client.xadd(
            stream, {DATA_FIELD: encode_changeset(changeset)}, maxlen=self.options.maxlen, approximate=True
        )
        self._seen(stream, entry_id)

    def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        """Messages after the newest one this bus knows of now, in stream order, until the bus closes."""
        if not consumer or any(c.isspace() for c in consumer):
            raise ConfigError(f"consumer name {consumer!r} must be non-empty without spaces")
        start = {stream: self._last_ids.get(stream, (0, 0)) for stream in self.streams}
        return self._consume(consumer, start)

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest dead letters, newest first: stream, id, group, deliveries, error, data, at."""
        entries: Any = await self.client.xrevrange(self.dead_letter_stream, count=count)
        return [{k.decode(): v.decode(errors="replace") for k, v in fields.items()} for _, fields in entries]

    # -- consuming --

    async def _consume(self, group: str, start: dict[str, tuple[int, int]]) -> AsyncIterator[Delivery]:
        if self._closed.is_set():
            return
        await self._prepare_group(group, start)
        loop = asyncio.get_running_loop()
        next_retry_check = loop.time() + self.options.retry_after_ms / 1000
        while not self._closed.is_set():
            if loop.time() >= next_retry_check:
                next_retry_check = loop.time() + self.options.retry_after_ms / 2000
                for retried in await self._retry_pending(group):
                    yield retried
            batches = await self._read(group)
            if batches is None:
                return  # closed while waiting
            for stream, entries in batches:
                for entry_id, fields in entries:
                    self._seen(stream, entry_id)
                    delivery = await self._decode(group, stream, entry_id, fields, deliveries=1)
                    if delivery is not None:
                        yield delivery

    async def _prepare_group(self, group: str, start: dict[str, tuple[int, int]]) -> None:
        for stream in self.streams:
            key = f"{stream}\0{group}"
            if key in self._ready_groups:
                continue  # consumed before by this process: resume where the group is, pending entries too
            try:
                await self.client.xgroup_create(stream, group, id=_id_text(start[stream]), mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                # A previous process of this node: its position and pending entries are of no use to us.
                await self.client.xgroup_destroy(stream, group)
                await self.client.xgroup_create(stream, group, id=_id_text(start[stream]), mkstream=True)
            self._ready_groups.add(key)
            await self._drop_stale_groups(stream, keep=group)

    async def _drop_stale_groups(self, stream: str, *, keep: str) -> None:
        """Drop the groups of nodes gone for `stale_group_s` (node ids that are not reused would pile up)."""
        stale_ms = self.options.stale_group_s * 1000
        groups: Any = await self.client.xinfo_groups(stream)
        for info in groups:
            name = info["name"].decode() if isinstance(info["name"], bytes) else str(info["name"])
            if name == keep or not info["consumers"]:
                continue  # a group with no consumer yet may be a node that is just starting
            consumers: Any = await self.client.xinfo_consumers(stream, name)
            if consumers and all(int(c["idle"]) > stale_ms for c in consumers):
                log.info("dropping the consumer group of a node gone for long", stream=stream, group=name)
                await self.client.xgroup_destroy(stream, name)

    async def _read(self, group: str) -> list[Any] | None:
        """One blocking XREADGROUP of new entries, or None if the bus closed meanwhile."""
        request = self.client.xreadgroup(
            group, group, dict.fromkeys(self.streams, ">"), count=self.options.batch, block=self.options.block_ms
        )
        read = asyncio.ensure_future(request)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not read.done():
                read.cancel()
        if self._closed.is_set():
            await asyncio.gather(read, return_exceptions=True)
            return None
        try:
            return list(read.result() or [])
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("stream or consumer group vanished (Redis restarted or flushed?); reading from its start",
                        group=group)
            for stream in self.streams:
                self._ready_groups.discard(f"{stream}\0{group}")
            await self._prepare_group(group, dict.fromkeys(self.streams, (0, 0)))
            return []

    async def _decode(
        self, group: str, stream: str, entry_id: bytes, fields: dict[bytes, bytes], *, deliveries: int
    ) -> RedisDelivery | None:
        data = fields.get(DATA_FIELD, b"")
        try:
            changeset = decode_changeset(data)
        except DecodeError as exc:
            # Decoding is deterministic: another try would fail the same way.
            await self._bury(group, stream, entry_id, data, f"cannot decode: {exc}", deliveries)
            return None
        return RedisDelivery(changeset, self, stream, group, entry_id)

    async def _retry_pending(self, group: str) -> list[RedisDelivery]:
        """Entries of this group left unacked for `retry_after_ms`: taken again, or buried after too many tries."""
        out: list[RedisDelivery] = []
        for stream in self.streams:
            pending: Any = await self.client.xpending_range(
                stream, group, "-", "+", self.options.batch, idle=self.options.retry_after_ms
            )
            retry: list[Any] = []
            for entry in pending:
                entry_id, tries = entry["message_id"], int(entry["times_delivered"])
                if tries < self.options.max_deliveries:
                    retry.append(entry_id)
                    continue
                entries: Any = await self.client.xrange(stream, entry_id, entry_id)
                data = entries[0][1].get(DATA_FIELD, b"") if entries else b""
                error = self._errors.pop((stream, entry_id), "not acknowledged")
                await self._bury(group, stream, entry_id, data, error, tries)
            if retry:
                claimed: Any = await self.client.xclaim(stream, group, group, self.options.retry_after_ms, retry)
                for entry_id, fields in claimed:
                    if fields is None:
                        continue  # trimmed away meanwhile
                    delivery = await self._decode(group, stream, entry_id, fields, deliveries=0)
                    if delivery is not None:
                        out.append(delivery)
        return out

    async def _bury(self, group: str, stream: str, entry_id: bytes, data: bytes, error: str, tries: int) -> None:
        """Move a poison entry to the dead letters with its error, and ack it so it is not delivered again.

        With a `dead_letter_sink` the entry goes there (the store); only if the sink fails does it go to the
        Redis dead-letter stream, so it is set aside once either way.
        """
        log.error("poison message moved to dead letters", stream=stream, entry=entry_id.decode(), error=error)
        if self.dead_letter_sink is not None:
            try:
                name = stream.decode() if isinstance(stream, bytes) else stream  # as XREADGROUP names it
                await self.dead_letter_sink(data, error, max(tries, 1), f"{name}/{entry_id.decode()}")
            except Exception as exc:
                log.warning("dead-letter sink failed; keeping the entry in Redis", error=repr(exc))
            else:
                await self.client.xack(stream, group, entry_id)
                return
        letter = {
            "stream": stream,
            "id": entry_id,
            "group": group,
            "deliveries": str(tries),
            "error": error[:2000],
            "data": data,
            "at": datetime.now(UTC).isoformat(),
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_letter_stream, letter, maxlen=DEAD_LETTER_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.xack(stream, group, entry_id)
            await pipe.execute()

    def _seen(self, stream: str, raw_id: bytes | str) -> None:
        entry_id = _stream_id(raw_id)
        if entry_id > self._last_ids.get(stream, (0, 0)):
            self._last_ids[stream] = entry_id

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

