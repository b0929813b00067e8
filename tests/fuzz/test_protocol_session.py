"""hypothesis drives `core.protocol.Session` with random frames and a misbehaving bus and store.

Every example plays one connection: random text, bytes and JSON (valid and invalid messages) from the client,
changes committed to a fake store, their news delivered by a bus that loses, repeats and reorders it, store
reads answered late, in any order, or failing, histories pruned and reset, connection tokens renewed with other
sources (`auth`, answered at any time). Whatever happens, the session never
raises, every message it sends is a JSON object, and the client never sees a change out of order, twice, or
unlike the committed one. At the end the store is read as the dispatcher's resync does, and every live
subscription must have caught up with its source's head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.core import history
from sheetstream.core.messages import encode_change_frame
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab, VersionedSnapshot
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
from sheetstream.errors import SourceNotFound
from sheetstream.stores.base import ChangesSince

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SOURCES = ("s1", "s2", "s3")
KNOWN = ("s1", "s2")  # s3 does not exist in the store


@dataclass
class Log:
    """One source's history in the fake store: epoch, head, floor (oldest change kept) and the change sets."""

    epoch: str = "e0"
    resets: int = 0
    changes: dict[int, ChangeSet] = field(default_factory=dict)
    head: int = 0
    floor: int = history.FIRST_FLOOR

    def commit(self, source: str) -> ChangeSet:
        version = self.head + 1
        ops = (SetCell(tab=version % 2, row=0, col=0, a1="A1", old="", new=version),)
        changeset = ChangeSet(source, self.epoch, version, NOW, ops)
        self.changes[version] = changeset
        self.head = version
        return changeset

    def prune(self) -> None:
        self.floor = self.head + 1  # drop every change: only a snapshot can serve an old `since`

    def reset(self) -> None:
        self.resets += 1
        self.epoch, self.head, self.floor, self.changes = f"e{self.resets}", 0, history.FIRST_FLOOR, {}


class Store:
    """The fake store: answers a Load as a real store would at the moment the answer is computed."""

    def __init__(self) -> None:
        self.logs = {source: Log() for source in KNOWN}
        self.published: list[ChangeSet] = []
        """Every change committed, in commit order: what the bus may (or may not) deliver."""

    def answer(self, load: Load, failure: str | None) -> LoadResult:
        log = self.logs.get(load.source)
        if log is None:
            return SourceNotFound(load.source)
        if failure is not None:
            return ConnectionError(failure)
        if load.since is None:
            return VersionedSnapshot(load.source, log.epoch, log.head, Snapshot((Tab(0, "t", (("x",),)),)))
        epoch, version = load.since
        if not history.can_resume(log.epoch, log.head, log.floor, epoch, version):
            return ChangesSince(log.epoch, log.head, recovered=False)
        last = min(log.head, version + load.limit)
        return ChangesSince(log.epoch, log.head, True, [log.changes[v] for v in range(version + 1, last + 1)])


@dataclass
class Client:
    """What the client saw, per source, checked message by message."""

    session: Session
    store: Store
    tabs: dict[str, frozenset[int] | None] = field(default_factory=dict)
    views: dict[str, tuple[str, int]] = field(default_factory=dict)
    """(epoch, version) the client holds for each source it follows."""
    routed: set[str] = field(default_factory=set)
    loads: list[Load] = field(default_factory=list)
    auths: list[Authenticate] = field(default_factory=list)
    closed: bool = False

    def run(self, actions: list[Action]) -> None:
        """Carry out the session's actions the way the hub does, checking each."""
        for action in actions:
            assert not self.closed, f"{action} after Close"
            if isinstance(action, Send):
                self.check(action.data)
            elif isinstance(action, Route):
                assert action.source not in self.routed
                self.routed.add(action.source)
            elif isinstance(action, Unroute):
                assert action.source in self.routed
                self.routed.discard(action.source)
            elif isinstance(action, Load):
                assert action.source in self.session.sources and action.source in self.routed
                self.loads.append(action)
            elif isinstance(action, Authenticate):
                self.auths.append(action)
            elif isinstance(action, Close):
                assert 4000 <= action.code <= 4999
                self.closed = True
        # Followed sources are routed: no live change can slip past a subscription.
        assert self.session.sources <= self.routed

    def check(self, data: bytes) -> None:
        message = orjson.loads(data)
        assert isinstance(message, dict) and isinstance(message.get("type"), str)
        kind, source = message["type"], message.get("source")
        if kind == "subscribed":
            self.views[source] = (message["epoch"], message["version"])
        elif kind == "snapshot":
            held = self.views.get(source)
            if held is not None and held[0] == message["epoch"]:
                assert message["version"] >= held[1], "a snapshot older than what the client holds"
            self.views[source] = (message["epoch"], message["version"])
        elif kind == "change":
            epoch, last = self.views[source]
            assert (message["epoch"], message["version"]) == (epoch, last + 1), f"{message} after {epoch}:{last}"
            committed = self.store.logs[source].changes.get(message["version"])
            if committed is not None and committed.epoch == epoch:
                tabs = self.tabs.get(source)
                ops = tuple(op for op in committed.ops if tabs is None or op.tab in tabs)
                assert data == encode_change_frame(replace(committed, ops=ops)), "not the committed change"
            self.views[source] = (epoch, last + 1)
        elif kind == "unsubscribed" or (
            kind == "error" and message["code"] in ("unknown_source", "unavailable", "forbidden_source")
        ):
            assert source is not None
            self.views.pop(source, None)
            if kind == "error" and message["code"] == "forbidden_source":
                assert not self.session.allows(source)
        elif kind == "error":
            assert isinstance(message["code"], str) and isinstance(message["message"], str)
        elif kind == "authenticated":
            assert message["expires_at"] is None or message["expires_at"].endswith("Z")
        else:
            assert kind == "pong", message


# -- strategies -------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
ids = st.one_of(st.integers(-5, 5), st.text(max_size=4), json_values)
since = st.one_of(
    st.none(),
    st.fixed_dictionaries({"epoch": st.sampled_from(["e0", "e1", "e2"]), "version": st.integers(-1, 8)}),
    json_values,
)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "unsubscribe", "ping", "subscribe", "auth", "bogus"])},
    optional={
        "id": ids,
        "token": st.one_of(st.text(max_size=6), json_values),
        "source": st.one_of(st.sampled_from(SOURCES), json_values),
        "since": since,
        "tabs": st.one_of(st.lists(st.integers(0, 2), max_size=2), json_values),
    },
)
valid_subscribe = st.builds(
    lambda source, since_, tabs: {
        "type": "subscribe",
        "id": 1,
        "source": source,
        **({"since": since_} if since_ is not None else {}),
        **({"tabs": tabs} if tabs is not None else {}),
    },
    st.sampled_from(SOURCES),
    st.one_of(st.none(), st.fixed_dictionaries({"epoch": st.just("e0"), "version": st.integers(0, 6)})),
    st.one_of(st.none(), st.just([0]), st.just([1])),
)

answers = st.tuples(st.just("answer"), st.tuples(st.integers(0, 1000), st.sampled_from([None, None, None, "down"])))
allowed = st.one_of(st.none(), st.frozensets(st.sampled_from(SOURCES)))
grants = st.tuples(st.just("grant"), st.tuples(st.integers(0, 1000), allowed, st.sampled_from([None, 1767225600.0])))
steps = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=40)),
    st.tuples(st.just("json"), json_values.map(lambda v: json.dumps(v))),  # NaN, Infinity: not JSON for us
    st.tuples(st.just("json"), messages.map(json.dumps)),
    st.tuples(st.just("json"), valid_subscribe.map(json.dumps)),
    st.tuples(st.just("json"), valid_subscribe.map(json.dumps)),
    st.tuples(st.just("binary"), st.none()),
    st.tuples(st.just("commit"), st.sampled_from(KNOWN)),
    st.tuples(st.just("commit"), st.sampled_from(KNOWN)),
    st.tuples(st.just("live"), st.integers(0, 1000)),  # one committed change, any one: repeats and reorders
    st.tuples(st.just("live"), st.just(-1)),  # the newest: the bus's usual behaviour
    st.tuples(st.just("live"), st.just(-1)),
    answers,
    answers,
    answers,
    st.tuples(st.just("prune"), st.sampled_from(KNOWN)),
    st.tuples(st.just("reset"), st.sampled_from(KNOWN)),
    st.tuples(st.just("json"), st.just('{"type": "auth", "id": "a", "token": "t"}')),
    grants,
)


def _note_tabs(client: Client, sent: Any) -> None:
    """Remember the tabs a new subscription will filter on, should the session accept it."""
    if not (isinstance(sent, dict) and sent.get("type") == "subscribe" and sent.get("source") in SOURCES):
        return
    if sent["source"] not in client.session.sources:
        tabs = sent.get("tabs")
        valid = isinstance(tabs, list) and all(type(t) is int for t in tabs)
        client.tabs[sent["source"]] = frozenset(tabs) if valid else None


def _play(client: Client, step: tuple[str, Any]) -> None:
    session, store = client.session, client.store
    kind, arg = step
    if kind in ("text", "json"):
        if kind == "json":
            _note_tabs(client, json.loads(arg))
        client.run(session.receive(arg))
    elif kind == "binary":
        client.run(session.receive_binary())
    elif kind == "commit":
        store.published.append(store.logs[arg].commit(arg))
    elif kind == "live" and store.published:
        changeset = store.published[arg % len(store.published)]
        if changeset.source in client.routed:  # the hub hands live changes to routed connections only
            client.run(session.live(changeset, encode_change_frame(changeset)))
    elif kind == "answer" and client.loads:
        index, failure = arg
        load = client.loads.pop(index % len(client.loads))
        client.run(session.loaded(load, store.answer(load, failure)))
    elif kind == "grant" and client.auths:
        index, sources, expires_at = arg
        auth = client.auths.pop(index % len(client.auths))
        client.run(session.authenticated(auth.id, sources, expires_at))
    elif kind == "prune":
        store.logs[arg].prune()
    elif kind == "reset":
        store.logs[arg].reset()


def _settle(client: Client) -> None:
    """One more change of each source (a reset or a lost newest change shows only at the next one), then resync as
    the dispatcher does after a bus failure and answer every read, until nothing is pending."""
    session, store = client.session, client.store
    for source in sorted(client.routed & set(KNOWN)):
        changeset = store.logs[source].commit(source)
        client.run(session.live(changeset, encode_change_frame(changeset)))
    for _ in range(50):
        for source in sorted(client.routed):
            log = store.logs.get(source)
            for version in range(1, log.head + 1) if log is not None else ():
                client.run(session.live(log.changes[version], encode_change_frame(log.changes[version])))
        while client.loads:
            load = client.loads.pop(0)
            client.run(session.loaded(load, store.answer(load, None)))
        if not client.loads:
            return
    raise AssertionError("reads never settle")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=10, max_size=80), st.integers(1, 3), allowed)
def test_random_frames_and_a_misbehaving_bus_never_break_the_session(
    step_list: list[Any], page: int, sources: frozenset[str] | None
) -> None:
    # A small page size and buffer exercise paging and the overflow path too.
    session = Session(max_subscriptions=2, max_errors=8, page_size=page, max_buffer=3, allowed_sources=sources)
    client = Client(session, Store())
    for step in step_list:
        _play(client, step)
    if client.closed:
        assert session.receive('{"type": "ping", "id": 1}') == []  # a closed session stays silent
        return
    _settle(client)
    for source in session.sources:
        sub = session.subscription(source)
        assert sub is not None and sub.state == "live"
        log = client.store.logs[source]
        assert client.views[source] == (log.epoch, log.head), f"{source} did not catch up"
