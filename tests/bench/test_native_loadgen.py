"""The fan-out benchmark's C load generator (`benchmarks/native_client.py`) against real servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from benchmarks import bench_fanout, native_client
from benchmarks.loadgen import Deflated

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None and not os.environ.get("CI"),
    reason="no C compiler: the native load generator is compiled on first use",
)


@pytest.fixture(scope="module")
def wsload() -> Path:
    return native_client.binary()


def test_dump_records_read_back_with_their_flags(tmp_path: Path) -> None:
    dump = tmp_path / "messages.bin"
    dump.write_bytes(
        native_client.RECORD.pack(3, 5, 1.5, 0)
        + b"hello"
        + native_client.RECORD.pack(4, 2, 2.25, 1)
        + b"\x01\x02"
    )
    messages = native_client.read_dump(dump)
    assert messages == [(3, b"hello", 1.5), (4, b"\x01\x02", 2.25)]
    assert not isinstance(messages[0][1], Deflated)
    assert isinstance(messages[1][1], Deflated)


def test_binary_is_rebuilt_when_its_source_is_newer(wsload: Path) -> None:
    built = wsload.stat().st_mtime
    os.utime(wsload, (built - 3600, built - 3600))  # older than its source now
    try:
        assert native_client.binary() == wsload
        assert wsload.stat().st_mtime > built - 3600
    finally:
        assert os.access(wsload, os.X_OK)


@pytest.mark.slow
@pytest.mark.parametrize("system", ["fast-deflate", "websockets", "socketio"])
def test_every_phase_delivers_every_version_once(system: str, tmp_path: Path) -> None:
    """A whole benchmark run (paced, burst, readers stopped by SIGSTOP on wsload) through the native client."""
    figures = bench_fanout.run_once(system, 40, tmp_path, client="native")
    assert figures["client"] == "native"
    for phase in ("paced", "burst", "isolated"):
        assert figures[f"{phase}_missing"] == 0, phase
        assert figures[f"{phase}_duplicates"] == 0, phase
    assert figures["dropped_connections"] == 0
    assert figures["burst_rate"] > 0
    assert 0 < figures["burst_p50_ms"] <= figures["burst_p99_ms"] < 10_000
    assert figures["burst_loadgen_cpu_pct"] is not None and 0 < figures["burst_loadgen_cpu_pct"] < 200
    if system == "fast-deflate":
        assert figures["frame_bytes"] < 180, (
            "the change frames came compressed (and were inflated to be read)"
        )


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def subscribe_against(wsload: Path, handler: Handler, connections: int, *options: str) -> dict[str, Any]:
    """Run wsload against a TCP server of `handler` until every connection settled; its `subscribed` answer."""

    async def scenario() -> dict[str, Any]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            process = await asyncio.create_subprocess_exec(
                str(wsload), "127.0.0.1", str(port), "/v1/ws", str(connections), '{"type":"subscribe"}', *options,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )  # fmt: skip
            assert process.stdout is not None and process.stdin is not None
            line = await asyncio.wait_for(process.stdout.readline(), 10)
            process.stdin.write(b"quit\n")
            await process.stdin.drain()
            closed = orjson.loads(await asyncio.wait_for(process.stdout.readline(), 10))
            assert closed["event"] == "closed"
            assert await process.wait() == 0
            subscribed: dict[str, Any] = orjson.loads(line)
            assert subscribed["event"] == "subscribed"
            return subscribed

    return asyncio.run(scenario())


def test_a_refused_upgrade_is_a_failed_connection_with_its_reason(wsload: Path) -> None:
    async def not_websocket(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    subscribed = subscribe_against(wsload, not_websocket, 3)
    assert subscribed["connections"] == 0
    assert subscribed["failed"] == 3
    assert "upgrade refused: HTTP/1.1 404 Not Found" in subscribed["errors"][0]


def test_a_server_that_never_answers_fails_after_the_open_timeout(wsload: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # say nothing until wsload gives up and closes
        writer.close()
        await writer.wait_closed()

    subscribed = subscribe_against(wsload, silent, 2, "--open-timeout", "1")
    assert subscribed["connections"] == 0
    assert subscribed["failed"] == 2
    assert subscribed["seconds"] >= 1
    assert "no snapshot within 1 s" in subscribed["errors"][0]


def test_usage_error_names_the_arguments(wsload: Path) -> None:
    result = subprocess.run([str(wsload), "127.0.0.1"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage: wsload HOST PORT PATH CONNECTIONS SUBSCRIBE" in result.stderr
