"""A WebSocket client at the frame level, for what a well-behaved client library would never send or show."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass


def upgrade_request(port: int, *, extensions: str | None = None) -> bytes:
    """The HTTP upgrade request for /v1/ws, offering `extensions` (Sec-WebSocket-Extensions) if given."""
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    return (
        f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    ).encode()


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame (clients must mask), with a payload under 64 KiB."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + len(payload).to_bytes(2)
    return bytes([first]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes


async def read_frame(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> Frame:
    """The next (unmasked, server) frame."""
    head = await asyncio.wait_for(reader.readexactly(2), timeout_s)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2))
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8))
    payload = await asyncio.wait_for(reader.readexactly(length), timeout_s)
    return Frame(bool(head[0] & 0x80), bool(head[0] & 0x40), head[0] & 0x0F, payload)


async def open_raw(port: int, *, extensions: str | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect and upgrade; the reader, the writer and the 101 response's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port, extensions=extensions))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 101 " in head, head
    return reader, writer, head
