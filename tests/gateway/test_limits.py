"""Origins and limits on `/v1/ws`, on both transports: allowed origins, message and connection rates, subscriptions."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin

from sheetstream.runtime.settings import Settings
from tests.observability.samples import value

from .conftest import recv, send
from .test_auth import SECRET, claims, closed_with, hs256, refused, serving, streams, with_query_token

TRANSPORTS = pytest.mark.parametrize("transport", ["asgi", "picows"])
OPEN = {"anonymous": True}


@TRANSPORTS
async def test_by_default_only_pages_of_the_servers_own_host_may_connect(transport: str) -> None:
    async with serving(transport, Settings(**OPEN)) as stack:
        own = Origin(f"http://{stack.url.split('/')[2]}")  # http://127.0.0.1:PORT, the Host the client sends
        for origin in (None, own):  # no Origin at all: not a browser
            async with connect(stack.url, origin=origin) as ws:
                await streams(stack, ws)
        before = value("sheetstream_ws_rejections_total", reason="forbidden_origin")
        # Only the host and port are compared with Host: a page served over https by a proxy in front is fine.
        for origin in ("http://evil.example", "http://127.0.0.1:1", "http://localhost", "null", "garbage"):
            assert await refused(stack.url, origin=Origin(origin)) == (4003, "origin not allowed"), origin
        assert value("sheetstream_ws_rejections_total", reason="forbidden_origin") == before + 5


@TRANSPORTS
async def test_listed_origins_and_the_wildcard(transport: str) -> None:
    settings = Settings(**OPEN, allowed_origins=("https://app.example", "HTTP://Other.Example:8080/"))
    async with serving(transport, settings) as stack:
        own = f"http://{stack.url.split('/')[2]}"
        for origin in ("https://app.example", "https://app.example:443", "http://other.example:8080"):
            async with connect(stack.url, origin=Origin(origin)) as ws:
                await streams(stack, ws)
        for origin in (own, "https://app.example:8443", "http://app.example", "https://evil.example"):
            assert await refused(stack.url, origin=Origin(origin)) == (4003, "origin not allowed"), origin
    async with (
        serving(transport, Settings(**OPEN, allowed_origins=("*",))) as stack,
        connect(stack.url, origin=Origin("https://anywhere.example")) as ws,
    ):
        await streams(stack, ws)


@TRANSPORTS
async def test_checks_run_in_order_rate_then_origin_then_token(transport: str) -> None:
    async with serving(transport, Settings(jwt_secret=SECRET, connections_per_ip_per_min=2)) as stack:
        bad_origin = Origin("http://evil.example")
        assert await refused(stack.url, origin=bad_origin) == (4003, "origin not allowed")  # not 4001
        assert await refused(stack.url) == (4001, "missing token")
        # Over the rate: 4029 whatever else is wrong (or right).
        assert await refused(stack.url, origin=bad_origin) == (4029, "rate limited: too many new connections")
        assert (await refused(with_query_token(stack.url, hs256(claims()))))[0] == 4029


@TRANSPORTS
async def test_too_many_new_connections_from_one_ip_are_closed_while_open_ones_keep_streaming(
    transport: str,
) -> None:
    before = value("sheetstream_ws_rejections_total", reason="rate_limited")
    async with (
        serving(transport, Settings(**OPEN, connections_per_ip_per_min=3)) as stack,
        connect(stack.url) as first,
        connect(stack.url) as second,
    ):
        await streams(stack, first)
        await streams(stack, second)
        async with connect(stack.url) as third:
            await send(third, {"type": "ping", "id": 1})
            assert await recv(third) == {"type": "pong", "id": 1}
        for _ in range(2):
            assert await refused(stack.url) == (4029, "rate limited: too many new connections")
        await stack.commit()
        assert (await recv(first))["type"] == (await recv(second))["type"] == "change"
    assert value("sheetstream_ws_rejections_total", reason="rate_limited") == before + 2
    async with serving(transport, Settings(**OPEN, connections_per_ip_per_min=0)) as stack:  # 0: no limit
        for _ in range(5):
            async with connect(stack.url) as ws:
                await send(ws, {"type": "ping", "id": 1})
                assert await recv(ws) == {"type": "pong", "id": 1}


@TRANSPORTS
async def test_a_client_sending_too_fast_is_closed_with_4029_and_others_are_unaffected(
    transport: str,
) -> None:
    settings = Settings(**OPEN, max_messages_per_s=1, max_messages_burst=3)
    async with (
        serving(transport, settings) as stack,
        connect(stack.url) as calm,
        connect(stack.url) as chatty,
    ):
        await streams(stack, calm)
        for n in range(10):
            await send(chatty, {"type": "ping", "id": n})
        code, reason, seen = await closed_with(chatty)
        assert (code, reason) == (4029, "rate limited")
        assert 3 <= len(seen) < 10 and all(m["type"] == "pong" for m in seen)
        await stack.commit()
        assert (await recv(calm))["type"] == "change"
        await send(calm, {"type": "ping", "id": "still"})
        assert await recv(calm) == {"type": "pong", "id": "still"}


@TRANSPORTS
async def test_message_rate_zero_means_no_limit(transport: str) -> None:
    async with (
        serving(transport, Settings(**OPEN, max_messages_per_s=0, max_messages_burst=1)) as stack,
        connect(stack.url) as ws,
    ):
        for n in range(300):
            await send(ws, {"type": "ping", "id": n})
        assert [(await recv(ws))["id"] for _ in range(300)] == list(range(300))


@TRANSPORTS
async def test_the_subscription_limit_comes_from_the_settings(transport: str) -> None:
    async with serving(transport, Settings(**OPEN, max_subscriptions=1)) as stack:
        other = await stack.add_source()
        async with connect(stack.url) as ws:
            await streams(stack, ws)
            await send(ws, {"type": "subscribe", "id": "2", "source": other})
            error = await recv(ws)
            assert (error["code"], error["message"]) == (
                "too_many_subscriptions",
                "at most 1 subscriptions per connection; unsubscribe first",
            )
