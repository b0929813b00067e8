"""Baseline: a plain `websockets` server that broadcasts with `websockets.broadcast()`.

    python -m benchmarks.baselines.websockets_broadcast [--port 0]

The exchange with the load generator and the driver is in `benchmarks/baselines/common.py`. No store, no bus,
no per-connection queue: the floor that any Python fan-out over `websockets` pays.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from benchmarks.baselines.common import (
    PING_INTERVAL_S,
    change_message,
    commands,
    emit,
    snapshot_message,
    subscribed_message,
)


class Hub:
    """The subscribed connections and the current version."""

    def __init__(self) -> None:
        self.subscribers: set[ServerConnection] = set()
        self.version = 1

    async def handler(self, ws: ServerConnection) -> None:
        """Answer subscribes; keep the connection in the set until it closes."""
        try:
            async for raw in ws:
                request = orjson.loads(raw)
                if request.get("type") != "subscribe":
                    continue
                await ws.send(orjson.dumps(subscribed_message(request, self.version)), text=True)
                await ws.send(orjson.dumps(snapshot_message(request, self.version)), text=True)
                self.subscribers.add(ws)
        except ConnectionClosed:
            pass  # the load generator hangs up without a close handshake
        finally:
            self.subscribers.discard(ws)


async def main_async(port: int) -> None:
    """Serve until `quit` or EOF on stdin."""
    hub = Hub()
    # No compression (the load generator offers none) and a backlog for thousands of clients connecting at once.
    async with serve(
        hub.handler,
        "127.0.0.1",
        port,
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_INTERVAL_S,
        compression=None,
        backlog=4096,
    ) as server:
        emit("listening", port=next(iter(server.sockets)).getsockname()[1])
        async for command in commands():
            if command.get("cmd") == "change":
                hub.version += 1
                # Encoded once, sent as a text frame to each connection.
                broadcast(hub.subscribers, orjson.dumps(change_message(command, hub.version)), text=True)
                emit("sent", version=hub.version, connections=len(hub.subscribers))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="websockets broadcast() baseline for the fan-out benchmark.")
    parser.add_argument("--port", type=int, default=0, help="Port to listen on (0: any free port, printed).")
    asyncio.run(main_async(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
