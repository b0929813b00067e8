"""The picows server under the fast listener: picows' check of the write buffer before each send runs in C."""

from __future__ import annotations

import asyncio
from asyncio import selector_events
from functools import partial

import pytest
from websockets.asyncio.client import connect

from sheetstream.gateways import picows_server
from sheetstream.gateways.picows_server import buffer_size_in_c

from .conftest import fall_behind, fast_stack, lagging_beside_normal, recv, subscribe


async def test_the_buffer_check_runs_in_c_and_answers_as_asyncio_would() -> None:
    async with lagging_beside_normal() as (stack, conn, lagging, normal):
        assert conn.transport is not None
        transport = conn.transport.underlying_transport
        check = transport.get_write_buffer_size
        assert isinstance(check, partial) and check.func is len  # no Python frame when picows calls it
        in_python = selector_events._SelectorTransport.get_write_buffer_size  # type: ignore[attr-defined]
        asyncio_answer = partial(in_python, transport)
        # the reader holds back: the kernel's buffers fill, then asyncio's
        version = await fall_behind(stack, normal, lambda: asyncio_answer() > 0, "the transport's buffer filling")
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
