"""The local gateway end to end: a real uvicorn server, real `websockets` clients, memory store and bus."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sheetstream.core.messages import encode_change_frame
from sheetstream.core.model import VersionedSnapshot
from sheetstream.runtime.settings import Settings
from sheetstream.stores.memory import MemoryStore

from .conftest import BOTH_TRANSPORTS, Stack, recv, running_stack, send, subscribe, wait_for


@BOTH_TRANSPORTS
async def test_subscribe_gets_the_snapshot_then_live_changes(stack: Stack) -> None:
    await stack.commit()
    async with connect(stack.url) as ws:
        subscribed, snapshot = await subscribe(ws, stack.source)
        assert (subscribed["recovered"], subscribed["version"]) == (False, 1)
        assert (snapshot["type"], snapshot["version"], snapshot["tabs"][0]["rows"]) == (
            "snapshot",
            1,
            [["v1"]],
        )
        await stack.commit()
        await stack.commit()
        first, second = await recv(ws), await recv(ws)
        assert [(m["type"], m["version"]) for m in (first, second)] == [("change", 2), ("change", 3)]
        assert first["ops"] == [
            {"op": "set", "tab": 1, "row": 0, "col": 0, "a1": "A1", "old": "v1", "new": "v2"}
        ]
        assert first["epoch"] == subscribed["epoch"] and first["at"] == "2026-01-01T00:00:00.000Z"


@BOTH_TRANSPORTS
async def test_three_clients_get_identical_bytes(stack: Stack) -> None:
    async with connect(stack.url) as a, connect(stack.url) as b, connect(stack.url) as c:
        for ws in (a, b, c):
            await subscribe(ws, stack.source)
        changeset = await stack.commit(value="ü ✓ 🙂")
        frames = [await asyncio.wait_for(ws.recv(), 5) for ws in (a, b, c)]
        assert frames[0] == frames[1] == frames[2] == encode_change_frame(changeset).decode()
        assert '"new":"ü ✓ 🙂"' in frames[0]


@BOTH_TRANSPORTS
async def test_resume_with_since_replays_only_the_missed_changes(stack: Stack) -> None:
    for _ in range(3):
        await stack.commit()
    async with connect(stack.url) as ws:
        subscribed, _ = await subscribe(ws, stack.source)
        epoch = subscribed["epoch"]
    for _ in range(4):
        await stack.commit()
    async with connect(stack.url) as ws:
        (subscribed,) = await subscribe(ws, stack.source, since={"epoch": epoch, "version": 3})
        assert (subscribed["recovered"], subscribed["version"]) == (True, 3)
        assert [(await recv(ws))["version"] for _ in range(4)] == [4, 5, 6, 7]
        await stack.commit()
        assert (await recv(ws))["version"] == 8


@BOTH_TRANSPORTS
async def test_resume_from_another_epoch_gets_a_snapshot(stack: Stack) -> None:
    await stack.commit()
    async with connect(stack.url) as ws:
        subscribed, snapshot = await subscribe(ws, stack.source, since={"epoch": "gone", "version": 1})
        assert (subscribed["recovered"], snapshot["version"]) == (False, 1)


@BOTH_TRANSPORTS
async def test_errors_keep_the_connection_working_while_others_receive(stack: Stack) -> None:
    async with connect(stack.url) as bystander, connect(stack.url) as ws:
        await subscribe(bystander, stack.source)
        await ws.send("{not json")
        assert (await recv(ws))["code"] == "bad_json"
        await stack.commit()
        await ws.send('{"type": "dance", "id": "1"}')
        assert (await recv(ws))["code"] == "unknown_type"
        await ws.send(b'{"type": "ping", "id": "1"}')
        assert (await recv(ws))["code"] == "bad_json"  # binary frames are refused
        await send(ws, {"type": "subscribe", "id": "2"})
        error = await recv(ws)
        assert (error["code"], error["field"], error["id"]) == ("invalid_message", "source", "2")
        await send(ws, {"type": "subscribe", "id": "3", "source": "nope"})
        assert (await recv(ws))["code"] == "unknown_source"
        await send(ws, {"type": "unsubscribe", "id": "4", "source": stack.source})
        assert (await recv(ws))["code"] == "not_subscribed"
        await send(ws, {"type": "ping", "id": "5"})
        assert await recv(ws) == {"type": "pong", "id": "5"}
        await ws.send(['{"type": "pi', 'ng", "id": "frag"}'])  # a message in fragments
        assert await recv(ws) == {"type": "pong", "id": "frag"}
        await subscribe(ws, stack.source)
        await stack.commit()
        assert (await recv(ws))["version"] == 2
        assert [(await recv(bystander))["version"] for _ in range(2)] == [1, 2]


@BOTH_TRANSPORTS
async def test_unsubscribe_stops_the_changes(stack: Stack) -> None:
    other = await stack.add_source()
    async with connect(stack.url) as ws:
        await subscribe(ws, stack.source)
        await subscribe(ws, other)
        await send(ws, {"type": "unsubscribe", "id": "u", "source": stack.source})
        assert await recv(ws) == {"type": "unsubscribed", "id": "u", "source": stack.source}
        await stack.commit()
        await stack.commit(other)
        message = await recv(ws)
        assert (message["source"], message["version"]) == (other, 1)


@BOTH_TRANSPORTS
async def test_twenty_consecutive_errors_close_with_4000(stack: Stack) -> None:
    async with connect(stack.url) as ws:
        for _ in range(20):
            await ws.send("nope")
        with pytest.raises(ConnectionClosed):
            while True:
                assert (await recv(ws))["code"] == "bad_json"
        assert ws.close_code == 4000


@pytest.mark.parametrize("uvicorn_limit", [True, False], ids=["uvicorn-limit", "endpoint-limit"])
async def test_an_oversized_frame_closes_with_1009_and_others_are_unaffected(uvicorn_limit: bool) -> None:
    settings = Settings(anonymous=True, max_frame_bytes=1024)
    async with running_stack(settings=settings, ws_max_size=None if uvicorn_limit else 1 << 20) as stack:
        async with connect(stack.url) as bystander, connect(stack.url) as ws:
            await subscribe(bystander, stack.source)
            await subscribe(ws, stack.source)
            await ws.send('{"type":"ping","id":"' + "x" * 2000 + '"}')
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1009
            await stack.commit()
            assert (await recv(bystander))["version"] == 1
            await send(bystander, {"type": "ping", "id": "p"})
            assert (await recv(bystander))["type"] == "pong"
        await wait_for(lambda: stack.hub.connection_count == 0, "connections to be forgotten")


async def test_a_slow_consumer_is_closed_with_4008_while_a_normal_client_gets_everything() -> None:
    # No compression: the big, repetitive frames must really fill the socket buffers. The slow client
    # stops reading from its socket once one message waits unread (max_queue=1).
    async with (
        running_stack(settings=Settings(anonymous=True, send_queue_size=8)) as stack,
        connect(stack.url, max_queue=1, compression=None) as slow,
        connect(stack.url, max_size=None, compression=None) as normal,
    ):
        await subscribe(slow, stack.source)
        slow_id = _only_connection_subscribed(stack)
        await subscribe(normal, stack.source)
        count = await _flood_until_closed(stack, normal, slow_id)
        with pytest.raises(ConnectionClosed):
            while True:  # what was sent before the close, then the close frame
                await asyncio.wait_for(slow.recv(), 10)
        assert (slow.close_code, slow.close_reason) == (4008, "slow consumer")
        await stack.commit()
        assert (await recv(normal))["version"] == count + 1


def _only_connection_subscribed(stack: Stack) -> str:
    (conn_id,) = stack.hub.table.subscribers(stack.source)
    return conn_id


async def _flood_until_closed(stack: Stack, normal: ClientConnection, slow_id: str) -> int:
    """Commit 64 KiB changes in lock-step with `normal` until `slow_id` is closed; return how many."""
    big = "x" * 64 * 1024
    for version in range(1, 2001):
        await stack.commit(value=f"{big}{version}")
        assert (await recv(normal))["version"] == version  # nothing lost, nothing repeated
        if slow_id not in stack.hub.sessions:
            return version
    raise AssertionError("the client that stopped reading was never closed")


@BOTH_TRANSPORTS
async def test_ping_pong(stack: Stack) -> None:
    async with connect(stack.url) as ws:
        await send(ws, {"type": "ping", "id": 42})
        assert await recv(ws) == {"type": "pong", "id": 42}
        latency = await asyncio.wait_for(await ws.ping(), 5)  # WebSocket-level keepalive ping too
        assert latency >= 0


class GatedStore(MemoryStore):
    """A memory store whose snapshot reads wait for a gate: before or after reading the data."""

    def __init__(self, read_first: bool) -> None:
        super().__init__()
        self.read_first = read_first
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        result = await super().snapshot(source_id) if self.read_first else None
        self.waiting.set()
        await self.gate.wait()
        return result or await super().snapshot(source_id)


@pytest.mark.parametrize("read_first", [True, False], ids=["read-then-changes", "changes-then-read"])
async def test_changes_committed_while_subscribing_are_neither_lost_nor_repeated(read_first: bool) -> None:
    store = GatedStore(read_first)
    async with running_stack(store) as stack:
        await stack.commit()
        async with connect(stack.url) as ws:
            await send(ws, {"type": "subscribe", "id": "s", "source": stack.source})
            await asyncio.wait_for(store.waiting.wait(), 5)
            for _ in range(3):
                await stack.commit()  # published while the snapshot read is in flight
            await wait_for(lambda: stack.dispatcher.dispatched == 4, "the dispatcher to take the changes")
            store.gate.set()
            subscribed, snapshot = await recv(ws), await recv(ws)
            assert snapshot["version"] == (1 if read_first else 4) == subscribed["version"]
            await stack.commit()
            changes = [(await recv(ws))["version"] for _ in range(5 - snapshot["version"])]
            assert changes == list(range(snapshot["version"] + 1, 6))


async def test_server_shutdown_closes_with_1001(stack: Stack) -> None:
    async with connect(stack.url) as ws:
        await subscribe(ws, stack.source)
        await stack.hub.close()
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1001


async def test_new_connections_after_shutdown_are_closed_with_1001(stack: Stack) -> None:
    await stack.hub.close()
    async with connect(stack.url) as ws:
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1001


async def test_a_lost_bus_message_is_filled_from_the_store(stack: Stack) -> None:
    async with connect(stack.url) as ws:
        await subscribe(ws, stack.source)
        await stack.commit(publish=False)  # committed, but its news never reaches the gateway
        await stack.commit()
        assert [(await recv(ws))["version"] for _ in range(2)] == [1, 2]
        await stack.commit()
        assert (await recv(ws))["version"] == 3


class BrokenStore(MemoryStore):
    """A memory store whose snapshot reads fail."""

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        raise OSError("disk on fire")


async def test_a_failing_store_read_is_reported_and_the_connection_keeps_working() -> None:
    async with running_stack(BrokenStore()) as stack, connect(stack.url) as ws:
        await send(ws, {"type": "subscribe", "id": "s", "source": stack.source})
        error = await recv(ws)
        assert (error["type"], error["code"], error["id"]) == ("error", "unavailable", "s")
        await send(ws, {"type": "ping", "id": "p"})
        assert (await recv(ws))["type"] == "pong"
        assert stack.hub.table.subscription_count == 0


async def test_the_gateway_port_delivers_and_closes_by_connection_id(stack: Stack) -> None:
    async with connect(stack.url) as ws:
        await send(ws, {"type": "ping", "id": "p"})
        await recv(ws)
        (conn_id,) = stack.hub.sessions
        await stack.hub.gateway.deliver([conn_id, "not-a-connection"], b'{"type":"pong","id":"x"}')
        assert await recv(ws) == {"type": "pong", "id": "x"}
        await stack.hub.gateway.close(conn_id, 4003, "forbidden source")
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert (ws.close_code, ws.close_reason) == (4003, "forbidden source")
