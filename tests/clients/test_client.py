"""The Python client against a scripted `websockets` server: resume, gaps, duplicates, tokens, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from sheetstream import client as client_module
from sheetstream.client import ClientError, Event, LocalCopy, apply, backoff_delay, subscribe, with_token
from sheetstream.core.apply import apply as core_apply
from sheetstream.core.model import Snapshot, Tab

Script = Callable[[ServerConnection, list[dict[str, Any]]], Awaitable[None]]
SOURCE = "src1"
TABS = [{"id": 0, "title": "T", "rows": [["a", "1"], ["b", "2"]]}]


def _subscribed(version: int, recovered: bool) -> dict[str, Any]:
    return {
        "type": "subscribed",
        "id": "1",
        "source": SOURCE,
        "epoch": "e",
        "version": version,
        "recovered": recovered,
    }


def _change(version: int, new: str, old: str) -> dict[str, Any]:
    op = {"op": "set", "tab": 0, "row": 1, "col": 1, "a1": "B2", "old": old, "new": new}
    return {
        "type": "change",
        "source": SOURCE,
        "epoch": "e",
        "version": version,
        "at": "2025-01-31T12:00:00.000Z",
        "ops": [op],
    }


async def _send(ws: ServerConnection, *messages: dict[str, Any]) -> None:
    for message in messages:
        await ws.send(orjson.dumps(message).decode())


async def _receive(ws: ServerConnection, log: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await ws.recv())
    log.append(message)
    return message


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[dict[str, Any]], list[ServerConnection]]]:
    """A server on an ephemeral port that runs `script` for every connection; yields (url, received, connections)."""
    received: list[dict[str, Any]] = []
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await script(ws, received)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/ws", received, connections


async def _collect(url: str, until: Callable[[list[Event]], bool], **kwargs: Any) -> list[Event]:
    events: list[Event] = []

    async def run() -> None:
        stream = subscribe(url, SOURCE, backoff_initial_s=0.01, backoff_max_s=0.02, **kwargs)
        async with aclosing(stream):
            async for event in stream:
                events.append(event)
                if until(events):
                    return

    await asyncio.wait_for(run(), 10)
    return events


def _versions(events: list[Event]) -> list[int | None]:
    return [e.version for e in events if e.type == "change"]


async def test_a_gap_resubscribes_with_since_on_the_same_connection_and_duplicates_are_dropped() -> None:
    async def script(ws: ServerConnection, log: list[dict[str, Any]]) -> None:
        await _receive(ws, log)
        await _send(
            ws,
            _subscribed(0, False),
            {"type": "snapshot", "source": SOURCE, "epoch": "e", "version": 0, "tabs": TABS},
        )
        await _send(
            ws, _change(1, "x", "2"), _change(1, "x", "2"), _change(3, "z", "y")
        )  # a duplicate, a gap
        unsubscribe = await _receive(ws, log)
        await _send(ws, _change(4, "w", "z"))  # in flight from the old subscription: dropped
        await _send(ws, {"type": "unsubscribed", "id": unsubscribe["id"], "source": SOURCE})
        await _receive(ws, log)
        await _send(
            ws, _subscribed(1, True), _change(2, "y", "x"), _change(3, "z", "y"), _change(4, "w", "z")
        )
        await ws.wait_closed()

    async with scripted(script) as (url, received, connections):
        copy = LocalCopy()
        events = await _collect(url, lambda ev: copy.update(ev[-1]) or copy.version == 4)

    assert _versions(events) == [1, 2, 3, 4]
    assert len(connections) == 1, "a gap must not cost a reconnect"
    assert [m["type"] for m in received] == ["subscribe", "unsubscribe", "subscribe"]
    assert received[2]["since"] == {"epoch": "e", "version": 1}
    assert [e.recovered for e in events if e.type == "subscribed"] == [False, True]
    assert copy.snapshot == Snapshot((Tab(0, "T", (("a", "1"), ("b", "w"))),))


async def test_after_a_dropped_connection_it_resumes_from_the_last_version_it_yielded() -> None:
    async def script(ws: ServerConnection, log: list[dict[str, Any]]) -> None:
        request = await _receive(ws, log)
        if "since" not in request:
            await _send(
                ws,
                _subscribed(0, False),
                {"type": "snapshot", "source": SOURCE, "epoch": "e", "version": 0, "tabs": TABS},
                _change(1, "x", "2"),
            )
            await ws.close(1012, "restart")
            return
        await _send(ws, _subscribed(request["since"]["version"], True), _change(2, "y", "x"))
        await ws.wait_closed()

    async with scripted(script) as (url, received, _):
        events = await _collect(url, lambda ev: _versions(ev) == [1, 2])

    assert [e.type for e in events] == [
        "subscribed",
        "snapshot",
        "change",
        "disconnected",
        "subscribed",
        "change",
    ]
    assert received[1]["since"] == {"epoch": "e", "version": 1}
    assert events[3].version == 1 and events[3].reason


async def test_a_token_goes_as_a_bearer_header_and_in_the_query() -> None:
    seen: list[tuple[str, str | None]] = []

    async def script(ws: ServerConnection, log: list[dict[str, Any]]) -> None:
        assert ws.request is not None
        seen.append((ws.request.path, ws.request.headers.get("Authorization")))
        await _receive(ws, log)
        await _send(ws, _subscribed(0, False))
        await ws.wait_closed()

    async with scripted(script) as (url, _, _connections):
        await _collect(url + "?x=1", lambda ev: ev[-1].type == "subscribed", token="s3cret/+")

    assert seen == [("/v1/ws?x=1&token=s3cret%2F%2B", "Bearer s3cret/+")]
    assert with_token("ws://h/v1/ws", None) == "ws://h/v1/ws"


@pytest.mark.parametrize(
    ("refusal", "code"),
    [
        (
            {
                "type": "error",
                "id": "1",
                "code": "unknown_source",
                "message": "no such source",
                "source": SOURCE,
            },
            "unknown_source",
        ),
        ("close 4001", "unauthorized"),
        ("close 4003", "forbidden"),
    ],
)
async def test_a_refusal_for_good_raises_client_error_instead_of_retrying(refusal: Any, code: str) -> None:
    async def script(ws: ServerConnection, log: list[dict[str, Any]]) -> None:
        await _receive(ws, log)
        if isinstance(refusal, dict):
            await _send(ws, refusal)
            await ws.wait_closed()
        else:
            await ws.close(int(refusal.split()[1]), "refused")

    async with scripted(script) as (url, _, connections):
        with pytest.raises(ClientError) as info:
            await _collect(url, lambda ev: False)
    assert info.value.code == code
    assert len(connections) == 1


async def test_an_unavailable_store_means_reconnect_with_backoff() -> None:
    async def script(ws: ServerConnection, log: list[dict[str, Any]]) -> None:
        await _receive(ws, log)
        if len(log) == 1:
            await _send(
                ws,
                {"type": "error", "id": "1", "code": "unavailable", "message": "db down", "source": SOURCE},
            )
        else:
            await _send(ws, _subscribed(0, False))
        await ws.wait_closed()

    async with scripted(script) as (url, _, connections):
        events = await _collect(url, lambda ev: ev[-1].type == "subscribed")
    assert [e.type for e in events] == ["disconnected", "subscribed"]
    assert events[0].reason is not None and "db down" in events[0].reason
    assert len(connections) == 2


def test_backoff_grows_to_its_ceiling_with_jitter_in_the_upper_half() -> None:
    low = [backoff_delay(n, initial_s=0.1, max_s=1.0, jitter=lambda: 0.0) for n in (1, 2, 3, 4, 5, 50)]
    high = [backoff_delay(n, initial_s=0.1, max_s=1.0, jitter=lambda: 1.0) for n in (1, 2, 3, 4, 5, 50)]
    assert low == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5])
    assert high == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_the_apply_helper_is_the_core_one_and_every_name_is_exported() -> None:
    assert apply is core_apply
    assert all(hasattr(client_module, name) for name in client_module.__all__)
