"""The Python client with connection tokens, against the real gateway on both transports: token functions,
renewal on `token_expired` without a reconnect or a lost change, and refusals that end the stream."""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any

import pytest

from sheetstream.client import ClientError, Event, subscribe
from sheetstream.runtime.settings import Settings
from tests.gateway.conftest import wait_for
from tests.gateway.test_auth import SECRET, claims, hs256, serving

TRANSPORTS = pytest.mark.parametrize("transport", ["asgi", "picows"])


@TRANSPORTS
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_token_function_renews_an_expired_token_on_the_same_connection(
    transport: str, asynchronous: bool
) -> None:
    issued: list[str] = []

    def mint() -> str:
        # The first token expires within two seconds, the next ones in an hour.
        ttl = 2.0 if not issued else 3600.0
        issued.append(hs256({**claims(), "exp": int(time.time() + ttl)}))
        return issued[-1]

    async def mint_async() -> str:
        await asyncio.sleep(0)
        return mint()

    async with serving(transport, Settings(jwt_secret=SECRET, token_grace_s=30)) as stack:
        events: list[Event] = []

        async def follow() -> None:
            stream = subscribe(stack.url, stack.source, token=mint_async if asynchronous else mint)
            async with aclosing(stream):
                async for event in stream:
                    events.append(event)

        task = asyncio.create_task(follow())
        try:
            await wait_for(lambda: any(e.type == "snapshot" for e in events), "the snapshot")
            await stack.commit()
            await wait_for(lambda: len(issued) == 2, "the renewal after token_expired")
            await stack.commit()
            await stack.commit()
            await wait_for(lambda: sum(e.type == "change" for e in events) == 3, "three changes")
            [conn_id] = stack.hub.sessions
            assert stack.hub.tokens.subject(conn_id) == "ada"  # renewed: its expiry is timed again
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert [e.type for e in events] == ["subscribed", "snapshot", "change", "change", "change"]
        assert [e.version for e in events if e.type == "change"] == [1, 2, 3]  # one connection, no gap


async def _first_error(url: str, source: str, **options: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        stream = subscribe(url, source, backoff_initial_s=0.01, backoff_max_s=0.02, **options)
        async with aclosing(stream):
            await asyncio.wait_for(anext(stream), 10)
            async for _ in stream:
                pass
    return info.value


@TRANSPORTS
async def test_refusals_end_the_stream_instead_of_retrying(transport: str) -> None:
    async with serving(transport, Settings(jwt_secret=SECRET)) as stack:
        other = await stack.add_source()
        error = await _first_error(stack.url, other, token=hs256(claims([stack.source])))
        assert error.code == "forbidden_source" and other in str(error)
        error = await _first_error(stack.url, stack.source)
        assert (error.code, str(error)) == ("unauthorized", "unauthorized: missing token")
        error = await _first_error(stack.url, stack.source, token=lambda: hs256(claims(), "x" * 32))
        assert str(error) == "unauthorized: invalid token: bad signature"
