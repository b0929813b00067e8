"""permessage-deflate (RFC 7692) for a fan-out: each message is compressed once and the frame shared by every client.

A compressor that keeps its window from one message to the next (context takeover) makes a different frame for
each connection, about 20 µs per message per connection. Here the server answers every accepted offer with
`server_no_context_takeover`: each message is deflated on its own, once (`Outgoing.deflated`), and the same bytes
go to every subscriber that negotiated it. It also asks `client_no_context_takeover`, so that a client's
compressed message can be inflated without keeping a decompressor (tens of KiB) per connection.

    response = negotiate(request_header)   # the Sec-WebSocket-Extensions answer, or None: no compression
    frame = deflate(b"...")                # the payload of a frame with RSV1 set
    payload = inflate(frame, max_size=65536)

An offer is declined (the connection then runs uncompressed) when it limits the server's window
(`server_max_window_bits` below 15: one shared frame cannot honour each client's window) or has a parameter RFC 7692
does not define.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from websockets.exceptions import InvalidHeader
from websockets.headers import build_extension, parse_extension
from websockets.typing import ExtensionName

EXTENSION = "permessage-deflate"
RESPONSE = build_extension([(ExtensionName(EXTENSION), [("server_no_context_takeover", None), ("client_no_context_takeover", None)])])
"""The one answer given to an accepted offer."""
MIN_BYTES = 128
"""Messages shorter than this go uncompressed (RSV1 clear) even to clients that negotiated compression."""
LEVEL = 6
_TAIL = b"\x00\x00\xff\xff"
"""What a sync flush ends with: left off each frame (RFC 7692, 7.2.1) and put back before inflating."""
_PARAMETERS = {"server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
               "client_max_window_bits"}  # fmt: skip


class InflateError(ValueError):
    """A compressed client message that is not valid deflate data."""


class TooBig(ValueError):
    """A compressed client message that inflates to more than allowed."""


def negotiate(header: str | None) -> str | None:
    """The `Sec-WebSocket-Extensions` response to a request's header: `RESPONSE` if an offer fits, else None."""
    if not header:
        return None
    try:
        offers = parse_extension(header)
    except InvalidHeader:
        return None  # a malformed header: no extension, the connection itself goes on
    for name, params in offers:
        if name == EXTENSION and _acceptable(params):
            return RESPONSE
    return None


def _acceptable(params: Sequence[tuple[str, str | None]]) -> bool:
    names = [name for name, _ in params]
    if len(set(names)) != len(names) or not set(names) <= _PARAMETERS:
        return False
    for name, value in params:
        if name.endswith("_no_context_takeover") and value is not None:
            return False
        if name == "server_max_window_bits" and value != "15":
            return False  # only the full window: one frame is shared by every client
        if name == "client_max_window_bits" and value is not None and value not in {str(n) for n in range(8, 16)}:
            return False
    return True


def deflate(data: bytes) -> bytes:
    """`data` compressed on its own (no context from earlier messages), as the payload of a frame with RSV1."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[: -len(_TAIL)] if out.endswith(_TAIL) else out


def inflate(payload: bytes, *, max_size: int) -> bytes:
    """A compressed message's payload inflated; TooBig past `max_size` bytes (checked as it inflates)."""
    decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(payload + _TAIL, max_size + 1)
    except zlib.error as exc:
        raise InflateError(f"invalid compressed message: {exc}") from None
    if len(data) > max_size:
        raise TooBig(f"message inflates to more than {max_size} bytes")
    return data
