"""The hub's live groups: subscribers in step take a change in one loop, and nothing is lost or repeated when they
leave it (a client message, a gap, a new epoch, a slow consumer, a resubscription)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sheetstream.auth.tokens import ANONYMOUS
from sheetstream.core.messages import CLOSE_SLOW_CONSUMER, encode_change_frame
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab
from sheetstream.gateways.local import Hub
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource, Retention, SourceRecord
from sheetstream.stores.memory import MemoryStore
from tests.gateway.peers import LANE, LanePeer, RecordingPeer

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Feed:
    """A source whose changes the test commits to the store and (usually) publishes, and the kind of peer it has."""

    store: MemoryStore
    hub: Hub
    record: SourceRecord
    epoch: str
    peer: type[RecordingPeer]
    head: int = 0

    async def commit(self, *, publish: bool = True) -> None:
        self.head += 1
        changeset = ChangeSet(
            self.record.id, self.epoch, self.head, NOW, (SetCell(0, 0, 0, "A1", self.head - 1, self.head),)
        )
        snapshot = Snapshot((Tab(0, "t", ((self.head,),)),))
        await self.store.commit(snapshot, changeset, retention=Retention())
        if publish:
            await self.hub.publish(changeset, encode_change_frame(changeset))

    async def new_epoch(self) -> None:
        record = await self.store.reset_history(self.record.id, now=NOW)
        self.epoch, self.head = record.epoch, 0


@pytest.fixture(params=[RecordingPeer, LanePeer], ids=["push", "lane"])
async def feed(request: pytest.FixtureRequest) -> AsyncIterator[Feed]:
    """Every test runs with peers the group pushes to one by one, and with peers it writes to through a lane."""
    store = MemoryStore()
    await store.open()
    record = await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=NOW)
    hub = Hub(store, Settings(anonymous=True, max_messages_per_s=0))
    LANE.calls.clear()
    yield Feed(store, hub, record, record.epoch, request.param)
    await hub.close()
    await store.close()


def send(hub: Hub, peer: RecordingPeer, **message: Any) -> None:
    hub.receive(peer.id, orjson.dumps(message).decode())


async def settle(hub: Hub) -> None:
    """Let every pending store read finish and be carried out."""
    for _ in range(200):
        if not hub._loads:
            return
        await asyncio.sleep(0)
    raise AssertionError("store reads did not finish")


def stream_state(peer: RecordingPeer) -> tuple[str | None, int | None]:
    """Check what `peer` got: after each `subscribed`, a snapshot or nothing, then changes each one after the last.

    Returns the (epoch, version) the client is at, as a client applying the messages in order would be.
    """
    epoch: str | None = None
    last: int | None = None
    for message in peer.sent:
        kind = message["type"]
        if kind in ("subscribed", "snapshot"):
            epoch, last = message["epoch"], message["version"]
        elif kind == "change":
            assert last is not None, f"a change before any subscribed: {message}"
            assert (message["epoch"], message["version"]) == (epoch, last + 1), (
                f"{peer.id}: got {message['epoch']}:{message['version']} after {epoch}:{last}"
            )
            last = message["version"]
        elif kind == "unsubscribed":
            epoch, last = None, None
    return epoch, last


async def subscribe_all(feed: Feed, count: int) -> list[RecordingPeer]:
    peers = [feed.hub.attach_peer(feed.peer, ANONYMOUS) for _ in range(count)]
    for peer in peers:
        send(feed.hub, peer, type="subscribe", id=1, source=feed.record.id)
    await settle(feed.hub)
    return peers


async def test_subscribers_in_step_form_a_group_and_each_change_reaches_each_once(feed: Feed) -> None:
    peers = await subscribe_all(feed, 4)
    await feed.commit()  # one by one: each session takes it, and they join the group
    group = feed.hub.groups[feed.record.id]
    assert set(group.members) == {p.id for p in peers} and group.version == 1
    for _ in range(5):
        await feed.commit()  # the group's loop
    assert feed.hub.groups[feed.record.id].version == 6
    assert [stream_state(p) for p in peers] == [(feed.epoch, 6)] * 4


async def test_a_client_message_takes_its_session_out_up_to_date(feed: Feed) -> None:
    peers = await subscribe_all(feed, 3)
    for _ in range(3):
        await feed.commit()
    send(feed.hub, peers[0], type="ping", id=7)
    assert peers[0].id not in feed.hub.groups[feed.record.id].members
    session = feed.hub.sessions[peers[0].id]
    sub = session.subscription(feed.record.id)
    assert sub is not None and sub.last == 3  # caught up with what the group sent
    await feed.commit()  # one by one for it, the group for the others; then it joins again
    assert peers[0].id in feed.hub.groups[feed.record.id].members
    # Resubscribing from where it is replays nothing and repeats nothing.
    send(feed.hub, peers[1], type="unsubscribe", id=8, source=feed.record.id)
    send(feed.hub, peers[1], type="subscribe", id=9, source=feed.record.id, since={"epoch": feed.epoch, "version": 4})
    await settle(feed.hub)
    await feed.commit()
    assert [stream_state(p) for p in peers] == [(feed.epoch, 5)] * 3


async def test_a_lost_message_dissolves_the_group_and_the_store_fills_the_gap(feed: Feed) -> None:
    peers = await subscribe_all(feed, 3)
    await feed.commit()
    await feed.commit(publish=False)  # the bus lost version 2
    await feed.commit()  # 3 does not follow the group's 1: each session reads 2 from the store
    assert feed.record.id not in feed.hub.groups or feed.hub.groups[feed.record.id].version != 3
    await settle(feed.hub)
    await feed.commit()
    assert [stream_state(p) for p in peers] == [(feed.epoch, 4)] * 3


async def test_a_new_epoch_dissolves_the_group_and_clients_get_a_snapshot(feed: Feed) -> None:
    peers = await subscribe_all(feed, 2)
    await feed.commit()
    await feed.commit()
    await feed.new_epoch()
    await feed.commit()
    await settle(feed.hub)
    await feed.commit()
    for peer in peers:
        assert stream_state(peer) == (feed.epoch, 2)
        assert peer.sent[-2]["type"] == "snapshot" or peer.sent[-3]["type"] == "snapshot"


async def test_a_full_member_is_closed_and_leaves_the_group(feed: Feed) -> None:
    peers = await subscribe_all(feed, 3)
    await feed.commit()
    peers[1].fill(feed.hub)
    await feed.commit()
    assert peers[1].close_code == CLOSE_SLOW_CONSUMER
    assert set(feed.hub.groups[feed.record.id].members) == {peers[0].id, peers[2].id}
    assert peers[1].id not in feed.hub.sessions
    await feed.commit()
    assert [stream_state(p) for p in (peers[0], peers[2])] == [(feed.epoch, 3)] * 2


@pytest.mark.parametrize("seed", range(12))
async def test_random_interleavings_lose_and_repeat_nothing(feed: Feed, seed: int) -> None:
    rand = random.Random(seed)
    hub, source = feed.hub, feed.record.id
    peers = await subscribe_all(feed, 5)
    grouped = 0
    for _ in range(150):
        roll = rand.random()
        peer = rand.choice([p for p in peers if p.id in hub.sessions])
        if roll < 0.55:
            await feed.commit()
        elif roll < 0.62:
            await feed.commit(publish=False)
        elif roll < 0.72:
            send(hub, peer, type="ping", id=1)
        elif roll < 0.80:
            epoch, last = stream_state(peer)
            send(hub, peer, type="unsubscribe", id=2, source=source)
            since = {"since": {"epoch": epoch, "version": last}} if epoch is not None and rand.random() < 0.8 else {}
            send(hub, peer, type="subscribe", id=3, source=source, **since)
        elif roll < 0.83:
            peer.fill(hub)  # closed at the next change it is sent; a new client takes its place
            await feed.commit()
            replacement = hub.attach_peer(feed.peer, ANONYMOUS)
            send(hub, replacement, type="subscribe", id=1, source=source)
            peers = [p for p in peers if p.id in hub.sessions] + [replacement]
        elif roll < 0.85:
            await feed.new_epoch()
        else:
            await asyncio.sleep(0)  # some store reads finish
        group = hub.groups.get(source)
        grouped = max(grouped, len(group.members) if group else 0)
    await settle(hub)
    await feed.commit()  # reveals any gap left by an unpublished last change
    await settle(hub)
    await feed.commit()
    assert grouped >= 2, "the test never exercised a live group"
    if feed.peer is LanePeer:
        assert max(LANE.calls, default=0) >= 2, "the group never wrote through its lane"
    for peer in peers:
        assert peer.close_code is None
        assert stream_state(peer) == (feed.epoch, feed.head)
        session = hub._session(peer.id)
        assert session is not None
        sub = session.subscription(source)
        assert sub is not None and (sub.epoch, sub.last) == (feed.epoch, feed.head)


async def test_a_lane_takes_the_group_in_one_call_and_a_peer_that_stops_being_direct_is_pushed_to() -> None:
    store = MemoryStore()
    await store.open()
    record = await store.create_source(NewSource(kind="file", config={"path": "/d/a.csv"}), now=NOW)
    hub = Hub(store, Settings(anonymous=True, max_messages_per_s=0))
    feed = Feed(store, hub, record, record.epoch, LanePeer)
    LANE.calls.clear()
    lane_peers = await subscribe_all(feed, 8)
    feed.peer = RecordingPeer
    pushed = await subscribe_all(feed, 2)  # a group can mix transports: these have no lane
    await feed.commit()  # one by one: every session takes it and joins the group
    assert LANE.calls == []
    await feed.commit()
    assert LANE.calls == [8]  # the eight lane peers in one call; the two others pushed to
    fanout = hub.groups[record.id].fanout
    assert fanout is not None
    ((_lane, targets),) = fanout.lanes
    assert targets == sorted(lane_peers, key=id)  # in memory order, whatever order they subscribed in
    lane_peers[0].fill(hub)  # it stops being direct: the group sorts its members again
    await feed.commit()
    assert LANE.calls == [8, 7]
    assert lane_peers[0].close_code == CLOSE_SLOW_CONSUMER and lane_peers[0].id not in hub.sessions
    await feed.commit()
    assert LANE.calls == [8, 7, 7]
    assert [stream_state(p) for p in (*lane_peers[1:], *pushed)] == [(feed.epoch, 4)] * 9
    await hub.close()
    await store.close()
