"""The local WebSocket gateway: `/v1/ws` served by this process (embedded and scale-out modes).

- `Connection`: one socket's outgoing side, a bounded queue (`settings.send_queue_size` messages) drained by
  one writer task. A full queue closes the connection with 4008 "slow consumer"; the client reconnects and
  resumes with `since`, so nothing is lost, and one slow reader never holds back the others or our memory.
- `LocalGateway`: the `Gateway` port over the open `Connection`s of this process.
- `Hub`: owns the subscription table and one `core.protocol.Session` per connection, carries out the
  sessions' actions, runs store reads as tasks, and takes live changes from the dispatcher (`publish`). It also
  admits new connections (`admission`: the checks of `gateways/admission.py`), limits each one's message rate, and
  watches connection tokens: at a token's `exp` the client gets `token_expired` and `token_grace_s` to send a
  fresh one (`auth`) before it is closed with 4001. Only connections with a token have a timer.
- `LiveGroup`: per source, the subscribers that are live, unfiltered and at the same version; the hub sends them
  the next change in one loop over their connections, the bulk of the fan-out in steady state. Members whose
  transport offers a `Lane` (the picows listener does, while a socket takes messages directly) are written to
  through it, all at once, with no Python call per connection.
- `websocket_route(hub)`: the Starlette route to mount in the app.
- `Peer` / `Outgoing`: what the hub needs of a connection and what it hands one, so another transport (the picows
  listener of `gateways/picows_listener.py`) serves its own sockets with the same sessions, routing and reads.

Mounting: `app.router.routes.append(websocket_route(hub))`. Serve with uvicorn using `ws="websockets-sansio"`,
`ws_max_size=settings.max_frame_bytes`, `ws_ping_interval=settings.ping_interval_s` and
`ws_ping_timeout=settings.ping_timeout_s`: uvicorn then closes oversized frames with 1009 and drops dead peers.
The endpoint checks the frame size itself too, so the limit holds under any ASGI server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from sheetstream.auth.tokens import Grant
from sheetstream.core.messages import (
    CLOSE_GOING_AWAY,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_RATE_LIMITED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_UNAUTHORIZED,
    MessageId,
)
from sheetstream.core.model import ChangeSet
from sheetstream.core.protocol import (
    Action,
    Authenticate,
    Close,
    Load,
    LoadResult,
    Route,
    Send,
    Session,
    Unroute,
)
from sheetstream.core.ratelimit import TokenBucket
from sheetstream.core.subscriptions import SubscriptionTable
from sheetstream.errors import SourceNotFound
from sheetstream.gateways.admission import Admission, Refusal, read_handshake
from sheetstream.gateways.base import Gateway
from sheetstream.gateways.deflate import deflate
from sheetstream.gateways.grants import TokenTimers
from sheetstream.runtime import metrics
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import Store

log = structlog.get_logger("sheetstream.gateway")

WS_PATH = "/v1/ws"
SEND_BATCH = 256
"""Subscribers whose sessions decide before their sends go out, in `Hub.publish`."""


class Outgoing:
    """One encoded message for any number of connections; each form a transport writes is made once, then shared."""

    __slots__ = ("_deflated", "_framed", "_text", "data")

    HEADROOM = 14
    """The longest WebSocket frame header: room left in front of `framed` for a transport to write it in place."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._text: str | None = None
        self._framed: bytearray | None = None
        self._deflated: bytearray | None = None

    @property
    def text(self) -> str:
        """The message as text (decoded once)."""
        if self._text is None:
            self._text = self.data.decode()
        return self._text

    @property
    def framed(self) -> bytearray:
        """`HEADROOM` free bytes then the message: a transport writes the frame header in front, copying nothing."""
        if self._framed is None:
            self._framed = bytearray(self.HEADROOM) + self.data
        return self._framed

    @property
    def deflated(self) -> bytearray:
        """As `framed`, the message compressed on its own (permessage-deflate, no context takeover): one frame
        payload shared by every connection that negotiated compression."""
        if self._deflated is None:
            self._deflated = bytearray(self.HEADROOM) + deflate(self.data)
        return self._deflated


class Peer(Protocol):
    """The outgoing side of one connection, as the hub drives it, whatever serves the socket."""

    @property
    def id(self) -> str:
        """The connection id."""

    @property
    def close_code(self) -> int | None:
        """The code it is closing with, once closing."""

    def push(self, out: Outgoing) -> bool:
        """Send or queue one message; False when its queue is full (the hub closes it as a slow consumer)."""

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close after the queued messages (or at once, dropping them); later messages are ignored."""

    def direct(self) -> tuple[Lane, Any] | None:
        """While a message given now goes straight to the socket, queued nowhere: the lane and this peer's target
        in it (see `Lane`). None otherwise. A peer that can be direct calls `Hub.direct_changed` when it stops being
        so (it must: the group would go on writing through the lane) and when it starts again."""


class Lane(Protocol):
    """A transport's way to write one message to many of its connections in one call (a live group's fan-out).

    Only for peers whose `direct()` named it, in a call made before anything else ran: the lane neither queues nor
    refuses, as `Peer.push` would for a peer that is not direct.
    """

    def send_all(self, targets: list[Any], out: Outgoing) -> None:
        """Write `out` to every target."""


P = TypeVar("P", bound=Peer)


@dataclass(frozen=True, slots=True)
class _CloseFrame:
    code: int
    reason: str


class Connection:
    """The outgoing side of one WebSocket: a bounded queue and the writer task that drains it."""

    def __init__(self, conn_id: str, websocket: WebSocket, queue_size: int) -> None:
        self.id = conn_id
        self.websocket = websocket
        self.close_code: int | None = None
        self.closing = asyncio.Event()
        self._queue: asyncio.Queue[str | _CloseFrame] = asyncio.Queue(maxsize=queue_size)

    def push(self, out: Outgoing) -> bool:
        """Queue one text frame; False when the queue is full (the caller closes us as a slow consumer)."""
        if self.close_code is not None:
            return True  # closing: frames after the close would never be sent anyway
        try:
            self._queue.put_nowait(out.text)  # the same str object for every connection
        except asyncio.QueueFull:
            return False
        return True

    def direct(self) -> None:
        """Never: every frame goes through the queue and the writer task."""
        return None

    def close(self, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close after the queued frames (or at once, dropping them); later frames are ignored."""
        if self.close_code is not None:
            return
        self.close_code = code
        if drop_queued or self._queue.full():
            while not self._queue.empty():
                self._queue.get_nowait()
        self._queue.put_nowait(_CloseFrame(code, reason))
        self.closing.set()

    async def write_loop(self) -> None:
        """Send queued frames until a close frame is sent or the socket fails."""
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, _CloseFrame):
                    await self.websocket.close(item.code, item.reason)
                    return
                await self.websocket.send_text(item)
        except Exception as exc:  # the peer went away mid-send: nothing left to deliver
            log.debug("websocket write failed", connection=self.id, error=repr(exc))


class LocalGateway(Gateway):
    """The open connections of this process, addressed by id."""

    def __init__(self) -> None:
        self.connections: dict[str, Peer] = {}

    def push(self, conn_id: str, out: Outgoing) -> bool:
        """Queue one frame to a connection now; if its queue is full, close it with 4008 and return False."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.push(out):
            return True
        self.close_slow(conn)
        return False

    def close_slow(self, conn: Peer) -> None:
        """Close a connection whose queue is full with 4008, dropping what it queued."""
        log.info("slow consumer closed", connection=conn.id)
        metrics.SLOW_CONSUMER_CLOSES.inc()
        conn.close(CLOSE_SLOW_CONSUMER, "slow consumer", drop_queued=True)

    def close_now(self, conn_id: str, code: int, reason: str, *, drop_queued: bool = False) -> None:
        """Close a connection after its queued frames (or at once)."""
        conn = self.connections.get(conn_id)
        if conn is not None:
            conn.close(code, reason, drop_queued=drop_queued)

    async def deliver(self, connection_ids: Iterable[str], data: bytes) -> None:
        """Queue `data` to each connection, in each transport's form made once for all of them."""
        out = Outgoing(data)
        for conn_id in connection_ids:
            self.push(conn_id, out)

    async def close(self, connection_id: str, code: int, reason: str) -> None:
        """Close a connection after its queued frames."""
        self.close_now(connection_id, code, reason)


@dataclass(slots=True)
class LiveGroup:
    """The subscribers of one source that are live, follow all its tabs and are at the same version.

    The next change goes to all of them in one loop over their connections, without asking each session (what
    `Session.advance` would say is known: yes). Their sessions' own versions lag meanwhile; the hub brings a
    session up to date (`Session.caught_up`) before anything else touches it, and takes it out of the group.
    """

    epoch: str
    version: int
    members: dict[str, Peer] = field(default_factory=dict)
    fanout: FanOut | None = None
    """How the members take the next change, worked out once and kept while nothing changes (`_fanout`)."""

    def join(self, conn: Peer) -> None:
        """Add a member."""
        self.members[conn.id] = conn
        self.fanout = None

    def leave(self, conn_id: str) -> bool:
        """Remove a member; whether it was one."""
        if self.members.pop(conn_id, None) is None:
            return False
        self.fanout = None
        return True


@dataclass(frozen=True, slots=True)
class FanOut:
    """A live group's members sorted by how they take a change: per lane, all at once, or one by one (`push`)."""

    direct_epoch: int
    """`Hub.direct_epoch` when it was worked out: a peer that stopped or started being direct since makes it stale."""
    lanes: list[tuple[Lane, list[Any]]]
    one_by_one: list[Peer]


class Hub:
    """Sessions, routing and store reads for every WebSocket connection of this process."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        admission: Admission | None = None,
        page_size: int = 1000,
        close_timeout_s: float = 5.0,
    ) -> None:
        settings = settings or Settings()
        self.store = store
        self.gateway = LocalGateway()
        self.table: SubscriptionTable[str] = SubscriptionTable()
        self.sessions: dict[str, Session] = {}
        self.groups: dict[str, LiveGroup] = {}
        """Per source, its subscribers that take the next change in one loop (see `LiveGroup`)."""
        self.direct_epoch = 0
        """Counts the times a peer stopped or started taking messages directly (`direct_changed`)."""
        self.admission = admission or Admission(settings)
        self.max_frame_bytes = settings.max_frame_bytes
        self.send_queue_size = settings.send_queue_size
        self.max_subscriptions = settings.max_subscriptions
        self.message_rate = settings.max_messages_per_s
        self.message_burst = max(1, settings.max_messages_burst)
        self.page_size = page_size
        self.close_timeout_s = close_timeout_s
        self._ids = itertools.count(1)
        self._loads: dict[str, set[asyncio.Task[None]]] = {}
        self._closed = False
        self._endpoints: set[asyncio.Task[Any]] = set()
        self._message_limits: dict[str, TokenBucket] = {}
        """Per connection, made at its first message (only while `message_rate` > 0)."""
        self.tokens = TokenTimers(settings.token_grace_s, self._token_expired, self._token_lapsed)
        metrics.track_hub(self)

    # -- connections --

    def attach(self, websocket: WebSocket, grant: Grant) -> Connection:
        """Register a new socket, admitted with `grant`, with a fresh session."""
        return self.attach_peer(lambda conn_id: Connection(conn_id, websocket, self.send_queue_size), grant)

    def attach_peer(self, make: Callable[[str], P], grant: Grant) -> P:
        """Register the connection `make(conn_id)` of any transport, admitted with `grant`, with a fresh session."""
        conn = make(f"c{next(self._ids)}")
        self.gateway.connections[conn.id] = conn
        self.sessions[conn.id] = Session(
            max_subscriptions=self.max_subscriptions, page_size=self.page_size, allowed_sources=grant.sources
        )
        self.tokens.watch(conn.id, grant)
        return conn

    @property
    def is_closed(self) -> bool:
        """Whether the server is shutting down (new connections are closed with 1001)."""
        return self._closed

    def detach(self, conn_id: str) -> None:
        """Forget a connection: its socket, routes, session and pending store reads."""
        self._forget(conn_id)
        conn = self.gateway.connections.pop(conn_id, None)
        if conn is not None:
            code = conn.close_code
            metrics.CONNECTIONS_CLOSED.labels(code="client" if code is None else str(code)).inc()

    def _forget(self, conn_id: str) -> None:
        self.table.remove_connection(conn_id)
        session = self.sessions.pop(conn_id, None)
        if session is not None:
            self._leave_groups(conn_id, session)
        self._message_limits.pop(conn_id, None)
        self.tokens.forget(conn_id)
        for task in self._loads.pop(conn_id, set()):
            task.cancel()

    def _session(self, conn_id: str) -> Session | None:
        """The connection's session, up to date and out of every live group: ready to be driven."""
        session = self.sessions.get(conn_id)
        if session is not None:
            self._leave_groups(conn_id, session)
        return session

    def _leave_groups(self, conn_id: str, session: Session) -> None:
        groups = self.groups
        if not groups:
            return
        for source in session.sources:
            group = groups.get(source)
            if group is not None and group.leave(conn_id):
                session.caught_up(source, group.version)
                if not group.members:
                    del groups[source]

    def _dissolve(self, source: str, group: LiveGroup) -> None:
        """Bring every member's session up to date and drop the group (a change it cannot take as one came)."""
        del self.groups[source]
        for conn_id in group.members:
            session = self.sessions.get(conn_id)
            if session is not None:
                session.caught_up(source, group.version)

    def receive(self, conn_id: str, text: str | None) -> None:
        """Handle one client frame (`None` for a binary frame)."""
        session = self._session(conn_id)
        if session is None:
            return
        if self.message_rate > 0 and not self._take_message(conn_id):
            metrics.WS_REJECTIONS.labels(reason="rate_limited").inc()
            log.info("websocket rate limited", connection=conn_id, subject=self.tokens.subject(conn_id))
            self._execute(conn_id, session.close(CLOSE_RATE_LIMITED, "rate limited"))
            return
        self._execute(conn_id, session.receive(text) if text is not None else session.receive_binary())

    def _take_message(self, conn_id: str) -> bool:
        now = time.monotonic()
        bucket = self._message_limits.get(conn_id)
        if bucket is None:
            bucket = self._message_limits[conn_id] = TokenBucket(self.message_rate, self.message_burst, now=now)
        return bucket.take(now)

    # -- connection tokens --

    def _token_expired(self, conn_id: str, grant: Grant) -> None:
        session = self._session(conn_id)
        if session is not None:
            log.info("connection token expired", connection=conn_id, subject=grant.subject)
            self._execute(conn_id, session.token_expired(self.tokens.grace_s))

    def _token_lapsed(self, conn_id: str, grant: Grant) -> None:
        session = self._session(conn_id)
        if session is not None:
            metrics.WS_REJECTIONS.labels(reason="token_expired").inc()
            log.info("connection token not renewed: closed", connection=conn_id, subject=grant.subject)
            self._execute(conn_id, session.close(CLOSE_UNAUTHORIZED, "token expired"))

    def _authenticate(self, conn_id: str, action: Authenticate) -> None:
        """Verify the token of an `auth` message (in a task if keys must be fetched) and apply its grant."""
        if self.admission.needs_fetch(action.token):
            self._spawn(conn_id, self._authenticate_later(conn_id, action), f"auth for {conn_id}")
        else:
            self._reauthorized(conn_id, action.id, self.admission.grant_now(action.token))

    async def _authenticate_later(self, conn_id: str, action: Authenticate) -> None:
        self._reauthorized(conn_id, action.id, await self.admission.grant(action.token))

    def _reauthorized(self, conn_id: str, msg_id: MessageId, result: Grant | Refusal) -> None:
        session = self._session(conn_id)
        if session is None:
            return
        if isinstance(result, Refusal):
            metrics.WS_REJECTIONS.labels(reason=result.rejection).inc()
            log.info("auth refused", connection=conn_id, subject=self.tokens.subject(conn_id), reason=result.reason)
            self._execute(conn_id, session.close(result.code, result.reason))
            return
        log.info("connection token renewed", connection=conn_id, subject=result.subject)
        self.tokens.watch(conn_id, result)
        self._execute(conn_id, session.authenticated(msg_id, result.sources, result.expires_at))

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        """Hand a live change, already encoded once as `frame`, to every session following its source."""
        out = Outgoing(frame)  # one object for every subscriber, whatever its transport
        source = changeset.source
        delivered = 0
        group = self.groups.get(source)
        if group is not None and (group.epoch != changeset.epoch or changeset.version != group.version + 1):
            self._dissolve(source, group)  # not the change that follows: each session judges it
            group = None
        if group is not None:
            group.version = changeset.version
            delivered += self._push_group(group, out)
        if group is None or len(group.members) < self.table.subscriber_count(source):
            delivered += self._publish_one_by_one(changeset, frame, out, group)
        metrics.DELIVERIES.inc(delivered)  # once per change, not once per subscriber
        # Let the writers drain their queues between changes, so a burst does not look like slow consumers.
        await asyncio.sleep(0)

    def direct_changed(self) -> None:
        """A peer stopped (or started) taking messages directly: live groups work out their fan-out again."""
        self.direct_epoch += 1

    def _push_group(self, group: LiveGroup, out: Outgoing) -> int:
        """Send `out` to every member of a live group; close the ones whose queue is full. How many took it."""
        fanout = group.fanout
        if fanout is None or fanout.direct_epoch != self.direct_epoch:
            fanout = group.fanout = self._fanout(group)
        for lane, targets in fanout.lanes:
            lane.send_all(targets, out)
        full: list[Peer] = []
        for conn in fanout.one_by_one:
            if not conn.push(out):
                full.append(conn)
        taken = len(group.members) - len(full)
        for conn in full:  # after the loop: forgetting one takes it out of the group
            self.gateway.close_slow(conn)
            self._forget(conn.id)
        return taken

    def _fanout(self, group: LiveGroup) -> FanOut:
        lanes: dict[int, tuple[Lane, list[Any]]] = {}
        one_by_one: list[Peer] = []
        for conn in group.members.values():
            direct = conn.direct()
            if direct is None:
                one_by_one.append(conn)
                continue
            lane, target = direct
            entry = lanes.get(id(lane))
            if entry is None:
                entry = lanes[id(lane)] = (lane, [])
            entry[1].append(target)
        # Everyone in address order, not the subscription table's (string hashes: a new shuffle in every process).
        # The sockets' objects, ours and the kernel's, were allocated one after the other as clients connected:
        # walking them in that order keeps the caches warm. With 5,000 subscribers and the readers stopped, it took
        # the picows listener's CPU per delivery from 13.9 to 10.2 µs (medians of 4 runs; raw picows: 9.6).
        for _lane, targets in lanes.values():
            targets.sort(key=id)
        one_by_one.sort(key=id)
        return FanOut(self.direct_epoch, list(lanes.values()), one_by_one)

    def _publish_one_by_one(
        self, changeset: ChangeSet, frame: bytes, out: Outgoing, group: LiveGroup | None
    ) -> int:
        """Each subscriber outside the live group: its session decides. Those that took it join the group."""
        sessions, connections = self.sessions, self.gateway.connections
        members = group.members if group is not None else {}
        delivered = 0
        # In batches, two passes: the sessions decide (pure Python, cache-warm), then the sends, back to back.
        # Alternating them per delivery made each one pay cache misses after every system call; batches keep the
        # first deliveries from waiting for every session. A connection is in one batch only, so its messages
        # keep their order.
        ready: list[Peer] = []
        joining: list[Peer] = []
        for conn_id in self.table.subscribers(changeset.source):
            if conn_id in members:
                continue
            session = sessions.get(conn_id)
            if session is None:
                continue
            if session.advance(changeset):  # live, all tabs, and this is its next change: the shared frame goes out
                conn = connections.get(conn_id)
                if conn is not None:
                    ready.append(conn)
                    joining.append(conn)
                    if len(ready) == SEND_BATCH:
                        delivered += self._push_all(ready, out)
                        ready = []
            else:
                delivered += self._live_actions(conn_id, session.live(changeset, frame), frame, out)
        delivered += self._push_all(ready, out)
        if joining:
            if group is None:
                group = self.groups[changeset.source] = LiveGroup(changeset.epoch, changeset.version)
            for conn in joining:
                if conn.id in sessions:  # not closed as a slow consumer meanwhile
                    group.join(conn)
        return delivered

    def _push_all(self, peers: list[Peer], out: Outgoing) -> int:
        """Push `out` to each peer; close the ones whose queue is full. How many took it."""
        delivered = 0
        for conn in peers:
            if conn.push(out):
                delivered += 1
            else:
                self.gateway.close_slow(conn)
                self._forget(conn.id)
        return delivered

    def _live_actions(self, conn_id: str, actions: list[Action], frame: bytes, out: Outgoing) -> int:
        """Carry out what a session made of a live change; how many times `frame` was delivered."""
        delivered = 0
        for action in actions:
            if conn_id not in self.sessions:
                break
            if isinstance(action, Send) and action.data is frame:
                delivered += self._push(conn_id, out)
            else:
                self._execute(conn_id, [action])
        return delivered

    async def close(self) -> None:
        """Server shutdown: close every connection with 1001, stop pending reads, wait for the sockets to close."""
        self._closed = True
        for conn_id in list(self.gateway.connections):
            self.gateway.close_now(conn_id, CLOSE_GOING_AWAY, "server shutting down", drop_queued=True)
        for tasks in self._loads.values():
            for task in tasks:
                task.cancel()
        if self._endpoints:
            # Each endpoint sends its close frame within close_timeout_s, or gives up on the peer.
            await asyncio.wait(set(self._endpoints), timeout=self.close_timeout_s + 1.0)

    @property
    def connection_count(self) -> int:
        """Open connections."""
        return len(self.sessions)

    # -- actions --

    def _execute(self, conn_id: str, actions: list[Action]) -> None:
        # Runs synchronously so that frames reach the queue in exactly the order the session produced them.
        for action in actions:
            if conn_id not in self.sessions:
                return  # closed as a slow consumer by an earlier action
            if isinstance(action, Send):
                metrics.sent(action.data)
                self._push(conn_id, Outgoing(action.data))
            elif isinstance(action, Route):
                self.table.add(conn_id, action.source)
            elif isinstance(action, Unroute):
                self.table.remove(conn_id, action.source)
            elif isinstance(action, Load):
                self._start_load(conn_id, action)
            elif isinstance(action, Authenticate):
                self._authenticate(conn_id, action)
            elif isinstance(action, Close):
                self.gateway.close_now(conn_id, action.code, action.reason)

    def _push(self, conn_id: str, out: Outgoing) -> bool:
        if self.gateway.push(conn_id, out):
            return True
        self._forget(conn_id)  # closed as a slow consumer: stop routing to it and free its session now
        return False

    def _start_load(self, conn_id: str, load: Load) -> None:
        self._spawn(conn_id, self._load(conn_id, load), f"load {load.source} for {conn_id}")

    def _spawn(self, conn_id: str, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` for a connection as a task, cancelled if the connection goes away first."""
        if conn_id not in self.sessions:
            work.close()
            return
        # A set only while reads are pending: thousands of idle connections need none.
        tasks = self._loads.setdefault(conn_id, set())
        task = asyncio.create_task(work, name=name)
        tasks.add(task)
        task.add_done_callback(lambda done: self._load_done(conn_id, done))

    def _load_done(self, conn_id: str, task: asyncio.Task[None]) -> None:
        tasks = self._loads.get(conn_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._loads[conn_id]

    async def _load(self, conn_id: str, load: Load) -> None:
        result: LoadResult
        try:
            if load.since is None:
                result = await metrics.timed_store_read("snapshot", self.store.snapshot(load.source))
            else:
                epoch, version = load.since
                changes = self.store.changes_since(load.source, epoch, version, limit=load.limit)
                result = await metrics.timed_store_read("changes_since", changes)
        except SourceNotFound as exc:
            result = exc
        except Exception as exc:
            log.warning("store read failed", source=load.source, connection=conn_id, error=repr(exc))
            result = exc
        session = self._session(conn_id)
        if session is not None:
            self._execute(conn_id, session.loaded(load, result))

    # -- the endpoint --

    async def endpoint(self, websocket: WebSocket) -> None:
        """The ASGI WebSocket endpoint: moves frames between the socket and the connection's session."""
        await websocket.accept()
        # Accept first, then close with a code: it tells the client why (or to go elsewhere, on shutdown); a
        # refused handshake would not.
        if self._closed:
            await websocket.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        client = websocket.client
        handshake = read_handshake(client.host if client else None, websocket.headers, websocket.url.query)
        grant = await self.admission.admit(handshake)
        if isinstance(grant, Refusal):
            await websocket.close(grant.code, grant.reason)
            return
        if self._closed:  # shut down while the token was checked
            await websocket.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        conn = self.attach(websocket, grant)
        structlog.contextvars.bind_contextvars(connection=conn.id)  # this task's logs, and its readers' and writers'
        endpoint_task = asyncio.current_task()
        assert endpoint_task is not None  # ASGI apps always run in a task
        self._endpoints.add(endpoint_task)
        reader = asyncio.create_task(self._read_loop(conn), name=f"ws read {conn.id}")
        writer = asyncio.create_task(conn.write_loop(), name=f"ws write {conn.id}")
        closing = asyncio.create_task(conn.closing.wait(), name=f"ws closing {conn.id}")
        try:
            await asyncio.wait({reader, writer, closing}, return_when=asyncio.FIRST_COMPLETED)
            if conn.close_code is not None and not writer.done():
                # We are closing: give the writer a bounded time to send what is queued and the close frame.
                await asyncio.wait({writer}, timeout=self.close_timeout_s)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                log.error("websocket session failed", connection=conn.id, error=repr(reader.exception()))
        finally:
            self.detach(conn.id)
            self._endpoints.discard(endpoint_task)
            for task in (reader, writer, closing):
                task.cancel()
            await asyncio.gather(reader, writer, closing, return_exceptions=True)

    async def _read_loop(self, conn: Connection) -> None:
        websocket = conn.websocket
        while conn.close_code is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text: str | None = message.get("text")
            size = _frame_size(text) if text is not None else len(message.get("bytes") or b"")
            if size > self.max_frame_bytes:
                conn.close(CLOSE_MESSAGE_TOO_BIG, "message too big", drop_queued=True)
                metrics.PROTOCOL_ERRORS.labels(code="message_too_big").inc()
                return
            self.receive(conn.id, text)


def _frame_size(text: str) -> int:
    """The UTF-8 size of `text` (ASCII text, the usual case, is measured without encoding it)."""
    return len(text) if text.isascii() else len(text.encode())


def websocket_route(hub: Hub, path: str = WS_PATH) -> WebSocketRoute:
    """The Starlette route serving `hub` at `/v1/ws`."""
    return WebSocketRoute(path, hub.endpoint, name="websocket")
