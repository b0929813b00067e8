"""The soak test's clients: lean WebSocket subscribers (picows) that drop at random and resume with `since`.

Each `SoakClient` follows the rules of docs/protocol.md as `sheetstream.client` does: it remembers the
(epoch, version) it holds, reconnects with `since` after every disconnect (exponential backoff with jitter when a
connect fails), ignores a change it already holds and, on a change that skips a version, resubscribes with
`since` on the same connection (`unsubscribe`, frames dropped until `unsubscribed`, then `subscribe`). Unlike
that client it also records every snapshot and change the server sent (the timeline that `soak_check` judges),
so a duplicate or a gap is counted instead of silently repaired, and it drops its own connection at random:
abruptly (the TCP socket closed with no close frame) or cleanly (a close frame, then the server's answer).

Every client applies the ops it receives to its own copy of the source. The copies are built through one shared
memo (`Replicas`): a copy is the result of applying a change frame to the copy it had, and since `apply` is a pure
function of both, clients that received the same frames share the result instead of computing it a thousand
times. A client whose frames differ gets a copy of its own, so every client's final copy can be compared with
the server's snapshot at no extra cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

from benchmarks.soak_check import Event
from sheetstream.client import backoff_delay
from sheetstream.core.apply import apply
from sheetstream.core.codec import op_from_json, tabs_from_json
from sheetstream.core.model import Snapshot

FATAL_ERRORS = frozenset({"unknown_source", "forbidden", "unauthorized", "invalid_message"})
FATAL_CLOSES = frozenset({4000, 4001, 4003})
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 2.0
CLOSE_WAIT_S = 2.0
"""How long a clean close waits for the server's close frame before dropping the socket."""


class Replicas:
    """Every client's copy of the source, as tokens into one table of snapshots built once each."""

    def __init__(self) -> None:
        self.states: list[Snapshot] = []
        self._snapshots: dict[bytes, int] = {}
        self._steps: dict[tuple[int, bytes], int] = {}
        self.applied = 0
        """Calls of `apply` actually made (the rest were found in the memo)."""

    def from_snapshot(self, frame: bytes, message: dict[str, Any]) -> int:
        """The token of the copy a snapshot frame holds."""
        token = self._snapshots.get(frame)
        if token is None:
            token = self._snapshots[frame] = self._add(tabs_from_json(message["tabs"]))
        return token

    def step(self, token: int, frame: bytes, message: dict[str, Any]) -> int:
        """The token of copy `token` after a change frame's ops; ApplyError if they do not fit it."""
        key = (token, frame)
        after = self._steps.get(key)
        if after is None:
            self.applied += 1
            ops = [op_from_json(op) for op in message["ops"]]
            after = self._steps[key] = self._add(apply(self.states[token], ops))
        return after

    def _add(self, snapshot: Snapshot) -> int:
        self.states.append(snapshot)
        return len(self.states) - 1


@dataclass
class Fleet:
    """What the clients share: where to connect, how to misbehave, and what they saw together."""

    source: str
    asgi_url: str
    fast_url: str | None
    fast_share: float
    mean_connected_s: float
    max_offline_s: float
    clean_share: float
    calm: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when drops stop: clients stay connected and offline ones come back at once."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to close every connection for good."""
    head: int = 0
    """The highest version any client has received: the target of a client that starts catching up."""
    replicas: Replicas = field(default_factory=Replicas)
    catchups: list[float] = field(default_factory=list)
    """Seconds from a resuming subscribe to holding the head as it was when the subscribe was sent."""
    lags: list[float] = field(default_factory=list)
    """Seconds from each change's commit (`at`) to its arrival at each client, offline time included."""
    _at: dict[int, float] = field(default_factory=dict)

    def committed_at(self, version: int, at: str) -> float:
        """A change's commit time as a Unix timestamp (parsed once per version)."""
        stamp = self._at.get(version)
        if stamp is None:
            stamp = self._at[version] = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        return stamp


class _Listener(WSListener):
    """Hands one connection's text messages to its client."""

    def __init__(self, client: SoakClient) -> None:
        super().__init__()
        self.client = client
        self.parts: list[bytes] = []

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or (kind == WSMsgType.CONTINUATION and self.parts):
            self.parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                payload = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
                self.parts = []
                self.client.on_message(transport, payload)
        elif kind == WSMsgType.CLOSE:
            self.client.on_close(frame.get_close_code(), frame.get_close_message())
            if not transport.is_close_frame_sent:
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()


class SoakClient:
    """One subscriber of the source that drops and resumes until the fleet is finished."""

    def __init__(self, index: int, fleet: Fleet, rng: random.Random) -> None:
        self.index = index
        self.fleet = fleet
        self.rng = rng
        self.timeline: list[Event] = []
        self.position: tuple[str, int] | None = None
        self.copy: int | None = None
        """Token of this client's copy of the source in `fleet.replicas`."""
        self.failed: str | None = None
        self._ids = itertools.count(1)
        self._since: tuple[str, int] | None = None
        self._draining: str | None = None
        self._closing = False
        self._answered = False
        self._catchup: tuple[float, int] | None = None
        self.subscribed = asyncio.Event()
        """Set once the client holds a snapshot."""
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []

    # --- the connection loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, hold, drop, wait and resume until the fleet is finished or the server refuses for good."""
        failures = 0
        while not self.fleet.finished.is_set() and self.failed is None:
            fast = self.fleet.fast_url is not None and self.rng.random() < self.fleet.fast_share
            url = self.fleet.fast_url if fast and self.fleet.fast_url else self.fleet.asgi_url
            try:
                transport, _ = await ws_connect(
                    lambda: _Listener(self), url, websocket_handshake_timeout=30, enable_auto_pong=True
                )
            except Exception as exc:  # refused, timed out, or a handshake picows rejected: back off, retry
                failures += 1
                self.counts["connect_failures"] += 1
                self._problem(f"connect to {url} failed: {type(exc).__name__}: {exc}")
                # Not cut short when the drops stop: a server that refuses must not be hammered.
                await asyncio.sleep(
                    backoff_delay(
                        failures, initial_s=BACKOFF_INITIAL_S, max_s=BACKOFF_MAX_S, jitter=self.rng.random
                    )
                )
                continue
            failures = 0
            self.counts["connects_fast" if fast else "connects_asgi"] += 1
            self._closing = False
            self._draining = None
            self._subscribe(transport)
            await self._hold(transport)
            if self.fleet.finished.is_set() or self.failed is not None:
                break
            await self._pause(self.rng.uniform(0, self.fleet.max_offline_s))

    async def _hold(self, transport: Any) -> None:
        """Keep the connection until the server ends it, the drop timer fires or the fleet is finished."""
        fleet = self.fleet
        disconnected = asyncio.ensure_future(transport.wait_disconnected())
        try:
            if not fleet.calm.is_set():
                lifetime = max(0.01, self.rng.expovariate(1 / fleet.mean_connected_s))
                calm = asyncio.ensure_future(fleet.calm.wait())
                done, _ = await asyncio.wait(
                    [disconnected, calm], timeout=lifetime, return_when=asyncio.FIRST_COMPLETED
                )
                calm.cancel()
                if not done:
                    await self._drop(transport, disconnected)
                    return
            if not disconnected.done():
                finished = asyncio.ensure_future(fleet.finished.wait())
                await asyncio.wait([disconnected, finished], return_when=asyncio.FIRST_COMPLETED)
                finished.cancel()
                if not disconnected.done():
                    transport.disconnect()
            await disconnected
        except Exception as exc:  # a listener callback raised: a bug in this client, reported as such
            self._problem(f"connection failed: {type(exc).__name__}: {exc}")
            self.counts["client_errors"] += 1
        finally:
            if not disconnected.done():
                disconnected.cancel()

    async def _drop(self, transport: Any, disconnected: asyncio.Future[None]) -> None:
        """End the connection from this side: abruptly, or with a close handshake."""
        if self.rng.random() < self.fleet.clean_share:
            self.counts["drops_clean"] += 1
            self._closing = True
            transport.send_close(WSCloseCode.OK)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(disconnected), CLOSE_WAIT_S)
        else:
            self.counts["drops_abrupt"] += 1
            transport.underlying_transport.abort()  # no close frame: the socket just goes away
        if not disconnected.done():
            transport.disconnect()
        with contextlib.suppress(Exception):
            await disconnected

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short when the drops stop."""
        if self.fleet.calm.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.fleet.calm.wait(), seconds)

    # --- the protocol ----------------------------------------------------------------------------------------

    def _subscribe(self, transport: Any) -> None:
        """Send `subscribe`, with `since` once the client holds a state."""
        message: dict[str, Any] = {
            "type": "subscribe",
            "id": str(next(self._ids)),
            "source": self.fleet.source,
        }
        self._since = self.position
        self._answered = False
        if self.position is not None:
            message["since"] = {"epoch": self.position[0], "version": self.position[1]}
            self._catchup = (time.monotonic(), self.fleet.head)
        transport.send(WSMsgType.TEXT, orjson.dumps(message))

    def _resubscribe(self, transport: Any) -> None:
        """A gap: replace the subscription on the same connection, from the state held."""
        self.counts["gap_resubscribes"] += 1
        self._draining = str(next(self._ids))
        transport.send(
            WSMsgType.TEXT,
            orjson.dumps({"type": "unsubscribe", "id": self._draining, "source": self.fleet.source}),
        )
        self._subscribe(transport)

    def on_close(self, code: int | None, reason: bytes | None) -> None:
        """The server's close frame: the answer to ours, or the server ending the connection."""
        if self._closing:
            return
        self.counts[f"server_close_{int(code) if code is not None else 'none'}"] += 1
        self._problem(f"closed by the server: {code} {reason!r} (subscribed: {self._answered})")
        if code is not None and int(code) in FATAL_CLOSES:
            self.failed = f"closed by the server with {int(code)}"

    def on_message(self, transport: Any, frame: bytes) -> None:
        """One message from the server."""
        try:
            message = orjson.loads(frame)
            kind = message.get("type")
        except (orjson.JSONDecodeError, AttributeError):
            self.counts["bad_frames"] += 1
            self._problem(f"not a JSON object: {frame[:200]!r}")
            return
        if self._draining is not None:
            if kind == "unsubscribed" and message.get("id") == self._draining:
                self._draining = None
            return
        if kind == "change":
            self._on_change(transport, frame, message)
        elif kind == "snapshot":
            self._on_snapshot(frame, message)
        elif kind == "subscribed":
            self._on_subscribed(message)
        elif kind == "error":
            code = message.get("code", "?")
            self.counts[f"error_{code}"] += 1
            self._problem(f"error {code}: {message.get('message')}")
            if code in FATAL_ERRORS:
                self.failed = f"error {code}: {message.get('message')}"
            transport.disconnect()  # the subscription ended: resume on a new connection
        elif kind != "unsubscribed":
            self.counts["unexpected_messages"] += 1
            self._problem(f"unexpected message {message}")

    def _on_subscribed(self, message: dict[str, Any]) -> None:
        self._answered = True
        since = self._since
        if since is None:
            self.counts["fresh_subscribes"] += 1
            return
        if not message.get("recovered"):
            self.counts["resumes_unrecovered"] += 1
            return
        self.counts["resumes_recovered"] += 1
        if message.get("epoch") != since[0] or message.get("version") != since[1]:
            self.counts["bad_subscribed"] += 1
            self._problem(f"resumed from {since} but subscribed says {message}")
        self._caught_up()

    def _on_snapshot(self, frame: bytes, message: dict[str, Any]) -> None:
        version = int(message["version"])
        self.timeline.append(("snapshot", version))
        self.position = (message["epoch"], version)
        self.copy = self.fleet.replicas.from_snapshot(frame, message)
        self.fleet.head = max(self.fleet.head, version)
        self.subscribed.set()
        self._caught_up()

    def _on_change(self, transport: Any, frame: bytes, message: dict[str, Any]) -> None:
        version = int(message["version"])
        self.timeline.append(("change", version))
        now = time.time()
        position = self.position
        if position is None or self.copy is None:
            return  # before any snapshot: the checker counts it
        if message["epoch"] != position[0]:
            self.counts["epoch_changes"] += 1
            self._problem(f"change in epoch {message['epoch']} while holding {position}")
            return
        if version <= position[1]:
            return  # held already: the checker counts the duplicate
        if version != position[1] + 1:
            self._resubscribe(transport)
            return
        self.fleet.lags.append(now - self.fleet.committed_at(version, message["at"]))
        try:
            self.copy = self.fleet.replicas.step(self.copy, frame, message)
        except ValueError as exc:  # ApplyError, or ops that do not decode
            self.counts["apply_errors"] += 1
            self._problem(f"version {version} does not apply: {exc}")
        self.position = (position[0], version)
        self.fleet.head = max(self.fleet.head, version)
        self._caught_up()

    def _caught_up(self) -> None:
        """Record the catch-up time once the state held reaches the head seen when resuming."""
        if self._catchup is None or self.position is None:
            return
        started, target = self._catchup
        if self.position[1] >= target:
            self.fleet.catchups.append(time.monotonic() - started)
            self._catchup = None

    def _problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)
