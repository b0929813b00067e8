"""Acceptance: bad input of every kind gets a clear error or status; nothing crashes; other clients keep receiving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.harness import ServerProcess, Subscriber, wait_for, write_atomically
from tests.e2e.upstream import Upstream

pytestmark = pytest.mark.slow


async def _recv(ws, timeout_s: float = 5.0) -> dict:  # type: ignore[no-untyped-def]
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s)))


async def test_bad_frames_get_errors_and_others_keep_receiving(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_atomically(path, "a\n1\n")
    source = server.add_source("file", {"path": str(path)}, poll_interval_s=30)["id"]
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1)
    bystander = await Subscriber(server.ws, source).subscribe()
    await bystander.wait_version(1)

    async with connect(server.ws) as ws:
        await ws.send("{not json")
        assert (await _recv(ws))["code"] == "bad_json"
        await ws.send('{"type": "dance"}')
        assert (await _recv(ws))["code"] == "unknown_type"
        await ws.send('[1, 2]')
        assert (await _recv(ws))["code"] == "unknown_type"
        await ws.send('{"type": "subscribe", "id": "x"}')
        error = await _recv(ws)
        assert error["code"] == "invalid_message" and "source" in error["message"]
        await ws.send('{"type": "subscribe", "id": "y", "source": "no-such-source"}')
        error = await _recv(ws)
        assert error["code"] == "unknown_source" and error["id"] == "y"
        await ws.send('{"type": "ping", "id": "p"}')
        assert await _recv(ws) == {"type": "pong", "id": "p"}  # still serving this connection

    async with connect(server.ws, max_size=None) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    write_atomically(path, "a\n2\n")
    await asyncio.to_thread(server.refresh, source)
    await bystander.wait_version(2)
    await bystander.close()
    assert bystander.versions() == [2]
    assert not bystander.of_type("error")


async def test_invalid_rest_payloads_get_422_with_field_errors(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        response = await http.post("/v1/sources", json={"config": {}})
        assert response.status_code == 422
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert any("kind" in f for f in fields)
        response = await http.post("/v1/sources", json={"kind": "file", "config": {}})
        assert response.status_code == 422 and "path" in response.json()["error"]["message"]
        response = await http.post("/v1/sources", json={"kind": "ftp", "config": {"url": "x"}})
        assert response.status_code == 422 and "ftp" in response.json()["error"]["message"]
        response = await http.post("/v1/sources", content=b"{oops", headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert (await http.get("/v1/sources/nope")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


async def test_unreadable_and_half_written_files_set_error_then_recover(server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    write_atomically(path, '{"tabs": [{"id": 0, "title": "T", "rows": [["a"], ["1"]]}]}')
    source = server.add_source("file", {"path": str(path)}, poll_interval_s=0.2)["id"]
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1)
    sub = await Subscriber(server.ws, source).subscribe()
    await sub.wait_version(1)

    path.write_text('{"tabs": [{"id": 0, "title": "T", "rows": [["a"], ["2"')  # half-written, stays that way
    await asyncio.to_thread(
        wait_for, lambda: server.source(source)["status"]["state"] == "error", 15.0, "status error"
    )
    status = server.source(source)["status"]
    assert "book.json" in status["message"]
    path.unlink()
    await asyncio.to_thread(
        wait_for, lambda: server.source(source)["status"]["message"] not in (None, status["message"]), 15.0, "missing"
    )
    assert "book.json" in server.source(source)["status"]["message"]

    write_atomically(path, '{"tabs": [{"id": 0, "title": "T", "rows": [["a"], ["3"]]}]}')
    await asyncio.to_thread(wait_for, lambda: server.source(source)["status"]["state"] == "ok", 20.0, "recovery")
    await sub.wait_version(2)
    await sub.close()
    # No bogus intermediate version: the only change is 1 -> 3.
    assert sub.versions() == [2]
    [change] = sub.of_type("change")
    assert change["ops"] == [{"op": "set", "tab": 0, "row": 1, "col": 0, "a1": "A2", "old": "1", "new": "3"}]


async def test_http_source_500_and_garbage_set_error_then_recover(server: ServerProcess, upstream: Upstream) -> None:
    source = server.add_source("http_csv", {"url": upstream.url}, poll_interval_s=0.2)["id"]
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1)

    upstream.mode = "500"
    await asyncio.to_thread(wait_for, lambda: server.source(source)["status"]["state"] == "error", 15.0)
    assert "500" in server.source(source)["status"]["message"]

    upstream.mode = "garbage"
    await asyncio.to_thread(
        wait_for, lambda: "500" not in (server.source(source)["status"]["message"] or "500"), 20.0, "garbage error"
    )
    assert server.source(source)["status"]["state"] == "error"
    assert server.source(source)["version"] == 1

    upstream.mode, upstream.body = "good", b"a,b\n1,3\n"
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] == 2, 30.0, "recovery")
    assert server.source(source)["status"]["state"] == "ok"
