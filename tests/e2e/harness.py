"""A sheetstream server as a real child process, and helpers to drive it with real clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChildProcess:
    """A `sheetstream` command in a child process on its own port, logging to a file; `cmd()` says which."""

    def __init__(self, workdir: Path, log_name: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def cmd(self) -> list[str]:
        """The command line to run."""
        raise NotImplementedError

    def launch(self) -> Self:
        """Start the process without waiting for it."""
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd(), cwd=self.workdir, stdout=self._log, stderr=self._log, env={**os.environ}
        )
        return self

    def ready(self) -> bool:
        """Whether /readyz answers 200; RuntimeError if the process has died."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.log_path.stem} exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.http + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; close the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None


class ServerProcess(ChildProcess):
    """`sheetstream serve` in a child process, on its own port and SQLite file."""

    def __init__(self, workdir: Path, *extra: str, port: int | None = None) -> None:
        port = port or free_port()
        super().__init__(workdir, f"server-{port}.log", port)
        self.db = workdir / "sheetstream.db"
        self.extra = extra

    def cmd(self) -> list[str]:
        return [
            sys.executable, "-m", "sheetstream", "serve", "--port", str(self.port),
            "--store", f"sqlite:///{self.db}", "--log-level", "warning",
            "--anonymous",  # these tests are about streaming, not credentials (tests/gateway/test_auth.py)
            *self.extra,
        ]

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        """Start the process and wait until /readyz answers 200."""
        self.launch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout_s} s:\n{self.log_path.read_text()}")

    def add_source(self, kind: str, config: dict[str, Any], **fields: Any) -> dict[str, Any]:
        response = httpx.post(self.http + "/v1/sources", json={"kind": kind, "config": config, **fields}, timeout=10)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def source(self, source_id: str) -> dict[str, Any]:
        return dict(httpx.get(f"{self.http}/v1/sources/{source_id}", timeout=10).json())

    def refresh(self, source_id: str) -> None:
        assert httpx.post(f"{self.http}/v1/sources/{source_id}/refresh", timeout=10).status_code == 202


def wait_for(predicate: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds, or fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def write_atomically(path: Path, text: str) -> None:
    """Replace a file's content the way editors do: write a temporary file, then rename it over."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_tabs(path: Path, tabs: list[dict[str, Any]]) -> None:
    """Write a JSON source file with explicit tab ids."""
    write_atomically(path, json.dumps({"tabs": tabs}))


class Subscriber:
    """A real `websockets` client subscribed to one source, recording every message."""

    def __init__(self, url: str, source: str) -> None:
        self.url = url
        self.source = source
        self.messages: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self, since: tuple[str, int] | None = None) -> Subscriber:
        self.ws = await connect(self.url, max_size=None)
        message: dict[str, Any] = {"type": "subscribe", "id": "s1", "source": self.source}
        if since is not None:
            message["since"] = {"epoch": since[0], "version": since[1]}
        await self.ws.send(orjson.dumps(message).decode())
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            self.messages.append(orjson.loads(frame))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def versions(self) -> list[int]:
        return [m["version"] for m in self.of_type("change")]

    async def wait_version(self, version: int, timeout_s: float = 15.0) -> None:
        """Wait until a change (or snapshot) at `version` or later has arrived."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            seen = [m["version"] for m in self.messages if m.get("type") in ("change", "snapshot")]
            if seen and max(seen) >= version:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"subscriber did not reach version {version}; last messages: {self.messages[-3:]}")
