"""The WebSocket protocol (`/v1/ws`) as a sans-I/O session: messages in, actions out.

One `Session` per connection. The gateway feeds it what happens (`receive` a client frame, `loaded` a store
answer, `live` a change from the bus) and carries out the actions it returns, in order:

- `Send(data)`: write these bytes as one text frame;
- `Route(source)` / `Unroute(source)`: add or remove this connection in the subscription table;
- `Load(...)`: read the store (`snapshot` when `since` is None, else `changes_since`) and call `loaded`;
- `Authenticate(id, token)`: verify a fresh connection token (an `auth` message) and call `authenticated` with
  the sources it grants, or `close` with 4001 if it is invalid;
- `Close(code, reason)`: close the connection.

The session knows which sources its connection may follow (`allowed_sources`, from the connection token) and
refuses the others with `forbidden_source`; verifying tokens and timing their expiry are the gateway's job.

Why it is written this way: a subscriber must get every version exactly once even when a change is committed
while it subscribes. So the session asks to be routed BEFORE it asks for the store read, buffers the live
changes that arrive meanwhile, and once the read's answer (version V) is sent, flushes the buffered changes
after V and drops the rest. A live change that does not follow the last one sent (a lost or reordered bus
message) is not sent out of order: the session reads the store from the last version sent instead.

Wire messages are documented in docs/protocol.md and docs/asyncapi.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeAlias

import orjson

from sheetstream.core.codec import format_at
from sheetstream.core.messages import (
    CLOSE_PROTOCOL_ERROR,
    ErrorCode,
    InvalidField,
    MessageId,
    Since,
    encode_authenticated,
    encode_change_frame,
    encode_error,
    encode_pong,
    encode_snapshot_message,
    encode_subscribed,
    encode_unsubscribed,
    optional_since,
    optional_tabs,
    require_id,
    require_source,
    require_token,
    valid_id,
)
from sheetstream.core.model import ChangeSet, VersionedSnapshot
from sheetstream.errors import SourceNotFound

# --- actions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send `data` to this connection as one text frame."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Route:
    """Start routing live changes of `source` to this connection."""

    source: str


@dataclass(frozen=True, slots=True)
class Unroute:
    """Stop routing live changes of `source` to this connection."""

    source: str


@dataclass(frozen=True, slots=True)
class Load:
    """Read the store: `snapshot(source)` if `since` is None, else `changes_since(source, *since, limit=limit)`.

    Hand this same object back to `Session.loaded` with the answer; `token` tells stale answers apart.
    """

    source: str
    since: Since | None
    limit: int
    token: int


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Verify `token` (from the `auth` message `id`), then call `Session.authenticated` or close with 4001."""

    id: MessageId
    token: str = field(repr=False)  # never in a log line


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this WebSocket close code."""

    code: int
    reason: str


Action: TypeAlias = Send | Route | Unroute | Load | Authenticate | Close


class ChangePage(Protocol):
    """The shape of a `changes_since` answer (stores.base.ChangesSince), kept here so core imports no port."""

    @property
    def epoch(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def recovered(self) -> bool: ...
    @property
    def changes(self) -> list[ChangeSet]: ...


LoadResult: TypeAlias = VersionedSnapshot | ChangePage | Exception
"""What a Load produced: a snapshot, a page of changes, or the error the store raised."""


# --- subscription states -------------------------------------------------------------------------------------

State = Literal["loading", "live"]
Event = Literal[
    "got_snapshot",
    "got_changes",
    "got_more_changes",
    "got_no_history",
    "change",
    "next_change",
    "old_change",
    "early_change",
    "gap",
    "new_epoch",
]

# Every state change of a subscription. A subscribe starts in "loading"; unsubscribe or a failed read removes
# it. When a read is answered in "loading", the buffered changes then run through the "live" rows in version
# order, so a buffered change after a gap starts the next read.
TRANSITIONS: dict[tuple[State, Event], State] = {
    ("loading", "got_snapshot"): "live",  # subscribed + snapshot sent
    ("loading", "got_changes"): "live",  # the last page of missed changes sent
    ("loading", "got_more_changes"): "loading",  # a page sent; read the next one
    ("loading", "got_no_history"): "loading",  # since is unknown or pruned: read a snapshot
    ("loading", "change"): "loading",  # buffered until the read is answered
    ("live", "next_change"): "live",  # version == last + 1: sent
    ("live", "old_change"): "live",  # version <= last, or a retired epoch: dropped
    ("live", "early_change"): "live",  # after a gap the read did not close: kept until it closes
    ("live", "gap"): "loading",  # version > last + 1: read changes_since(last)
    ("live", "new_epoch"): "loading",  # history was reset: read a snapshot
}


@dataclass(slots=True)
class _Pending:
    """A live change waiting in a subscription's buffer; `seq` orders arrivals."""

    seq: int
    changeset: ChangeSet
    frame: bytes | None


@dataclass(slots=True)
class Subscription:
    """One source followed by one connection."""

    source: str
    request_id: MessageId
    tabs: frozenset[int] | None
    since: Since | None
    state: State = "loading"
    announced: bool = False
    epoch: str | None = None
    last: int = -1
    load: Load | None = None
    load_seq: int = 0
    """Arrival number of the last live change seen when `load` was issued."""
    buffer: list[_Pending] = field(default_factory=list)
    overflowed: bool = False
    retired: set[str] = field(default_factory=set)
    """Epochs known to be older than `epoch`: their changes are dropped."""

    def move(self, event: Event) -> None:
        """Apply one row of TRANSITIONS (KeyError means a bug: an event that cannot happen in this state)."""
        self.state = TRANSITIONS[(self.state, event)]


# --- the session ---------------------------------------------------------------------------------------------


class Session:
    """The protocol state of one WebSocket connection."""

    def __init__(
        self,
        *,
        max_subscriptions: int = 100,
        max_errors: int = 20,
        page_size: int = 1000,
        max_buffer: int = 10_000,
        allowed_sources: frozenset[str] | None = None,
    ) -> None:
        self.max_subscriptions = max_subscriptions
        self.allowed_sources = allowed_sources
        """Sources this connection may follow; None: every source."""
        self.max_errors = max_errors
        self.page_size = page_size
        self.max_buffer = max_buffer
        self.closed = False
        self._subs: dict[str, Subscription] = {}
        self._errors = 0
        self._tokens = 0
        self._seq = 0

    @property
    def sources(self) -> frozenset[str]:
        """Sources subscribed (loading or live)."""
        return frozenset(self._subs)

    def subscription(self, source: str) -> Subscription | None:
        """The subscription to `source`, if any."""
        return self._subs.get(source)

    # -- client messages --

    def receive(self, text: str) -> list[Action]:
        """Handle one text frame from the client."""
        if self.closed:
            return []
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return self._error("bad_json", f"not valid JSON: {exc}")
        if not isinstance(message, dict):
            return self._error("unknown_type", "a message must be a JSON object with a 'type'")
        kind = message.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            known = ", ".join(sorted(_HANDLERS))
            return self._error("unknown_type", f"unknown message type {kind!r:.60}; expected one of {known}")
        raw_id = message.get("id")
        msg_id = raw_id if valid_id(raw_id) else None
        try:
            return handler(self, message)
        except InvalidField as exc:
            return self._error("invalid_message", f"{kind}: {exc}", msg_id=msg_id, field_name=exc.field_name)

    def receive_binary(self) -> list[Action]:
        """Handle one binary frame: the protocol is JSON text only."""
        if self.closed:
            return []
        return self._error("bad_json", "binary frames are not accepted: send JSON as text frames")

    def _subscribe(self, message: dict[str, Any]) -> list[Action]:
        msg_id = require_id(message)
        source = require_source(message)
        since = optional_since(message)
        tabs = optional_tabs(message)
        if source in self._subs:
            return self._error(
                "already_subscribed", f"already subscribed to {source!r}", msg_id=msg_id, source=source
            )
        if not self.allows(source):
            return self._error(
                "forbidden_source",
                f"this connection's token does not grant source {source!r}",
                msg_id=msg_id,
                source=source,
            )
        if len(self._subs) >= self.max_subscriptions:
            return self._error(
                "too_many_subscriptions",
                f"at most {self.max_subscriptions} subscriptions per connection; unsubscribe first",
                msg_id=msg_id,
                source=source,
            )
        self._errors = 0
        sub = Subscription(source=source, request_id=msg_id, tabs=tabs, since=since)
        self._subs[source] = sub
        # Route first: changes committed from now on are buffered, so none falls between read and routing.
        return [Route(source), self._read(sub, since)]

    def _unsubscribe(self, message: dict[str, Any]) -> list[Action]:
        msg_id = require_id(message)
        source = require_source(message)
        if self._subs.pop(source, None) is None:
            return self._error(
                "not_subscribed", f"not subscribed to {source!r}", msg_id=msg_id, source=source
            )
        self._errors = 0
        return [Unroute(source), Send(encode_unsubscribed(msg_id, source))]

    def _ping(self, message: dict[str, Any]) -> list[Action]:
        msg_id = require_id(message)
        self._errors = 0
        return [Send(encode_pong(msg_id))]

    def _auth(self, message: dict[str, Any]) -> list[Action]:
        msg_id = require_id(message)
        token = require_token(message)
        self._errors = 0
        return [Authenticate(msg_id, token)]

    # -- the connection's grant --

    def allows(self, source: str) -> bool:
        """Whether this connection's token grants `source`."""
        return self.allowed_sources is None or source in self.allowed_sources

    def authenticated(
        self, msg_id: MessageId, allowed_sources: frozenset[str] | None, expires_at: float | None
    ) -> list[Action]:
        """An `auth` token was verified: it grants `allowed_sources` until `expires_at` (Unix time; None: for good).

        Subscriptions to sources it no longer grants end with `forbidden_source`.
        """
        if self.closed:
            return []
        self.allowed_sources = allowed_sources
        expires = None if expires_at is None else format_at(datetime.fromtimestamp(expires_at, UTC))
        actions: list[Action] = [Send(encode_authenticated(msg_id, expires))]
        for source in sorted(self._subs):
            if not self.allows(source):
                del self._subs[source]
                message = f"the connection's new token does not grant source {source!r}; the subscription ended"
                actions += [Unroute(source), Send(encode_error("forbidden_source", message, source=source))]
        return actions

    def token_expired(self, grace_s: float) -> list[Action]:
        """The connection's token expired: tell the client to send a fresh one within `grace_s` seconds."""
        if self.closed:
            return []
        message = f"the connection token expired: send an auth message with a fresh token within {grace_s:g} s"
        return [Send(encode_error("token_expired", message))]

    def close(self, code: int, reason: str) -> list[Action]:
        """Close the connection for a reason found outside the session (a rejected token, a rate limit)."""
        if self.closed:
            return []
        self.closed = True
        return [Close(code, reason)]

    def _error(
        self,
        code: ErrorCode,
        message: str,
        *,
        msg_id: MessageId | None = None,
        source: str | None = None,
        field_name: str | None = None,
    ) -> list[Action]:
        self._errors += 1
        actions: list[Action] = [
            Send(encode_error(code, message, msg_id=msg_id, source=source, field_name=field_name))
        ]
        if self._errors >= self.max_errors:
            self.closed = True
            actions.append(Close(CLOSE_PROTOCOL_ERROR, f"{self._errors} consecutive protocol errors"))
        return actions

    # -- store answers --

    def loaded(self, load: Load, result: LoadResult) -> list[Action]:
        """Handle the store's answer to a `Load` this session asked for."""
        sub = self._subs.get(load.source)
        if self.closed or sub is None or sub.load is not load:
            return []  # unsubscribed meanwhile, or superseded: stale
        sub.load = None
        if isinstance(result, Exception):
            return self._failed(sub, result)
        if isinstance(result, VersionedSnapshot):
            return self._got_snapshot(sub, result)
        return self._got_changes(sub, load, result)

    def _failed(self, sub: Subscription, exc: Exception) -> list[Action]:
        del self._subs[sub.source]
        msg_id = sub.request_id if not sub.announced else None
        if isinstance(exc, SourceNotFound):
            data = encode_error("unknown_source", str(exc), msg_id=msg_id, source=sub.source)
        else:
            data = encode_error(
                "unavailable",
                f"could not read source {sub.source!r} ({type(exc).__name__}); subscribe again with since",
                msg_id=msg_id,
                source=sub.source,
            )
        return [Unroute(sub.source), Send(data)]

    def _got_snapshot(self, sub: Subscription, vs: VersionedSnapshot) -> list[Action]:
        actions: list[Action] = []
        if not sub.announced:
            sub.announced = True
            actions.append(Send(encode_subscribed(sub.request_id, sub.source, vs.epoch, vs.version, False)))
        actions.append(Send(encode_snapshot_message(vs, sub.tabs)))
        if sub.epoch is not None and sub.epoch != vs.epoch:
            sub.retired.add(sub.epoch)
        sub.epoch, sub.last = vs.epoch, vs.version
        sub.move("got_snapshot")
        return actions + self._flush(sub)

    def _got_changes(self, sub: Subscription, load: Load, page: ChangePage) -> list[Action]:
        assert load.since is not None  # only changes_since reads answer with a page
        if not page.recovered:
            sub.move("got_no_history")
            return [self._read(sub, None)]
        actions: list[Action] = []
        if not sub.announced:
            sub.announced = True
            sub.epoch, sub.last = load.since
            actions.append(Send(encode_subscribed(sub.request_id, sub.source, page.epoch, sub.last, True)))
        start = sub.last
        for cs in page.changes:
            if cs.version <= sub.last:
                continue
            if cs.epoch != sub.epoch or cs.version != sub.last + 1:
                # The store's own log has a hole: trust nothing but a snapshot.
                sub.move("got_no_history")
                return [*actions, self._read(sub, None)]
            sub.last = cs.version
            actions.append(Send(self._frame(sub, cs, None)))
        progressed = sub.last > start
        if progressed and (len(page.changes) >= load.limit or page.version > sub.last):
            sub.move("got_more_changes")
            return [*actions, self._read(sub, (page.epoch, sub.last))]
        sub.move("got_changes")
        return actions + self._flush(sub)

    # -- live changes --

    def advance(self, cs: ChangeSet) -> bool:
        """`live`'s common case, building nothing: True if `cs` is the next change of a live subscription to all
        tabs (the caller sends the shared frame); False, with nothing changed, for anything else (call `live`)."""
        sub = self._subs.get(cs.source)
        if (
            sub is None
            or self.closed
            or sub.state != "live"
            or cs.version != sub.last + 1
            or cs.epoch != sub.epoch
            or sub.buffer
            or sub.tabs is not None
        ):
            return False
        # Once per subscriber per change: the ("live", "next_change") row, inlined.
        self._seq += 1
        sub.last = cs.version
        return True

    def caught_up(self, source: str, version: int) -> None:
        """A live subscription was sent every change up to `version` by the caller, without `advance` (the hub's
        live groups): record it, so that what follows is judged from there."""
        sub = self._subs.get(source)
        if sub is not None:
            sub.last = version

    def live(self, cs: ChangeSet, frame: bytes | None = None) -> list[Action]:
        """Handle a change from the bus; `frame` is its shared `encode_change_frame` bytes, if already made."""
        if frame is not None and self.advance(cs):
            return [Send(frame)]
        sub = self._subs.get(cs.source)
        if self.closed or sub is None:
            return []
        self._seq += 1
        if sub.state == "loading":
            sub.move("change")
            self._buffer(sub, _Pending(self._seq, cs, frame))
            return []
        actions = self._offer(sub, _Pending(self._seq, cs, frame))
        if sub.buffer and sub.state == "live":
            actions += self._flush(sub)
        return actions

    def _buffer(self, sub: Subscription, pending: _Pending) -> None:
        if len(sub.buffer) >= self.max_buffer:
            # Memory stays bounded; the store still has them all: read from `last` once the read is answered.
            sub.buffer.clear()
            sub.overflowed = True
        sub.buffer.append(pending)

    def _flush(self, sub: Subscription) -> list[Action]:
        """Run buffered changes through the live path in version order, after a read was answered."""
        if sub.overflowed:
            sub.overflowed = False
            sub.move("gap")
            return [self._read(sub, (sub.epoch or "", sub.last))]
        waiting = sorted(sub.buffer, key=lambda p: (p.changeset.version, p.seq))
        sub.buffer = []
        actions: list[Action] = []
        for pending in waiting:
            if sub.state == "loading":
                sub.buffer.append(pending)  # a read was started: the rest waits for it
            else:
                actions += self._offer(sub, pending)
        return actions

    def _offer(self, sub: Subscription, pending: _Pending) -> list[Action]:
        """One change in the live state: send it, drop it, keep it, or start a read to close a gap."""
        cs = pending.changeset
        # Only a change that arrived after the current read was issued may start a read: the read came after
        # the older ones were committed, so it already answered for them. This also stops read loops.
        fresh = pending.seq > sub.load_seq
        if cs.epoch in sub.retired:
            sub.move("old_change")
            return []
        if cs.epoch != sub.epoch:
            if not fresh:
                sub.retired.add(cs.epoch)  # the store's epoch, read after it, is another one: it is older
                sub.move("old_change")
                return []
            sub.buffer.append(pending)
            sub.move("new_epoch")
            return [self._read(sub, None)]
        if cs.version <= sub.last:
            sub.move("old_change")
            return []
        if cs.version == sub.last + 1:
            sub.last = cs.version
            sub.move("next_change")
            return [Send(self._frame(sub, cs, pending.frame))]
        sub.buffer.append(pending)
        if not fresh:
            sub.move("early_change")
            return []
        sub.move("gap")
        return [self._read(sub, (cs.epoch, sub.last))]

    # -- helpers --

    def _read(self, sub: Subscription, since: Since | None) -> Load:
        self._tokens += 1
        sub.load = Load(sub.source, since, self.page_size, self._tokens)
        sub.load_seq = self._seq
        return sub.load

    def _frame(self, sub: Subscription, cs: ChangeSet, shared: bytes | None) -> bytes:
        """The shared frame when every op is in the subscribed tabs, else a frame of just those ops."""
        tabs = sub.tabs
        if tabs is None or all(op.tab in tabs for op in cs.ops):
            return shared if shared is not None else encode_change_frame(cs)
        return encode_change_frame(replace(cs, ops=tuple(op for op in cs.ops if op.tab in tabs)))


_HANDLERS = {
    "subscribe": Session._subscribe,
    "unsubscribe": Session._unsubscribe,
    "ping": Session._ping,
    "auth": Session._auth,
}

