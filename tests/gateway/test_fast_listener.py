"""The fast (picows) WebSocket listener with real `websockets` clients: the protocol, resume and limits of /v1/ws."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sheetstream.buses.memory import MemoryBus
from sheetstream.core.messages import encode_change_frame
from sheetstream.gateways.local import Hub
from sheetstream.gateways.picows_listener import PicowsListener
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import Store
from sheetstream.stores.memory import MemoryStore
from tests.e2e.harness import ServerProcess, free_port, write_atomically
from tests.e2e.harness import wait_for as poll_until

from .conftest import Stack, recv, send, wait_for


class FastStack(Stack):
    """Store, bus, hub, dispatcher and the picows listener, all in this event loop."""

    listener: PicowsListener


@contextlib.asynccontextmanager
async def fast_stack(store: Store | None = None, *, settings: Settings | None = None) -> AsyncIterator[FastStack]:
    """Serve the hub with the picows listener on 127.0.0.1:0 until the block exits."""
    settings = settings or Settings()
    store = store or MemoryStore()
    bus = MemoryBus()
    await bus.open()
    hub = Hub(store, settings, close_timeout_s=2.0)
    dispatcher = Dispatcher(bus, hub)
    dispatch_task = asyncio.create_task(dispatcher.run())
    listener = PicowsListener(hub, settings)
    port = await listener.start("127.0.0.1", 0)
    stack = FastStack(store, bus, hub, dispatcher, None, port)  # type: ignore[arg-type]  # no uvicorn here
    stack.listener = listener
    await stack.add_source()
    try:
        yield stack
    finally:
        await listener.stop()
        await hub.close()
        await bus.close()
        await dispatch_task


@pytest.fixture
async def stack() -> AsyncIterator[FastStack]:
    """A running fast listener with one empty source."""
    async with fast_stack() as running:
        yield running


async def subscribe(ws: ClientConnection, source: str, **fields: Any) -> list[dict[str, Any]]:
    """Subscribe; return `subscribed` and, when not recovered, the `snapshot`."""
    await send(ws, {"type": "subscribe", "id": "s", "source": source, **fields})
    subscribed = await recv(ws)
    assert subscribed["type"] == "subscribed", subscribed
    if subscribed["recovered"]:
        return [subscribed]
    return [subscribed, await recv(ws)]


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; the close code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


async def test_snapshot_then_live_changes(stack: FastStack) -> None:
    await stack.commit()
    async with connect(stack.url) as ws:
        subscribed, snapshot = await subscribe(ws, stack.source)
        assert (subscribed["recovered"], subscribed["version"]) == (False, 1)
        assert (snapshot["type"], snapshot["version"], snapshot["tabs"][0]["rows"]) == ("snapshot", 1, [["v1"]])
        await stack.commit()
        await stack.commit()
        first, second = await recv(ws), await recv(ws)
        assert [(m["type"], m["version"]) for m in (first, second)] == [("change", 2), ("change", 3)]
        assert first["ops"] == [{"op": "set", "tab": 1, "row": 0, "col": 0, "a1": "A1", "old": "v1", "new": "v2"}]


async def test_three_clients_get_identical_bytes(stack: FastStack) -> None:
    async with connect(stack.url) as a, connect(stack.url) as b, connect(stack.url) as c:
        for ws in (a, b, c):
            await subscribe(ws, stack.source)
        changeset = await stack.commit(value="ü ✓ 🙂")
        frames = [await asyncio.wait_for(ws.recv(), 5) for ws in (a, b, c)]
        assert frames[0] == frames[1] == frames[2] == encode_change_frame(changeset).decode()
        assert '"new":"ü ✓ 🙂"' in frames[0]


async def test_resume_with_since_replays_only_the_missed_changes(stack: FastStack) -> None:
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


async def test_bad_messages_get_errors_while_others_keep_receiving(stack: FastStack) -> None:
    async with connect(stack.url) as bystander, connect(stack.url) as ws:
        await subscribe(bystander, stack.source)
        await ws.send("{not json")
        assert (await recv(ws))["code"] == "bad_json"
        await stack.commit()
        await ws.send(b'{"type": "ping", "id": "1"}')
        assert (await recv(ws))["code"] == "bad_json"  # binary frames are refused
        await send(ws, {"type": "subscribe", "id": "3", "source": "nope"})
        assert (await recv(ws))["code"] == "unknown_source"
        await ws.send(['{"type": "pi', 'ng", "id": "frag"}'])  # a message in fragments
        assert await recv(ws) == {"type": "pong", "id": "frag"}
        assert (await recv(bystander))["version"] == 1


async def test_twenty_consecutive_errors_close_with_4000(stack: FastStack) -> None:
    async with connect(stack.url) as ws:
        for _ in range(20):
            await ws.send("nope")
        code, _ = await closed_with(ws)
        assert code == 4000


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
async def test_an_oversized_message_closes_with_1009_and_others_are_unaffected(fragmented: bool) -> None:
    async with fast_stack(settings=Settings(max_frame_bytes=1024)) as stack:
        async with connect(stack.url) as bystander, connect(stack.url) as ws:
            await subscribe(bystander, stack.source)
            big = '{"type":"ping","id":"' + "x" * 2000 + '"}'
            await ws.send([big[:700], big[700:1400], big[1400:]] if fragmented else big)
            code, _ = await closed_with(ws)
            assert code == 1009
            await stack.commit()
            assert (await recv(bystander))["version"] == 1
        await wait_for(lambda: stack.hub.connection_count == 0, "connections to be forgotten")


async def test_invalid_utf8_closes_with_1007(stack: FastStack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.listener.port)
    writer.write(_upgrade_request(stack.listener.port))
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    writer.write(_masked_frame(0x1, b"\xff\xfe"))  # a text frame that is not UTF-8
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    assert header[0] == 0x88 and int.from_bytes(header[2:4], "big") == 1007
    writer.close()


async def test_a_slow_consumer_is_closed_with_4008_while_a_normal_client_gets_everything() -> None:
    async with (
        fast_stack(settings=Settings(send_queue_size=8)) as stack,
        connect(stack.url, max_queue=1, compression=None) as slow,
        connect(stack.url, max_size=None, compression=None) as normal,
    ):
        await subscribe(slow, stack.source)
        (slow_id,) = stack.hub.table.subscribers(stack.source)
        await subscribe(normal, stack.source)
        big = "x" * 64 * 1024
        for version in range(1, 2001):
            await stack.commit(value=f"{big}{version}")
            assert (await recv(normal))["version"] == version  # nothing lost, nothing repeated
            if slow_id not in stack.hub.sessions:
                break
        else:
            pytest.fail("the client that stopped reading was never closed")
        assert await closed_with(slow) == (4008, "slow consumer")
        await stack.commit()
        assert (await recv(normal))["version"] == version + 1


async def test_a_reader_that_falls_behind_then_catches_up_gets_everything_in_order() -> None:
    async with (
        fast_stack(settings=Settings(send_queue_size=1000)) as stack,
        connect(stack.url, max_queue=1, max_size=None, compression=None) as lagging,
    ):
        await subscribe(lagging, stack.source)
        (conn_id,) = stack.hub.table.subscribers(stack.source)
        conn = stack.listener.connections[conn_id]
        big = "x" * 64 * 1024
        version = 0
        while conn.queued < 3:  # the socket and the transport are full: messages now wait in our queue
            version = (await stack.commit(value=f"{big}{version + 1}")).version
            await wait_for(lambda v=version: stack.dispatcher.dispatched >= v, "the change to be sent")
            assert version < 500, "the transport never asked us to hold back"
        received = [(await recv(lagging, 10))["version"] for _ in range(version)]
        assert received == list(range(1, version + 1))
        assert conn.queued == 0 and conn_id in stack.hub.sessions


async def test_a_silent_peer_is_pinged_then_closed_with_1011() -> None:
    settings = Settings(ping_interval_s=0.2, ping_timeout_s=0.4)
    async with fast_stack(settings=settings) as stack, connect(stack.url) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.listener.port)
        writer.write(_upgrade_request(stack.listener.port))
        await reader.readuntil(b"\r\n\r\n")
        received = await asyncio.wait_for(reader.read(), 10)  # never answered: read until the server hangs up
        assert received[:1] == b"\x89", "the first frame was not a ping"
        close = received.index(b"\x88")
        assert int.from_bytes(received[close + 2 : close + 4], "big") == 1011
        writer.close()
        await send(live, {"type": "ping", "id": "still-here"})  # the websockets client answers pings
        assert await recv(live) == {"type": "pong", "id": "still-here"}


async def test_shutdown_closes_with_1001_and_refuses_late_connections(stack: FastStack) -> None:
    async with connect(stack.url) as ws:
        await subscribe(ws, stack.source)
        await stack.hub.close()
        async with connect(stack.url) as late:
            assert (await closed_with(late))[0] == 1001
        await stack.listener.stop()
        assert (await closed_with(ws))[0] == 1001
    assert stack.hub.connection_count == 0


async def test_other_paths_are_not_found(stack: FastStack) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(f"ws://127.0.0.1:{stack.listener.port}/elsewhere"):
            pass
    assert caught.value.response.status_code == 404


@pytest.mark.slow
async def test_serve_with_ws_port_delivers_the_same_bytes_on_both_endpoints(tmp_path: Path) -> None:
    ws_port = free_port()
    server = ServerProcess(tmp_path, "--ws-port", str(ws_port)).start()
    try:
        csv = tmp_path / "s.csv"
        csv.write_text("a,b\n1,2\n")
        source = server.add_source("file", {"path": str(csv)}, poll_interval_s=60)["id"]
        await asyncio.to_thread(poll_until, lambda: server.source(source)["version"] >= 1, what="the first read")
        async with connect(server.ws) as slow_path, connect(f"ws://127.0.0.1:{ws_port}/v1/ws") as fast_path:
            await subscribe(slow_path, source)
            await subscribe(fast_path, source)
            write_atomically(csv, "a,b\n1,3\n")
            server.refresh(source)
            frames = [await asyncio.wait_for(ws.recv(), 10) for ws in (slow_path, fast_path)]
            assert frames[0] == frames[1] and '"new":"3"' in frames[0]
    finally:
        server.stop()


def _upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (clients must mask), with a payload under 126 bytes."""
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
