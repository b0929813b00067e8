"""The picows server under the fast listener, with one Python call taken out of every send.

Before each send, picows asks the transport `get_write_buffer_size()` (it writes with `send(2)` itself while that
is 0). asyncio's selector transport answers in Python, `len(self._buffer)`: a Python frame per send, about 7 % of
the listener's CPU in a large fan-out. Here each new connection's transport gets, before picows reads it, an
attribute that answers the same in C: `functools.partial(len, transport._buffer)`. That is exact on CPython 3.11,
where the socket transport keeps one `bytearray` buffer for its whole life (it only extends, slices and clears it).
Any other transport (uvloop's, which answers in C already; TLS; a later CPython) is left as it is. The server
runs on asyncio's transport, not picows' optional aiofastnet one: that one answers in C too, but costs about 5 KiB
more per connection (a 256-entry iovec array in each), and picows already writes with `send(2)` itself.

    server = await create_server(listener_factory, host, port, logger=logger, ...)

It takes the options of `picows.ws_create_server` that the listener uses. If this picows build does not take them
(its protocol's constructor changed), `create_server` falls back to `ws_create_server` and logs it once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from asyncio import selector_events
from collections.abc import Callable
from functools import partial
from ssl import SSLContext
from typing import Any

from picows import (
    WSAutoPingStrategy,
    WSListener,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
    ws_create_server,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in picows' stubs

log = logging.getLogger("sheetstream.gateway.picows")

_PYTHON_BUFFER_SIZE = selector_events._SelectorTransport.get_write_buffer_size  # type: ignore[attr-defined]
"""asyncio's own (Python) `get_write_buffer_size`, the one replaced."""


def buffer_size_in_c(transport: asyncio.BaseTransport) -> bool:
    """Give `transport` a `get_write_buffer_size` that runs in C, if it is asyncio's 3.11 socket transport.

    Returns whether it did. The answer is the same number: the length of the transport's write buffer.
    """
    if sys.version_info >= (3, 12):
        return False
    if getattr(type(transport), "get_write_buffer_size", None) is not _PYTHON_BUFFER_SIZE:
        return False
    buffer = getattr(transport, "_buffer", None)
    if type(buffer) is not bytearray or transport.get_extra_info("ssl_object") is not None:
        return False
    transport.get_write_buffer_size = partial(len, buffer)  # type: ignore[attr-defined]
    return True


class _ServerProtocol(WSProtocol):  # type: ignore[misc]  # WSProtocol is untyped
    """picows' protocol, giving the transport its C-level buffer check before picows binds it."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        buffer_size_in_c(transport)
        super().connection_made(transport)


async def create_server(
    listener_factory: Callable[[WSUpgradeRequest], WSListener | WSUpgradeResponseWithListener | None],
    host: str,
    port: int,
    *,
    logger: Any,
    handshake_timeout_s: float,
    max_frame_size: int,
    read_buffer_size: int,
    backlog: int,
    ssl: SSLContext | None,
) -> asyncio.Server:
    """Listen on `host:port` with picows; no auto ping (one listener timer pings all), auto pong on."""
    options: dict[str, Any] = {
        "host_port": None,
        "ws_path": None,
        "is_client_side": False,
        "ws_listener_factory": listener_factory,
        "logger": logger,
        "disconnect_on_exception": True,
        "websocket_handshake_timeout": handshake_timeout_s,
        "enable_auto_ping": False,
        "auto_ping_idle_timeout": 20,
        "auto_ping_reply_timeout": 20,
        "auto_ping_strategy": WSAutoPingStrategy.PING_WHEN_IDLE,
        "enable_auto_pong": True,
        "max_frame_size": max_frame_size,
        "extra_headers": None,
        "read_buffer_init_size": read_buffer_size,
    }
    try:
        _ServerProtocol(**options)
    except TypeError as exc:  # a picows whose protocol takes other arguments: its own server, checks in Python
        log.info("picows protocol not built directly (%s): using ws_create_server", exc)
        return await ws_create_server(
            listener_factory,
            host,
            port,
            websocket_handshake_timeout=handshake_timeout_s,
            logger_name=logger,
            enable_auto_ping=False,
            enable_auto_pong=True,
            max_frame_size=max_frame_size,
            read_buffer_init_size=read_buffer_size,
            use_aiofastnet=False,
            backlog=backlog,
            ssl=ssl,
        )
    loop = asyncio.get_running_loop()
    return await loop.create_server(partial(_ServerProtocol, **options), host, port, backlog=backlog, ssl=ssl)
