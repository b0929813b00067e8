"""What every Python baseline server shares: the messages it sends and the driver's commands on stdin.

A baseline speaks just enough of sheetstream's protocol for the load generator: a `subscribe` is answered with
`subscribed` and a small `snapshot`, and the connection joins the broadcast set. It prints
`{"event": "listening", "port": P}` once bound, then reads JSON command lines on stdin:

- `{"cmd": "change", "source": ID, "epoch": E, "ops": [...]}`: build the change message the way sheetstream
  shapes it (`type, source, epoch, version, at, ops`, with `at` set now), send it to every subscriber and
  answer `{"event": "sent", "version": V, "connections": N}` once the sends returned;
- `{"cmd": "quit"}`: stop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson

EPOCH = "baseline"
PING_INTERVAL_S = 20.0
"""Keepalive of every baseline, as sheetstream's default."""


def subscribed_message(request: dict[str, Any], version: int) -> dict[str, Any]:
    """The answer to a subscribe."""
    return {
        "type": "subscribed",
        "id": request.get("id"),
        "source": request.get("source"),
        "epoch": EPOCH,
        "version": version,
        "recovered": False,
    }


def snapshot_message(request: dict[str, Any], version: int) -> dict[str, Any]:
    """A small snapshot, sent after `subscribed`."""
    return {
        "type": "snapshot",
        "source": request.get("source"),
        "epoch": EPOCH,
        "version": version,
        "tabs": [{"id": 0, "title": "Sheet1", "rows": [["id", "value"], ["1", "0"]]}],
    }


def change_message(command: dict[str, Any], version: int) -> dict[str, Any]:
    """The change message for a `change` command, stamped now."""
    at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "type": "change",
        "source": command.get("source", ""),
        "epoch": command.get("epoch", EPOCH),
        "version": version,
        "at": at,
        "ops": command.get("ops", []),
    }


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line for the driver."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


async def commands() -> AsyncIterator[dict[str, Any]]:
    """The driver's command lines on stdin, until `quit` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        command: dict[str, Any] = orjson.loads(line)
        if command.get("cmd") == "quit":
            return
        yield command
