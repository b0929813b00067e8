"""Baseline: python-socketio on uvicorn, emitting each change to a room that every subscriber joined.

    python -m benchmarks.baselines.socketio_broadcast [--port 0]

Socket.IO wraps our messages in its own packets: the load generator (`--protocol socketio`) sends
`42["subscribe", {...}]` and reads `42["message", {...}]`; the messages inside are the same as with the other
baselines (`benchmarks/baselines/common.py`). Engine.IO pings every 20 s, as the others.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import socketio
import uvicorn

from benchmarks.baselines.common import (
    PING_INTERVAL_S,
    change_message,
    commands,
    emit,
    snapshot_message,
    subscribed_message,
)


async def main_async(port: int) -> None:
    """Serve until `quit` or EOF on stdin."""
    sio = socketio.AsyncServer(
        async_mode="asgi", ping_interval=PING_INTERVAL_S, ping_timeout=PING_INTERVAL_S, transports=["websocket"]
    )
    state = {"version": 1, "subscribers": 0}

    @sio.on("subscribe")  # type: ignore[untyped-decorator]
    async def subscribe(sid: str, request: dict[str, Any]) -> None:
        await sio.emit("message", subscribed_message(request, state["version"]), to=sid)
        await sio.emit("message", snapshot_message(request, state["version"]), to=sid)
        await sio.enter_room(sid, str(request.get("source")))
        state["subscribers"] += 1

    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        socketio.ASGIApp(sio), log_level="warning", lifespan="off", ws_per_message_deflate=False, backlog=4096
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
        await asyncio.sleep(0.01)
    emit("listening", port=sock.getsockname()[1])
    async for command in commands():
        if command.get("cmd") == "change":
            state["version"] += 1
            await sio.emit("message", change_message(command, state["version"]), room=str(command.get("source")))
            emit("sent", version=state["version"], connections=state["subscribers"])
    server.should_exit = True
    await serving


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="python-socketio baseline for the fan-out benchmark.")
    parser.add_argument("--port", type=int, default=0, help="Port to listen on (0: any free port, printed).")
    asyncio.run(main_async(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
