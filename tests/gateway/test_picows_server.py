"""The picows server under the fast listener: picows' check of the write buffer before each send runs in C."""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from functools import partial

import pytest
from websockets.asyncio.client import connect

from sheetstream.gateways import picows_server
from sheetstream.gateways.picows_server import buffer_size_in_c
from sheetstream.runtime.settings import Settings

from .conftest import fast_stack, recv, subscribe


async def test_the_buffer_check_runs_in_c_and_answers_as_asyncio_would() -> None:
    async with (
        fast_stack(settings=Settings(anonymous=True, send_queue_size=1000)) as stack,
        connect(stack.url, max_queue=1, max_size=None, compression=None) as lagging,
        connect(stack.url, max_size=None, compression=None) as normal,
    ):
        await subscribe(lagging, stack.source)
        (conn_id,) = stack.hub.table.subscribers(stack.source)
        await subscribe(normal, stack.source)
        conn = stack.listener.connections[conn_id]
        assert conn.transport is not None
        transport = conn.transport.underlying_transport
        check = transport.get_write_buffer_size
        assert isinstance(check, partial) and check.func is len  # no Python frame when picows calls it
        asyncio_answer = partial(selector_events._SelectorTransport.get_write_buffer_size, transport)  # type: ignore[attr-defined]
        big = "x" * 64 * 1024
        version = 0
        while asyncio_answer() == 0:  # the reader holds back: the kernel's buffers fill, then asyncio's
            version = (await stack.commit(value=f"{big}{version + 1}")).version
            assert (await recv(normal))["version"] == version  # sent to both
            assert version < 500, "the transport's buffer never filled"
        assert check() == asyncio_answer() > 0
        assert [(await recv(lagging, 10))["version"] for _ in range(version)] == list(range(1, version + 1))
        await asyncio.sleep(0.05)  # the last bytes leave asyncio's buffer once the socket takes them
        assert check() == asyncio_answer() == 0


def test_other_transports_are_left_alone() -> None:
    class Other(asyncio.Transport):
        def get_write_buffer_size(self) -> int:
            return 7

    other = Other()
    assert buffer_size_in_c(other) is False
    assert other.get_write_buffer_size() == 7


async def test_a_picows_that_takes_other_arguments_still_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing(picows_server._ServerProtocol):  # type: ignore[misc,name-defined]
        __slots__ = ()

        def __init__(self, **options: object) -> None:
            raise TypeError("__init__() got an unexpected keyword argument 'host_port'")

    monkeypatch.setattr(picows_server, "_ServerProtocol", Refusing)
    async with fast_stack() as stack, connect(stack.url, max_size=None, compression=None) as ws:
        await subscribe(ws, stack.source)
        (conn_id,) = stack.hub.table.subscribers(stack.source)
        conn = stack.listener.connections[conn_id]
        assert conn.transport is not None
        assert not isinstance(conn.transport.underlying_transport.get_write_buffer_size, partial)
        version = (await stack.commit()).version
        assert (await recv(ws))["version"] == version
