"""Baseline: a raw picows server that sends each change to every subscriber with `WSTransport.send`.

    python -m benchmarks.baselines.picows_broadcast [--port 0]

The exchange with the load generator and the driver is in `benchmarks/baselines/common.py`. picows's defaults
(16 KiB read buffer per connection) and its keepalive (`enable_auto_ping`, 20 s): the plain use of the library.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from benchmarks.baselines.common import (
    PING_INTERVAL_S,
    change_message,
    commands,
    emit,
    snapshot_message,
    subscribed_message,
)


class Hub:
    """The subscribed transports and the current version."""

    def __init__(self) -> None:
        self.subscribers: set[WSTransport] = set()
        self.version = 1


def listener_factory(hub: Hub) -> Any:
    """A picows listener class bound to `hub`."""

    class Listener(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
                return
            if frame.msg_type != WSMsgType.TEXT:
                return
            request = orjson.loads(frame.get_payload_as_bytes())
            if request.get("type") == "subscribe":
                transport.send(WSMsgType.TEXT, orjson.dumps(subscribed_message(request, hub.version)))
                transport.send(WSMsgType.TEXT, orjson.dumps(snapshot_message(request, hub.version)))
                hub.subscribers.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            hub.subscribers.discard(transport)

    return Listener


async def main_async(port: int) -> None:
    """Serve until `quit` or EOF on stdin."""
    hub = Hub()
    listener = listener_factory(hub)
    server = await ws_create_server(
        lambda _request: listener(),
        "127.0.0.1",
        port,
        enable_auto_ping=True,
        auto_ping_idle_timeout=PING_INTERVAL_S,
        auto_ping_reply_timeout=PING_INTERVAL_S,
        backlog=4096,
    )
    emit("listening", port=server.sockets[0].getsockname()[1])
    async for command in commands():
        if command.get("cmd") == "change":
            hub.version += 1
            data = orjson.dumps(change_message(command, hub.version))  # encoded once
            for transport in hub.subscribers:
                transport.send(WSMsgType.TEXT, data)
            emit("sent", version=hub.version, connections=len(hub.subscribers))
    server.close()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Raw picows broadcast baseline for the fan-out benchmark.")
    parser.add_argument("--port", type=int, default=0, help="Port to listen on (0: any free port, printed).")
    asyncio.run(main_async(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
