"""An async Python client: subscribe to a source and get every change exactly once, across reconnects.

    async for event in subscribe("ws://127.0.0.1:8000/v1/ws", "SOURCE_ID"):
        print(event.type, event.version)

The client remembers the (epoch, version) it has seen. After a dropped connection it reconnects with backoff and
jitter and resubscribes with `since`, so the server replays exactly the missed changes (`recovered=True`) or, when
they are no longer kept, sends a fresh snapshot (`recovered=False`). Changes it has already seen are dropped.
`LocalCopy` keeps an up-to-date Snapshot by applying the events.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import websockets
from websockets.asyncio.client import connect

from sheetstream.core.apply import apply
from sheetstream.core.codec import op_from_json, tabs_from_json
from sheetstream.core.model import Op, Snapshot

EventType = Literal["snapshot", "change", "subscribed", "disconnected"]


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


_FATAL_CODES = frozenset({"unknown_source", "forbidden", "unauthorized", "invalid_message"})


async def subscribe(
    url: str,
    source: str,
    *,
    since: tuple[str, int] | None = None,
    tabs: list[int] | None = None,
    token: str | None = None,
    backoff_max_s: float = 10.0,
    open_timeout_s: float = 10.0,
) -> AsyncIterator[Event]:
    """Yield events of `source` forever, reconnecting and resuming as needed."""
    position = since
    ids = itertools.count(1)
    failures = 0
    headers = {"Authorization": f"Bearer {token}"} if token else None
    while True:
        try:
            async with connect(url, max_size=None, open_timeout=open_timeout_s, additional_headers=headers) as ws:
                request: dict[str, Any] = {"type": "subscribe", "id": str(next(ids)), "source": source}
                if position is not None:
                    request["since"] = {"epoch": position[0], "version": position[1]}
                if tabs is not None:
                    request["tabs"] = tabs
                await ws.send(orjson.dumps(request).decode())
                async for frame in ws:
                    message = orjson.loads(frame)
                    kind = message.get("type")
                    if kind == "error":
                        if message.get("code") in _FATAL_CODES:
                            raise ClientError(message.get("code", "error"), message.get("message", ""))
                        continue
                    if message.get("source") != source:
                        continue
                    if kind == "subscribed":
                        failures = 0
                        yield Event("subscribed", source, message["epoch"], message["version"], message["recovered"],
                                    raw=message)
                    elif kind == "snapshot":
                        position = (message["epoch"], message["version"])
                        yield Event("snapshot", source, message["epoch"], message["version"],
                                    snapshot=tabs_from_json(message["tabs"]), raw=message)
                    elif kind == "change":
                        epoch, version = message["epoch"], message["version"]
                        if position is not None and epoch == position[0] and version <= position[1]:
                            continue  # seen already
                        if position is not None and epoch == position[0] and version != position[1] + 1:
                            break  # a gap: reconnect and resume from what we have
                        position = (epoch, version)
                        ops = tuple(op_from_json(op) for op in message["ops"])
                        yield Event("change", source, epoch, version, ops=ops, raw=message)
        except ClientError:
            raise
        except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        else:
            reason = "connection ended"
        failures += 1
        yield Event("disconnected", source, *(position or (None, None)), reason=reason)
        ceiling = min(backoff_max_s, 0.25 * 2 ** min(failures, 10))
        await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)


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
