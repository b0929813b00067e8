"""The fast WebSocket listener: `/v1/ws` served by picows on a port of its own, beside the ASGI app, in its loop.

Through ASGI every send costs a coroutine, a message dict and a task switch to the connection's writer. Here a
live change is written to each socket straight from the hub's loop: picows writes the frame header in front of
the message encoded once for everyone (`Outgoing.framed`, nothing copied) and `send(2)`s it at once while the
socket's buffer is empty. A live group's members that are in that state are written to through `DIRECT_LANE`,
in one call whose loop over their transports runs in C; a connection that leaves that state (or comes back to
it) tells the hub (`Hub.direct_changed`), which sorts the group's members again before the next change. Only
when the transport holds more than its high-water mark (asyncio calls `pause_writing`) are messages queued per
connection, `send_queue_size` at most; one more closes the connection with 4008 (slow consumer), as on the ASGI
path. Client frames go to the same `Hub`: same sessions, routing, store reads and wire protocol.

With `ws_deflate` (`--ws-deflate`), a client that offers permessage-deflate gets it without context takeover on
either side (`gateways.deflate`): a change is compressed once (`Outgoing.deflated`) and written to every such
connection through `DEFLATE_LANE`, as `DIRECT_LANE` writes the plain frame.

Limits and close codes are those of the ASGI endpoint: a frame or fragmented message larger than
`max_frame_bytes` closes with 1009, text that is not UTF-8 with 1007, a keepalive ping unanswered for
`ping_timeout_s` with 1011, shutdown with 1001. New connections pass the hub's admission checks (connection
rate, origin, token: 4029, 4003, 4001) right after the handshake, from its headers, which are then dropped. One timer pings every connection every `ping_interval_s` (no
task per connection: an idle connection costs its socket, its session and this object).

    listener = PicowsListener(hub, settings)
    port = await listener.start("127.0.0.1", 8001)
    ...
    await listener.stop()

`sheetstream serve --ws-port 8001` runs it beside the REST app (see docs/protocol.md, "Endpoints").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from operator import methodcaller
from ssl import SSLContext
from typing import Any

from multidict import CIMultiDict
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)

from sheetstream.auth.tokens import Grant
from sheetstream.core.messages import CLOSE_GOING_AWAY, CLOSE_MESSAGE_TOO_BIG
from sheetstream.gateways import deflate
from sheetstream.gateways.admission import Handshake, Refusal, read_handshake
from sheetstream.gateways.local import WS_PATH, Hub, Lane, Outgoing
from sheetstream.gateways.picows_server import create_server
from sheetstream.runtime.settings import Settings

log = logging.getLogger("sheetstream.gateway.picows")

CLOSE_INVALID_TEXT = 1007
CLOSE_KEEPALIVE_TIMEOUT = 1011
TEXT = WSMsgType.TEXT
HEADROOM = Outgoing.HEADROOM
READ_BUFFER_BYTES = 1024
"""Initial read buffer per connection: client messages are small, and picows grows it for a larger frame."""
_NO_HEADERS: CIMultiDict[str] = CIMultiDict()
"""Shared by every connection's handshake once done (never written to)."""
# Codes a peer may not put in a close frame (RFC 6455, 7.4.1): ours answers with 1000 instead.
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})


class _PeerErrorsAsInfo(logging.LoggerAdapter):  # type: ignore[type-arg]
    """picows logs a peer's protocol violation (an oversized frame, a bad close code) as an error: it is info here.

    Not being a `logging.Logger` also keeps picows from making a child logger per connection.
    """

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log at info level."""
        self.info(msg, *args, **kwargs)


class _DirectLane:
    """Writes one message to many picows transports in one call: the loop runs in C, with no Python frame per socket.

    `send_reuse_external_bytearray` writes the frame header into the headroom of the shared `Outgoing.framed`: the
    same bytes for every socket, as a server's frames are not masked.
    """

    def send_all(self, targets: list[WSTransport], out: Outgoing) -> None:
        """Write `out` to each transport (all of them direct: see `PicowsConnection.direct`)."""
        send = methodcaller("send_reuse_external_bytearray", TEXT, out.framed, HEADROOM)
        deque(map(send, targets), maxlen=0)


DIRECT_LANE: Lane = _DirectLane()


def _deflate_frame(out: Outgoing) -> tuple[bytearray, bool]:
    """What a connection that negotiated permessage-deflate is sent for `out`: the payload, and whether it is
    compressed (RSV1). Short messages go as they are."""
    if len(out.data) < deflate.MIN_BYTES:
        return out.framed, False
    return out.deflated, True


class _DeflateLane:
    """As `_DirectLane`, for connections that negotiated permessage-deflate: one compressed frame for them all."""

    def send_all(self, targets: list[WSTransport], out: Outgoing) -> None:
        """Write `out`, compressed once (RSV1 set) unless it is short, to each transport."""
        payload, compressed = _deflate_frame(out)
        send = methodcaller("send_reuse_external_bytearray", TEXT, payload, HEADROOM, True, compressed)
        deque(map(send, targets), maxlen=0)


DEFLATE_LANE: Lane = _DeflateLane()


class PicowsConnection(WSListener):
    """One socket: picows calls its `on_ws_*` methods, the hub its `push` and `close` (the `Peer` protocol)."""

    __slots__ = (
        "_close_timer",
        "_direct",
        "_fragment_compressed",
        "_fragment_kind",
        "_fragment_size",
        "_fragments",
        "_listener",
        "_paused",
        "_pending",
        "_pending_close",
        "_send",
        "close_code",
        "deflate",
        "id",
        "next_ping_at",
        "ping_sent_at",
        "transport",
    )

    def __init__(self, listener: PicowsListener, *, deflate: bool = False) -> None:
        self._listener = listener
        self.deflate = deflate
        """Whether it negotiated permessage-deflate: longer messages go compressed (`Outgoing.deflated`)."""
        self.id = ""
        self.close_code: int | None = None
        self.transport: WSTransport | None = None
        self._paused = False
        self._direct = False
        """Open, not paused and nothing queued: `push` writes at once (one test on the hot path)."""
        self._send: Any = None
        """The transport's `send_reuse_external_bytearray`, bound once."""
        self._pending: deque[Outgoing] | None = None
        self._pending_close: str | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._fragments: list[bytes] | None = None
        self._fragment_kind = TEXT
        self._fragment_compressed = False
        self._fragment_size = 0
        self.ping_sent_at: float | None = None
        self.next_ping_at = 0.0

    # -- the Peer side: what the hub calls --

    def push(self, out: Outgoing) -> bool:
        """Write one message now, or queue it while the transport is above its high-water mark."""
        if self._direct:
            self._write(out)
            return True
        if self.close_code is not None:
            return True  # closing: messages after the close would never be sent anyway
        pending = self._pending
        if pending is None:
            pending = self._pending = deque()
        if len(pending) >= self._listener.send_queue_size:
            return False
        pending.append(out)
        return True

    def direct(self) -> tuple[Lane, WSTransport] | None:
        """While `push` would write at once: the lane that writes to many such connections in one call."""
        transport = self.transport
        if not self._direct or transport is None:
            return None
        return (DEFLATE_LANE if self.deflate else DIRECT_LANE), transport

    def _write(self, out: Outgoing) -> None:
        if self.deflate:
            payload, compressed = _deflate_frame(out)
            self._send(TEXT, payload, HEADROOM, True, compressed)  # fin; rsv1 on a compressed message
        else:
            self._send(TEXT, out.framed, HEADROOM)

    def _stop_direct(self) -> None:
        if self._direct:
            self._direct = False
            self._listener.hub.direct_changed()

    @property
    def queued(self) -> int:
        """Messages waiting for the transport to drain."""
        return len(self._pending) if self._pending is not None else 0

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close after the queued messages (or at once, dropping them); give the peer `close_timeout_s` to answer."""
        if self.close_code is not None:
            return
        self.close_code = code
        self._stop_direct()
        if drop_queued:
            self._pending = None
        if self._pending:
            self._pending_close = reason  # sent once the queue drained (resume_writing)
        else:
            self._send_close(code, reason)
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(self._listener.close_timeout_s, self._abort)

    def _send_close(self, code: int, reason: str) -> None:
        assert self.transport is not None
        send_close(self.transport, code, reason)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)  # the peer did not read or answer the close in time

    # -- the picows side --

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark: queue from now on."""
        self._paused = True
        self._stop_direct()

    def resume_writing(self) -> None:
        """The transport drained below its low-water mark: write the queue while it stays so."""
        self._paused = False
        pending = self._pending
        if pending is None:
            self._start_direct()
            return
        while pending and not self._paused:  # a write may push the transport over the mark again
            self._write(pending.popleft())
        if pending:
            return
        self._pending = None
        if self.close_code is None:
            self._start_direct()
        elif self._pending_close is not None:
            self._send_close(self.close_code, self._pending_close)
            self._pending_close = None

    def _start_direct(self) -> None:
        if not self._direct and self.close_code is None and self._send is not None:
            self._direct = True
            self._listener.hub.direct_changed()  # live groups can write to it through the lane again

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Pass the admission checks and register with the hub (or close with their code, or 1001 on shutdown)."""
        self.transport = transport
        handshake = _handshake(transport)
        # picows keeps the handshake's request and response for the connection's life; nothing reads their
        # headers after the admission checks, and they are most of a kilobyte per idle connection.
        for message in (transport.request, transport.response):
            if message is not None:
                message.headers = _NO_HEADERS
        self._listener.connected(self, handshake)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Hand complete messages to the hub; answer pongs and close frames."""
        kind = frame.msg_type
        if kind == WSMsgType.PONG:
            self.ping_sent_at = None
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                code = frame.get_close_code().value
                send_close(transport, code if 1000 <= code < 5000 and code not in _RESERVED_CLOSE_CODES else 1000)
            transport.disconnect()
        elif self.close_code is None:  # a data frame; once closing, the rest of what the client says is ignored
            self._data_frame(kind, frame)

    def _data_frame(self, kind: WSMsgType, frame: WSFrame) -> None:
        fragments = self._fragments
        if frame.rsv1 and (kind == WSMsgType.CONTINUATION or not self.deflate):
            self._listener.protocol_error(self, "RSV1 set on a frame that cannot be compressed")
            return
        if kind == WSMsgType.CONTINUATION:
            if fragments is None:
                self._listener.protocol_error(self, "continuation frame without a first fragment")
                return
        elif fragments is not None:
            self._listener.protocol_error(self, "new message before the last fragmented one ended")
            return
        elif frame.fin:
            self._message(kind, frame.get_payload_as_bytes(), frame.rsv1)
            return
        else:
            fragments = self._fragments = []
            self._fragment_size = 0
            self._fragment_kind = kind
            self._fragment_compressed = frame.rsv1
        self._fragment_size += frame.payload_size
        if self._fragment_size > self._listener.max_frame_bytes:
            self._fragments = None
            self.close(CLOSE_MESSAGE_TOO_BIG, "message too big", drop_queued=True)
            return
        fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            self._fragments = None
            self._message(self._fragment_kind, b"".join(fragments), self._fragment_compressed)

    def _message(self, kind: WSMsgType, payload: bytes, compressed: bool) -> None:
        if compressed:
            try:
                payload = deflate.inflate(payload, max_size=self._listener.max_frame_bytes)
            except deflate.TooBig:
                self.close(CLOSE_MESSAGE_TOO_BIG, "message too big", drop_queued=True)
                return
            except deflate.InflateError:
                self.close(CLOSE_INVALID_TEXT, "invalid compressed message", drop_queued=True)
                return
        hub = self._listener.hub
        if kind != TEXT:
            hub.receive(self.id, None)  # binary: the session answers with an error
            return
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            self.close(CLOSE_INVALID_TEXT, "text frame is not valid UTF-8", drop_queued=True)
            return
        hub.receive(self.id, text)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Forget the connection: its session, routes and pending reads."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._pending = None
        self._listener.disconnected(self)


class PicowsListener:
    """The picows server of one process: accepts `/v1/ws`, keeps its connections alive, closes them on stop."""

    def __init__(self, hub: Hub, settings: Settings | None = None, *, close_timeout_s: float | None = None) -> None:
        settings = settings or Settings()
        self.hub = hub
        self.max_frame_bytes = settings.max_frame_bytes
        self.send_queue_size = settings.send_queue_size
        self.deflate = settings.ws_deflate
        """Whether to accept permessage-deflate offers (`--ws-deflate`)."""
        self.ping_interval_s = settings.ping_interval_s
        self.ping_timeout_s = settings.ping_timeout_s
        self.close_timeout_s = close_timeout_s if close_timeout_s is not None else hub.close_timeout_s
        self.connections: dict[str, PicowsConnection] = {}
        self._admitting: dict[PicowsConnection, asyncio.Task[None]] = {}
        """Connections whose token is being checked (keys fetched): not in the hub yet, their reading paused."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()
        self._logger = _PeerErrorsAsInfo(log, {})

    async def start(self, host: str, port: int, *, ssl: SSLContext | None = None) -> int:
        """Listen on `host:port` (0: any free port), over TLS (wss://) given `ssl`; return the port."""
        self._server = await create_server(
            self._route,
            host,
            port,
            logger=self._logger,
            handshake_timeout_s=10,
            max_frame_size=self.max_frame_bytes,
            read_buffer_size=READ_BUFFER_BYTES,
            backlog=2048,
            ssl=ssl,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._keepalive = asyncio.create_task(self._keep_alive(), name="picows keepalive")
        log.info("fast WebSocket listener on %s:%s%s", host, self.port, WS_PATH)
        return self.port

    async def stop(self) -> None:
        """Stop accepting, close every connection with 1001 and wait (bounded) until they are gone."""
        if self._server is not None:
            self._server.close()
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
            self._keepalive = None
        for conn, task in list(self._admitting.items()):
            task.cancel()
            conn.close(CLOSE_GOING_AWAY, "server shutting down", drop_queued=True)
        self._admitting.clear()
        for conn in list(self.connections.values()):
            conn.close(CLOSE_GOING_AWAY, "server shutting down", drop_queued=True)
        if self.connections:
            # Each connection aborts itself close_timeout_s after its close frame: this wait is bounded.
            await asyncio.wait_for(self._gone.wait(), self.close_timeout_s + 1.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _route(self, request: WSUpgradeRequest) -> PicowsConnection | WSUpgradeResponseWithListener | None:
        """A connection for `/v1/ws` (any query string), compressed if both sides want it; None answers 404."""
        path = request.path.split(b"?", 1)[0]
        if path != WS_PATH.encode():
            return None
        if not self.deflate:
            return PicowsConnection(self)
        accepted = deflate.negotiate(", ".join(request.headers.getall("Sec-WebSocket-Extensions", ())))
        if accepted is None:
            return PicowsConnection(self)
        response = WSUpgradeResponse.create_101_response({"Sec-WebSocket-Extensions": accepted})
        return WSUpgradeResponseWithListener(response, PicowsConnection(self, deflate=True))

    def connected(self, conn: PicowsConnection, handshake: Handshake) -> None:
        """A handshake completed: check the connection and give it a session, or close it with the reason."""
        # Accept first, then close with a code: it tells the client why (or to go elsewhere, on shutdown); a
        # refused handshake would not.
        if self.hub.is_closed or self._server is None:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        result = self.hub.admission.admit_now(handshake)
        if result is not None:
            self._admitted(conn, result)
            return
        # The token's keys must be fetched: read nothing from the client until it is checked.
        assert conn.transport is not None
        conn.transport.underlying_transport.pause_reading()
        task = asyncio.create_task(self._admit(conn, handshake), name="picows admission")
        self._admitting[conn] = task

    async def _admit(self, conn: PicowsConnection, handshake: Handshake) -> None:
        result = await self.hub.admission.admit(handshake)
        if self._admitting.pop(conn, None) is None:
            return  # disconnected, or stopped, meanwhile
        assert conn.transport is not None
        conn.transport.underlying_transport.resume_reading()
        if self.hub.is_closed or self._server is None:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        else:
            self._admitted(conn, result)

    def _admitted(self, conn: PicowsConnection, result: Grant | Refusal) -> None:
        if isinstance(result, Refusal):
            conn.close(result.code, result.reason)
            return
        assert conn.transport is not None
        conn._send = conn.transport.send_reuse_external_bytearray
        conn._direct = not conn._paused
        self.hub.attach_peer(lambda conn_id: _named(conn, conn_id), result)
        self.connections[conn.id] = conn
        conn.next_ping_at = time.monotonic() + self.ping_interval_s

    def disconnected(self, conn: PicowsConnection) -> None:
        """A socket closed: forget it everywhere."""
        admitting = self._admitting.pop(conn, None)
        if admitting is not None:
            admitting.cancel()
        if conn.id and self.connections.pop(conn.id, None) is not None:
            self.hub.detach(conn.id)
        if not self.connections:
            self._gone.set()

    def protocol_error(self, conn: PicowsConnection, reason: str) -> None:
        """Close with 1002 on a framing error of the client."""
        conn.close(WSCloseCode.PROTOCOL_ERROR.value, reason, drop_queued=True)

    async def _keep_alive(self) -> None:
        """Ping every connection every ping_interval_s; close with 1011 the ones silent for ping_timeout_s."""
        tick = max(0.05, min(self.ping_interval_s, self.ping_timeout_s) / 2)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if conn.close_code is not None or conn.transport is None:
                    continue
                if conn.ping_sent_at is not None:
                    if now - conn.ping_sent_at >= self.ping_timeout_s:
                        conn.close(CLOSE_KEEPALIVE_TIMEOUT, "keepalive ping timeout", drop_queued=True)
                elif now >= conn.next_ping_at:
                    conn.ping_sent_at = now
                    conn.next_ping_at = now + self.ping_interval_s
                    conn.transport.send_ping()


def send_close(transport: WSTransport, code: int, reason: str = "") -> None:
    """Send a close frame with any code, 4000-4999 included."""
    # picows's stub types the code as its WSCloseCode enum; the Cython method takes any int.
    transport.send_close(code, reason.encode())  # type: ignore[arg-type]


def _handshake(transport: WSTransport) -> Handshake:
    """The admission checks' view of the opening handshake: peer address, headers, query string."""
    request = transport.request
    peer = transport.underlying_transport.get_extra_info("peername")
    ip = str(peer[0]) if isinstance(peer, tuple) and peer else None
    _, _, query = request.path.partition(b"?")
    return read_handshake(ip, request.headers, query.decode("latin-1"))


def _named(conn: PicowsConnection, conn_id: str) -> PicowsConnection:
    conn.id = conn_id
    return conn
