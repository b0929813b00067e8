"""The connection registry on the real Redis: presence per node and per source, gone when a node stops or dies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sheetstream.gateways.registry import ConnectionRegistry, Holdings
from sheetstream.runtime.roles import NodeOptions, hub_holdings, running_roles
from sheetstream.runtime.settings import Settings
from tests.buses.redis_keys import drop_prefix
from tests.contracts.conftest import require_service


@pytest.fixture
async def bus_url() -> AsyncIterator[str]:
    """A Redis bus URL with a fresh prefix; its keys are deleted after the test."""
    url = require_service("SHEETSTREAM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"sheetstream-test-{uuid.uuid4().hex}"
    yield f"{url}?stream_prefix={prefix}"
    await drop_prefix(url, prefix)


async def test_presence_is_summed_over_live_nodes(bus_url: str) -> None:
    held = {"a": Holdings(3, {"s1": 2, "s2": 1}), "b": Holdings(2, {"s1": 2})}
    nodes = [ConnectionRegistry(bus_url, name, lambda n=name: held[n]) for name in ("a", "b")]
    reader = ConnectionRegistry(bus_url, "reader")
    try:
        for node in nodes:
            await node.start()
        assert await reader.presence() == {"s1": 4, "s2": 1}
        listed = await reader.nodes()
        assert [(n.node_id, n.connections, n.subscriptions, n.sources) for n in listed] == [
            ("a", 3, 3, {"s1": 2, "s2": 1}), ("b", 2, 2, {"s1": 2})
        ]
        held["a"] = Holdings(1, {"s2": 1})  # a's clients went away: the next heartbeat says so
        await nodes[0].heartbeat()
        assert await reader.presence() == {"s1": 2, "s2": 1}
        await nodes[1].stop()  # a clean stop removes the entry at once
        assert [n.node_id for n in await reader.nodes()] == ["a"]
    finally:
        for node in nodes:
            await node.stop()
        await reader.stop()


async def test_a_dead_node_vanishes_when_its_ttl_runs_out(bus_url: str) -> None:
    node = ConnectionRegistry(bus_url, "doomed", lambda: Holdings(1, {"s1": 1}), interval_s=60, ttl_s=2)
    reader = ConnectionRegistry(bus_url, "reader", ttl_s=2)
    try:
        await node.heartbeat()  # one beat and no more, as a node killed right after
        assert await reader.presence() == {"s1": 1}
        deadline = time.monotonic() + 5
        while await reader.presence():
            assert time.monotonic() < deadline, "the dead node's entry did not expire"
            await asyncio.sleep(0.05)
        assert await reader.client.exists(node.node_key("doomed")) == 0
        assert await reader.client.zcard(reader.nodes_key) == 0
    finally:
        await reader.stop()
        await node.stop()


async def test_a_gateway_role_registers_itself(bus_url: str, tmp_path: Path) -> None:
    settings = Settings(store=f"sqlite:///{tmp_path / 's.db'}", bus=bus_url, port=0)
    reader = ConnectionRegistry(bus_url, "reader")
    try:
        async with running_roles(settings, ["gateway"], NodeOptions(node_id="gw-reg")) as (_app, services):
            assert services.hub is not None
            assert hub_holdings(services.hub) == Holdings(0, {})
            assert [n.node_id for n in await reader.nodes()] == ["gw-reg"]
        assert await reader.nodes() == []  # a clean stop removes the entry
    finally:
        await reader.stop()
