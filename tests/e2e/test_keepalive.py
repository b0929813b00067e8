"""Keepalive: the server pings idle connections and drops a peer that stops answering."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.e2e.harness import ServerProcess

pytestmark = pytest.mark.slow


def _handshake(port: int) -> socket.socket:
    """Open a WebSocket at the HTTP level and then never read again: a peer that has gone silent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b"101" in sock.recv(4096).split(b"\r\n", 1)[0]
    return sock


def _read_until_closed(sock: socket.socket, timeout_s: float) -> bytes | None:
    """Everything the server sends until it closes the connection; None if it is still open after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    received = b""
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return received
        received += chunk
    return None


async def test_silent_peer_is_dropped_and_a_live_one_is_kept(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--ping-interval-s", "0.3", "--ping-timeout-s", "0.5").start()
    try:
        silent = _handshake(server.port)
        async with connect(server.ws) as live:  # the websockets client answers pings by itself
            # Read the silent socket in a thread: the event loop must stay free to answer the live client's pings.
            received = await asyncio.to_thread(_read_until_closed, silent, 10.0)
            if received is None:
                pytest.fail("the server never dropped the silent peer")
            assert received[:1] == b"\x89", "the first thing the server sent was not a ping frame"
            await live.send('{"type": "ping", "id": "still-here"}')
            assert "still-here" in str(await live.recv())
        silent.close()
    finally:
        server.stop()
