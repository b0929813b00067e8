"""An async Python client: subscribe to a source and get every change exactly once, across reconnects.

    async for event in subscribe("ws://127.0.0.1:8000/v1/ws", "SOURCE_ID"):
        print(event.type, event.version)

The client remembers the (epoch, version) it has seen. After a dropped connection it reconnects with exponential
backoff and jitter and resubscribes with `since`, so the server replays exactly the missed changes
(`recovered=True`) or, when they are no longer kept, sends a fresh snapshot (`recovered=False`). Changes it has
already seen are dropped; a change that skips a version (a gap) makes it resubscribe with `since` on the same
connection. `LocalCopy` keeps an up-to-date Snapshot by applying the events; `apply` applies ops to a Snapshot.

`token` is a connection token, or a function (sync or async) returning one: it is called for every connection, and
when the server says the token expired (`token_expired`) for a fresh one, sent with `auth` on the same connection.

    async for event in subscribe(url, "SOURCE_ID", token=fetch_token_from_my_backend):
        ...
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from sheetstream.core.apply import ApplyError, apply
from sheetstream.core.codec import op_from_json, tabs_from_json
from sheetstream.core.model import Op, Snapshot

__all__ = [
    "ApplyError",
    "ClientError",
    "Event",
    "EventType",
    "LocalCopy",
    "TokenSource",
    "apply",
    "backoff_delay",
    "subscribe",
]

EventType = Literal["snapshot", "change", "subscribed", "disconnected"]
TokenSource = str | Callable[[], str | Awaitable[str]]
"""A connection token, or a function (sync or async) that returns a fresh one."""


class ClientError(Exception):
    """The server refused the subscription (unknown source, forbidden ...): retrying will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to the subscription."""

    type: EventType
    source: str
    epoch: str | None = None
    version: int | None = None
    recovered: bool | None = None
    snapshot: Snapshot | None = None
    ops: tuple[Op, ...] = ()
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


_FATAL_CODES = frozenset({"unknown_source", "forbidden_source", "forbidden", "unauthorized", "invalid_message"})
# Close codes after which reconnecting cannot help (docs/protocol.md, "Close codes").
_FATAL_CLOSES = {4000: "protocol_error", 4001: "unauthorized", 4003: "forbidden"}


def backoff_delay(
    failures: int,
    *,
    initial_s: float = 0.25,
    max_s: float = 10.0,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before reconnect attempt `failures` (1, 2, ...): uniform in [ceiling/2, ceiling]."""
    ceiling = min(max_s, initial_s * float(2 ** min(failures - 1, 30)))
    return ceiling / 2 + jitter() * ceiling / 2


def with_token(url: str, token: str | None) -> str:
    """`url` with `token=` added to its query (browsers cannot send headers, so servers accept both)."""
    if not token:
        return url
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class _Resubscribe(Exception):
    """A gap in versions: resubscribe with `since` on the same connection."""


class _RenewToken(Exception):
    """The server says the connection token expired: send a fresh one with `auth`."""


async def _resolve(token: TokenSource | None) -> str | None:
    """The token itself, or what the token function returns (awaited if it is async)."""
    if token is None or isinstance(token, str):
        return token or None
    value = token()
    if inspect.isawaitable(value):
        value = await value
    return value or None


class _Unavailable(Exception):
    """The server could not read its store and ended the subscription: reconnect later, with backoff."""


@dataclass(slots=True)
class _Stream:
    """What one subscription knows across connections: its position and the ids it used."""

    source: str
    tabs: list[int] | None
    position: tuple[str, int] | None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    draining: str | None = None
    """Id of an `unsubscribe` not yet answered: frames of the replaced subscription until then are dropped."""

    def request(self) -> str:
        """The `subscribe` frame, with `since` once a position is known."""
        message: dict[str, Any] = {"type": "subscribe", "id": str(next(self.ids)), "source": self.source}
        if self.position is not None:
            message["since"] = {"epoch": self.position[0], "version": self.position[1]}
        if self.tabs is not None:
            message["tabs"] = self.tabs
        return orjson.dumps(message).decode()

    def unsubscribe(self) -> str:
        """The `unsubscribe` frame that starts replacing the subscription."""
        self.draining = str(next(self.ids))
        return orjson.dumps({"type": "unsubscribe", "id": self.draining, "source": self.source}).decode()

    def auth(self, token: str) -> str:
        """The `auth` frame that renews the connection token."""
        return orjson.dumps({"type": "auth", "id": f"auth-{next(self.ids)}", "token": token}).decode()

    def handle(self, message: dict[str, Any]) -> Event | None:
        """The event for one server message, if any; raise ClientError or _Resubscribe."""
        kind = message.get("type")
        if kind == "error":
            if message.get("code") == "token_expired":
                raise _RenewToken
            if message.get("code") in _FATAL_CODES:
                raise ClientError(message.get("code", "error"), message.get("message", ""))
            if message.get("code") == "unavailable" and message.get("source") == self.source:
                raise _Unavailable(message.get("message", ""))
            return None
        if message.get("source") != self.source:
            return None
        if self.draining is not None:
            if kind == "unsubscribed" and message.get("id") == self.draining:
                self.draining = None
            return None
        if kind == "subscribed":
            return Event(
                "subscribed",
                self.source,
                message["epoch"],
                message["version"],
                message["recovered"],
                raw=message,
            )
        if kind == "snapshot":
            self.position = (message["epoch"], message["version"])
            return Event(
                "snapshot",
                self.source,
                message["epoch"],
                message["version"],
                snapshot=tabs_from_json(message["tabs"]),
                raw=message,
            )
        if kind == "change":
            epoch, version = message["epoch"], message["version"]
            if self.position is not None and epoch == self.position[0] and version <= self.position[1]:
                return None  # seen already
            if self.position is None or epoch != self.position[0] or version != self.position[1] + 1:
                raise _Resubscribe
            self.position = (epoch, version)
            ops = tuple(op_from_json(op) for op in message["ops"])
            return Event("change", self.source, epoch, version, ops=ops, raw=message)
        return None


async def subscribe(
    url: str,
    source: str,
    *,
    since: tuple[str, int] | None = None,
    tabs: list[int] | None = None,
    token: TokenSource | None = None,
    backoff_initial_s: float = 0.25,
    backoff_max_s: float = 10.0,
    open_timeout_s: float = 10.0,
) -> AsyncIterator[Event]:
    """Yield events of `source` forever, reconnecting with backoff and resuming as needed.

    `token` (or what the token function returns, for each connection) is sent as an `Authorization: Bearer`
    header and as `?token=`; on `token_expired` a token function is asked for a fresh one, sent with `auth`.
    ClientError ends the stream when the server refuses the connection or the subscription for good (4001,
    4003, `unknown_source`, `forbidden_source` ...).
    """
    stream = _Stream(source, tabs, since)
    failures = 0
    while True:
        reason = "connection ended"
        current = await _resolve(token)
        headers = {"Authorization": f"Bearer {current}"} if current else None
        target = with_token(url, current)
        try:
            async with connect(
                target, max_size=None, open_timeout=open_timeout_s, additional_headers=headers
            ) as ws:
                stream.draining = None
                await ws.send(stream.request())
                async for event in _events(ws, stream, token):
                    if event.type == "subscribed":
                        failures = 0
                    yield event
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code in _FATAL_CLOSES:
                raise ClientError(_FATAL_CLOSES[code], exc.rcvd.reason if exc.rcvd else "") from exc
            reason = str(exc) or type(exc).__name__
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        except _Unavailable as exc:
            reason = f"unavailable: {exc}"
        failures += 1
        epoch, version = stream.position or (None, None)
        yield Event("disconnected", source, epoch, version, reason=reason)
        await asyncio.sleep(backoff_delay(failures, initial_s=backoff_initial_s, max_s=backoff_max_s))


async def _events(ws: ClientConnection, stream: _Stream, token: TokenSource | None) -> AsyncIterator[Event]:
    """The events of one connection; a gap resubscribes with `since`, an expired token is renewed, on it."""
    async for frame in ws:
        try:
            event = stream.handle(orjson.loads(frame))
        except _Resubscribe:
            await ws.send(stream.unsubscribe())
            await ws.send(stream.request())
            continue
        except _RenewToken:
            # A fixed token cannot be renewed: the server closes with 4001 after its grace period.
            fresh = await _resolve(token) if callable(token) else None
            if fresh:
                await ws.send(stream.auth(fresh))
            continue
        if event is not None:
            yield event


class LocalCopy:
    """A snapshot of one source kept current by applying subscription events."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()
        self.epoch: str | None = None
        self.version = 0

    def update(self, event: Event) -> None:
        """Apply a snapshot or change event; other events leave the copy as it is."""
        if event.type == "snapshot" and event.snapshot is not None:
            self.snapshot = event.snapshot
        elif event.type == "change":
            self.snapshot = apply(self.snapshot, event.ops)
        else:
            return
        self.epoch, self.version = event.epoch, event.version or 0
