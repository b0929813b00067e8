"""No connection token ever reaches a log line: a real server logging at info level, tokens sent every way."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.e2e.harness import ServerProcess, free_port, wait_for

from .conftest import recv, send, subscribe
from .test_auth import SECRET, claims, closed_with, hs256, refused, with_query_token

pytestmark = pytest.mark.slow


async def _every_way_to_send_a_token(url: str, source: str) -> list[str]:
    """Connect with good, expired, forged and narrow tokens, renew, flood; return the tokens used."""
    good, narrow = hs256(claims()), hs256(claims(["not-this-one"]))
    expired = hs256({**claims(), "exp": int(time.time()) - 5})
    forged = hs256(claims(), "some other secret, thirty-two bytes or more")
    soon = hs256({**claims(), "sub": "bob", "exp": int(time.time()) + 2})
    assert await refused(with_query_token(url, expired)) == (4001, "invalid token: expired")
    assert (await refused(url, additional_headers={"Authorization": f"Bearer {forged}"}))[0] == 4001
    async with connect(with_query_token(url, narrow)) as ws:
        await send(ws, {"type": "subscribe", "id": 1, "source": source})
        assert (await recv(ws))["code"] == "forbidden_source"
    async with connect(url, additional_headers={"Authorization": f"Bearer {good}"}) as ws:
        await subscribe(ws, source)
        await send(ws, {"type": "auth", "id": 2, "token": narrow})
        assert (await recv(ws))["type"] == "authenticated"
        await send(ws, {"type": "auth", "id": 3, "token": forged})
        assert (await closed_with(ws))[:2] == (4001, "invalid token: bad signature")
    async with connect(with_query_token(url, soon)) as ws:
        assert (await closed_with(ws))[:2] == (4001, "token expired")  # after token_expired and the grace
    async with connect(with_query_token(url, good)) as ws:
        for n in range(20):
            await send(ws, {"type": "ping", "id": n})
        assert (await closed_with(ws))[:2] == (4029, "rate limited")
    return [good, narrow, expired, forged, soon]


async def test_tokens_never_reach_the_logs_on_either_endpoint(tmp_path: Path) -> None:
    ws_port = free_port()
    server = ServerProcess(
        tmp_path,
        *("--log-level", "info", "--jwt-secret", SECRET, "--ws-port", str(ws_port), "--token-grace-s", "0.2"),
        *("--max-messages-per-s", "1", "--max-messages-burst", "10"),
    ).start()
    try:
        csv = tmp_path / "s.csv"
        csv.write_text("a,b\n1,2\n")
        source = server.add_source("file", {"path": str(csv)}, poll_interval_s=60)["id"]
        await asyncio.to_thread(
            wait_for, lambda: server.source(source)["version"] >= 1, what="the first read"
        )
        tokens = [
            token
            for url in (server.ws, f"ws://127.0.0.1:{ws_port}/v1/ws")
            for token in await _every_way_to_send_a_token(url, source)
        ]
    finally:
        server.stop()
    log = server.log_path.read_text()
    # The logs did speak of every one of these connections, by subject and reason ...
    assert log.count("websocket refused") >= 4 and log.count("auth refused") == 2
    assert log.count("connection token expired") == 2 and '"subject": "bob"' in log
    assert log.count("websocket rate limited") == 2
    assert "token=[redacted]" in log  # uvicorn's line for each WebSocket, query string and all
    # ... and never of a token, nor of its signature alone.
    for token in tokens:
        assert token not in log and token.rsplit(".", 1)[1] not in log
