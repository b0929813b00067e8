"""The local gateway served on an ephemeral port, by uvicorn (ASGI /v1/ws) or by the picows listener, with a memory
store and bus. `BOTH_TRANSPORTS` runs a test on each."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect

from sheetstream.buses.memory import MemoryBus
from sheetstream.core.model import ChangeSet, SetCell, Snapshot, Tab
from sheetstream.gateways.local import Hub, websocket_route
from sheetstream.gateways.picows_listener import PicowsConnection, PicowsListener
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource, Retention, Store
from sheetstream.stores.memory import MemoryStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Stack:
    """Store, bus, hub, dispatcher and the server of the socket (uvicorn, or None for the picows listener)."""

    def __init__(
        self,
        store: Store,
        bus: MemoryBus,
        hub: Hub,
        dispatcher: Dispatcher,
        server: uvicorn.Server | None,
        port: int,
    ) -> None:
        self.store = store
        self.bus = bus
        self.hub = hub
        self.dispatcher = dispatcher
        self.server = server
        self.url = f"ws://127.0.0.1:{port}/v1/ws"
        self.source = ""
        self._values: dict[str, str] = {}

    async def add_source(self) -> str:
        """Create a source; the first one becomes `self.source`."""
        record = await self.store.create_source(NewSource(kind="file", config={"path": "x.csv"}), now=NOW)
        self.source = self.source or record.id
        return record.id

    async def commit(
        self, source: str | None = None, *, value: str | None = None, publish: bool = True
    ) -> ChangeSet:
        """Commit the next version of a source (cell A1 becomes `value`) and publish it (unless told not to)."""
        source = source or self.source
        head = await self.store.get_source(source)  # not `snapshot`: tests may hold snapshot reads back
        version = head.version + 1
        new = value if value is not None else f"v{version}"
        old = self._values.get(source, "")
        cs = ChangeSet(source, head.epoch, version, NOW, (SetCell(1, 0, 0, "A1", old, new),))
        await self.store.commit(Snapshot((Tab(1, "Sheet1", ((new,),)),)), cs, retention=Retention())
        self._values[source] = new
        if publish:
            await self.bus.publish(cs)
        return cs


@contextlib.asynccontextmanager
async def running_stack(
    store: Store | None = None,
    *,
    settings: Settings | None = None,
    ws_max_size: int | None = None,
    **hub_options: Any,
) -> AsyncIterator[Stack]:
    """Serve the gateway on 127.0.0.1:0 until the block exits."""
    settings = settings or Settings(anonymous=True)
    store = store or MemoryStore()
    bus = MemoryBus()
    await bus.open()
    hub = Hub(store, settings, **hub_options)
    dispatcher = Dispatcher(bus, hub)
    dispatch_task = asyncio.create_task(dispatcher.run())
    app = Starlette(routes=[websocket_route(hub)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",
        ws_max_size=ws_max_size or settings.max_frame_bytes,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_timeout_s,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serve_task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started or serve_task.done(), "uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    stack = Stack(store, bus, hub, dispatcher, server, port)
    await stack.add_source()
    try:
        yield stack
    finally:
        await hub.close()
        server.should_exit = True
        await serve_task
        await bus.close()
        await dispatch_task


class FastStack(Stack):
    """A Stack served by the picows listener."""

    listener: PicowsListener


@contextlib.asynccontextmanager
async def fast_stack(store: Store | None = None, *, settings: Settings | None = None) -> AsyncIterator[FastStack]:
    """Serve the hub with the picows listener on 127.0.0.1:0 until the block exits."""
    settings = settings or Settings(anonymous=True)
    store = store or MemoryStore()
    bus = MemoryBus()
    await bus.open()
    hub = Hub(store, settings, close_timeout_s=2.0)
    dispatcher = Dispatcher(bus, hub)
    dispatch_task = asyncio.create_task(dispatcher.run())
    listener = PicowsListener(hub, settings)
    port = await listener.start("127.0.0.1", 0)
    stack = FastStack(store, bus, hub, dispatcher, None, port)
    stack.listener = listener
    await stack.add_source()
    try:
        yield stack
    finally:
        await listener.stop()
        await hub.close()
        await bus.close()
        await dispatch_task


@contextlib.asynccontextmanager
async def lagging_beside_normal() -> AsyncIterator[
    tuple[FastStack, PicowsConnection, ClientConnection, ClientConnection]
]:
    """A picows listener and two subscribers of its source: one that reads one message at a time when asked (the
    lagging one, whose server-side connection is given too) and one that reads as it goes."""
    async with (
        fast_stack(settings=Settings(anonymous=True, send_queue_size=1000)) as stack,
        connect(stack.url, max_queue=1, max_size=None, compression=None) as lagging,
        connect(stack.url, max_size=None, compression=None) as normal,
    ):
        await subscribe(lagging, stack.source)
        (lagging_id,) = stack.hub.table.subscribers(stack.source)
        await subscribe(normal, stack.source)
        yield stack, stack.listener.connections[lagging_id], lagging, normal


async def fall_behind(stack: FastStack, normal: ClientConnection, until: Callable[[], bool], what: str) -> int:
    """Commit 64 KiB changes, each read by `normal`, until `until()` holds (the lagging reader's buffers filled);
    the last version."""
    big = "x" * 64 * 1024
    version = 0
    while not until():
        version = (await stack.commit(value=f"{big}{version + 1}")).version
        assert (await recv(normal))["version"] == version  # sent to both
        assert version < 500, f"{what} never happened"
    return version


async def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    """Poll `condition` until it holds, failing after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def recv(ws: ClientConnection, timeout_s: float = 5.0) -> dict[str, Any]:
    """The next message, decoded."""
    data = await asyncio.wait_for(ws.recv(), timeout_s)
    assert isinstance(data, str), "the server sends text frames only"
    return dict(orjson.loads(data))


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    """Send one message as a text frame."""
    await ws.send(orjson.dumps(message).decode())


async def subscribe(ws: ClientConnection, source: str, **fields: Any) -> list[dict[str, Any]]:
    """Subscribe; return `subscribed` and, when not recovered, the `snapshot`."""
    await send(ws, {"type": "subscribe", "id": "s", "source": source, **fields})
    subscribed = await recv(ws)
    assert subscribed["type"] == "subscribed", subscribed
    if subscribed["recovered"]:
        return [subscribed]
    return [subscribed, await recv(ws)]


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """A running gateway with one empty source: uvicorn's ASGI endpoint, or the transport of `BOTH_TRANSPORTS`."""
    transport = getattr(request, "param", "asgi")
    async with running_stack() if transport == "asgi" else fast_stack() as running:
        yield running


BOTH_TRANSPORTS = pytest.mark.parametrize("stack", ["asgi", "picows"], indirect=True)
"""Run a test on both transports: the protocol must not depend on which one serves the socket."""
