"""The fan-out benchmark's baseline: a plain `websockets` server that broadcasts with `websockets.broadcast()`.

    python -m benchmarks.baseline_broadcast [--port 0]

It speaks just enough of sheetstream's protocol for the load generator: a `subscribe` is answered with
`subscribed` and a small `snapshot`, and the connection joins the broadcast set. It prints
`{"event": "listening", "port": P}` once bound, then reads JSON command lines on stdin:

- `{"cmd": "change", "source": ID, "epoch": E, "ops": [...]}`: build the change message the way sheetstream
  shapes it (`type, source, epoch, version, at, ops`, with `at` set now), broadcast it to every subscriber and
  answer `{"event": "sent", "version": V, "connections": N}` once `broadcast()` has returned.
- `{"cmd": "quit"}`: stop.

No store, no bus, no per-connection queue: this is the floor that any Python fan-out over websockets pays.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve

EPOCH = "baseline"


class Hub:
    """The subscribed connections and the current version."""

    def __init__(self) -> None:
        self.subscribers: set[ServerConnection] = set()
        self.version = 1

    async def handler(self, ws: ServerConnection) -> None:
        """Answer subscribes; keep the connection in the set until it closes."""
        try:
            async for raw in ws:
                message = orjson.loads(raw)
                if message.get("type") != "subscribe":
                    continue
                source = message.get("source")
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "subscribed",
                            "id": message.get("id"),
                            "source": source,
                            "epoch": EPOCH,
                            "version": self.version,
                            "recovered": False,
                        }
                    ),
                    text=True,
                )
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "snapshot",
                            "source": source,
                            "epoch": EPOCH,
                            "version": self.version,
                            "tabs": [{"id": 0, "title": "Sheet1", "rows": [["id", "value"], ["1", "0"]]}],
                        }
                    ),
                    text=True,
                )
                self.subscribers.add(ws)
        finally:
            self.subscribers.discard(ws)

    def change(self, command: dict[str, Any]) -> int:
        """Broadcast the next version; return it."""
        self.version += 1
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        frame = orjson.dumps(
            {
                "type": "change",
                "source": command.get("source", ""),
                "epoch": command.get("epoch", EPOCH),
                "version": self.version,
                "at": at,
                "ops": command.get("ops", []),
            }
        )
        # Encoded once, sent as a text frame to each connection, as sheetstream does.
        broadcast(self.subscribers, frame, text=True)
        return self.version


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line for the driver."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


async def main_async(port: int) -> None:
    """Serve until `quit` or EOF on stdin."""
    hub = Hub()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # The same keepalive as sheetstream's default (20 s / 20 s), no compression (the load generator offers none),
    # and a backlog large enough for thousands of clients connecting at once.
    async with serve(
        hub.handler, "127.0.0.1", port, ping_interval=20, ping_timeout=20, compression=None, backlog=4096
    ) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        emit("listening", port=bound)
        while True:
            line = await reader.readline()
            if not line:
                break
            command = orjson.loads(line)
            if command.get("cmd") == "change":
                version = hub.change(command)
                emit("sent", version=version, connections=len(hub.subscribers))
            elif command.get("cmd") == "quit":
                break


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Baseline broadcast server for the fan-out benchmark.")
    parser.add_argument("--port", type=int, default=0, help="Port to listen on (0: any free port, printed).")
    asyncio.run(main_async(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
