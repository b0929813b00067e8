"""The fast (picows) WebSocket listener with real `websockets` clients: the protocol, resume and limits of /v1/ws."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sheetstream.runtime.settings import Settings
from tests.e2e.harness import ServerProcess, free_port, write_atomically
from tests.e2e.harness import wait_for as poll_until

from .conftest import (
    FastStack,
    fall_behind,
    fast_stack,
    lagging_beside_normal,
    recv,
    send,
    subscribe,
    wait_for,
)
from .rawws import masked_frame, upgrade_request


@pytest.fixture
async def stack() -> AsyncIterator[FastStack]:
    """A running picows listener with one empty source (these tests are about that transport alone)."""
    async with fast_stack() as running:
        yield running


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; the close code and reason."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("fragmented", [False, True], ids=["one-frame", "fragments"])
async def test_an_oversized_message_closes_with_1009_and_others_are_unaffected(fragmented: bool) -> None:
    async with fast_stack(settings=Settings(anonymous=True, max_frame_bytes=1024)) as stack:
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
    writer.write(upgrade_request(stack.listener.port))
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    writer.write(masked_frame(0x1, b"\xff\xfe"))  # a text frame that is not UTF-8
    header = await asyncio.wait_for(reader.readexactly(4), 5)
    assert header[0] == 0x88 and int.from_bytes(header[2:4], "big") == 1007
    writer.close()


async def test_a_slow_consumer_is_closed_with_4008_while_a_normal_client_gets_everything() -> None:
    async with (
        fast_stack(settings=Settings(anonymous=True, send_queue_size=8)) as stack,
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
        fast_stack(settings=Settings(anonymous=True, send_queue_size=1000)) as stack,
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


async def test_a_group_member_that_falls_behind_is_queued_for_then_written_to_with_the_others_again() -> None:
    async with lagging_beside_normal() as (stack, conn, lagging, normal):
        # both in the live group; only the lagging one's transport fills up
        version = await fall_behind(stack, normal, lambda: conn.queued >= 3, "the transport asking us to hold back")
        group = stack.hub.groups[stack.source]
        assert conn.direct() is None and conn.id in group.members  # still a member, pushed to and queued for
        received = [(await recv(lagging, 10))["version"] for _ in range(version)]
        assert received == list(range(1, version + 1))
        version = (await stack.commit()).version
        assert (await recv(lagging))["version"] == version and (await recv(normal))["version"] == version
        fanout = stack.hub.groups[stack.source].fanout
        assert fanout is not None and fanout.one_by_one == []  # both written to through the lane again
        assert sorted(len(targets) for _lane, targets in fanout.lanes) == [2]


async def test_a_silent_peer_is_pinged_then_closed_with_1011() -> None:
    settings = Settings(anonymous=True, ping_interval_s=0.2, ping_timeout_s=0.4)
    async with fast_stack(settings=settings) as stack, connect(stack.url) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.listener.port)
        writer.write(upgrade_request(stack.listener.port))
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
