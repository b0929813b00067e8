"""The systems the fan-out benchmark measures, each a child process pinned to CPU 0 and driven the same way.

- `Sheetstream`: the real server (`python -m sheetstream serve`, SQLite store, a CSV file source), on its ASGI
  `/v1/ws` (`fast=False`) or its picows listener (`--ws-port`, `fast=True`). A change rewrites the CSV (atomically,
  so the source is registered with `settle_s` 0) and calls `POST /v1/sources/{id}/refresh`; the driver learns of
  each new version as a client would, from a WebSocket subscription of its own (one connection more, opened
  before the load generator's), which costs neither side a poll. `untuned=True` runs it with the collector
  tuning of `sheetstream.runtime.gc_tuning` switched off, to show what it changes.
- `Baseline`: a server of `benchmarks/baselines/` (picows, websockets, python-socketio, Node `ws`); a change is a
  command on its stdin, answered once every send returned.

Both run under a probe that logs every garbage collection of 5 ms or more (Python servers only).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

REPO = Path(__file__).resolve().parent.parent
SEND_QUEUE_SIZE = 4096
CSV_ROWS = 10


class BenchError(RuntimeError):
    """The benchmark could not run; the message says which step failed."""


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """`argv` pinned to one CPU with taskset, or unchanged when taskset is missing."""
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


class Child:
    """A child process that speaks JSON lines on stdin/stdout; stderr goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        """The process id (taskset execs the command, so this is the server's own process)."""
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, **command: Any) -> None:
        """Write one JSON command line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """The next JSON line, which must be `event`; BenchError on EOF, timeout or another event."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"{self.name}: no '{event}' within {timeout:.0f} s{self.log_tail()}") from None
            if line is None:
                raise BenchError(f"{self.name} exited (code {self.proc.poll()}) before '{event}'{self.log_tail()}")
            if not line.startswith("{"):
                continue  # something printed by a library; not for us
            message: dict[str, Any] = json.loads(line)
            if message.get("event") == event:
                return message
            raise BenchError(f"{self.name}: expected '{event}', got {message}")

    def log_tail(self, lines: int = 15) -> str:
        """The end of the child's stderr, for error messages."""
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n  stderr: " + "\n  ".join(text)) if text else ""

    def stop(self, timeout: float = 20) -> None:
        """Ask the process to stop (SIGTERM: a background shell's children ignore SIGINT), then kill it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        self._log.close()


# Runs a module as `python -m` would, after hooking the garbage collector: every collection of 5 ms or more is
# appended to a log file as "<time.time()> <generation> <milliseconds>", so the driver can tell a pause of the
# whole server process apart from slow sending. With "untuned" it first disables sheetstream's collector tuning.
GC_PROBE = """
import gc, runpy, sys, time
log = open(sys.argv[1], "a", buffering=1)
if sys.argv[2] == "untuned":
    import sheetstream.runtime.gc_tuning as tuning
    tuning.tune_collector = lambda *args, **kwargs: None
started = [0.0]
def probe(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
        return
    ms = 1000 * (time.perf_counter() - started[0])
    if ms >= 5:
        log.write(f"{time.time()} {info['generation']} {ms:.1f}\\n")
gc.callbacks.append(probe)
module = sys.argv[3]
sys.argv = [module, *sys.argv[4:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def probed(log: Path, module: str, *args: str, untuned: bool = False) -> list[str]:
    """`python -m module args` with the garbage-collection probe logging to `log`."""
    return [sys.executable, "-c", GC_PROBE, str(log), "untuned" if untuned else "tuned", module, *args]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def csv_text(value: int) -> str:
    """The benchmark's CSV file: CSV_ROWS rows of 4 columns; cell B2 holds `value`."""
    rows = ["id,value,name,city"]
    for i in range(1, CSV_ROWS + 1):
        rows.append(f"{i},{value if i == 1 else i * 10},name {i},city {i}")
    return "\n".join(rows) + "\n"


def set_op(value: int) -> dict[str, Any]:
    """The op one change makes (B2: value-1 -> value), for the baselines to send the same shape and size."""
    return {"op": "set", "tab": 0, "row": 1, "col": 1, "a1": "B2", "old": str(value - 1), "new": str(value)}


@dataclass(frozen=True)
class BaselineKind:
    """How to start one baseline server."""

    label: str
    argv: tuple[str, ...]
    python: bool = True
    protocol: str = "sheetstream"
    path: str = "/v1/ws"


BASELINES: dict[str, BaselineKind] = {
    "picows": BaselineKind("raw picows broadcast", ("benchmarks.baselines.picows_broadcast",)),
    "websockets": BaselineKind("websockets broadcast()", ("benchmarks.baselines.websockets_broadcast",)),
    "socketio": BaselineKind(
        "python-socketio on uvicorn",
        ("benchmarks.baselines.socketio_broadcast",),
        protocol="socketio",
        path="/socket.io/?EIO=4&transport=websocket",
    ),
    "node": BaselineKind(
        "Node ws broadcast", ("node", "benchmarks/baselines/node/ws_broadcast.js"), python=False
    ),
}


NODE_DIR = REPO / "benchmarks" / "baselines" / "node"


def install_node_baseline() -> None:
    """`npm ci` the Node baseline's locked dependencies (ws) once; BenchError without node or npm."""
    if (NODE_DIR / "node_modules" / "ws").is_dir():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise BenchError("the Node ws baseline needs node and npm on PATH")
    done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"npm ci in {NODE_DIR} failed: {done.stderr[-500:]}")


class Baseline:
    """A baseline server in its own process; changes are commands on its stdin."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.kind = BASELINES[name]
        self.workdir = workdir
        self.value = 0
        self.server: Child | None = None
        self.source_id = "baseline"
        self.gc_log = workdir / f"{name}-gc.log"
        self.url = ""
        self.protocol = self.kind.protocol
        self.loadgen_args: tuple[str, ...] = ()

    def start(self) -> None:
        """Start the server and learn its port."""
        if self.name == "node":
            install_node_baseline()
        if self.kind.python:
            argv = probed(self.gc_log, *self.kind.argv, "--port", "0")
        else:
            argv = [*self.kind.argv, "--port", "0"]
        self.server = Child(f"{self.name} server", pinned(0, argv), self.workdir / f"{self.name}.log")
        port = self.server.expect("listening", timeout=60)["port"]
        self.url = f"ws://127.0.0.1:{port}{self.kind.path}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.server is not None
        return self.server.pid

    def version(self) -> int:
        """The last version sent (the server starts at 1)."""
        return 1 + self.value

    def change(self) -> None:
        """Send the next change."""
        assert self.server is not None
        self.value += 1
        self.server.send(cmd="change", source=self.source_id, epoch="baseline", ops=[set_op(self.value)])

    def change_and_wait(self) -> None:
        """Send the next change and wait until every send returned."""
        assert self.server is not None
        self.change()
        self.server.expect("sent", timeout=300)

    def settle(self, changes_sent: int) -> int:
        """Wait for the acks of the paced changes not yet acknowledged; return the final version."""
        assert self.server is not None
        for _ in range(changes_sent):
            self.server.expect("sent", timeout=300)
        return self.version()

    def stop(self) -> None:
        """Stop the server."""
        if self.server is not None:
            with contextlib.suppress(OSError):
                self.server.send(cmd="quit")
            self.server.stop()


class Sheetstream:
    """The real server (`python -m sheetstream serve`) watching a CSV file; a change rewrites the file."""

    protocol = "sheetstream"

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        fast: bool,
        untuned: bool = False,
        deflate: bool = False,
        follow: bool = True,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.fast = fast
        self.untuned = untuned
        self.deflate = deflate
        self.loadgen_args: tuple[str, ...] = ("--deflate",) if deflate else ()
        """Extra load generator options: its clients offer permessage-deflate when the listener compresses."""
        self.value = 0
        self.server: Child | None = None
        self.csv = workdir / "bench.csv"
        self.gc_log = workdir / f"{name}-gc.log"
        self.source_id = ""
        self.url = ""
        self.http: httpx.Client | None = None
        self.db: sqlite3.Connection | None = None
        self.follow = follow
        """Whether the driver subscribes to the source itself (`change_and_wait` needs it)."""
        self.ws: ClientConnection | None = None
        self.seen = 0
        """The last version the driver's own subscription received."""

    def start(self) -> None:
        """Start the server, register the CSV source and wait for its first version."""
        self.csv.write_text(csv_text(self.value))
        self.start_server()
        # `write` replaces the file atomically (a temporary file renamed over it), so a read never sees half a
        # file and there is nothing to wait for: settle_s 0, as docs/rest.md advises for such writers. The
        # default (50 ms) would hold back every read that follows a write by up to that long.
        config: dict[str, Any] = {"path": str(self.csv), "settle_s": 0}
        self.register("file", config, poll_interval_s=30)

    def start_server(self, *extra: str, port: int | None = None) -> int:
        """Start `sheetstream serve` (with `extra` arguments) and wait until it is ready; its REST port."""
        port = port or free_port()
        args = [
            "serve", "--port", str(port), "--store", f"sqlite:///{self.workdir / 'b.db'}", "--log-level", "warning",
            "--send-queue-size", str(SEND_QUEUE_SIZE),
            # Load without credentials, and no limit on the load generator's connections or messages.
            "--anonymous", "--connections-per-ip-per-min", "0", "--max-messages-per-s", "0",
            "--rest-requests-per-min", "0", *extra,
        ]  # fmt: skip
        ws_port = free_port() if self.fast else port
        if self.fast:
            args += ["--ws-port", str(ws_port)]
        if self.deflate:
            args += ["--ws-deflate"]
        argv = pinned(0, probed(self.gc_log, "sheetstream", *args, untuned=self.untuned))
        self.server = Child(f"{self.name} server", argv, self.workdir / f"{self.name}.log")
        self.url = f"ws://127.0.0.1:{ws_port}/v1/ws"
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self._wait_healthy()
        return port

    def register(self, kind: str, config: dict[str, Any], *, poll_interval_s: float) -> None:
        """Register the benchmark's source and wait for its first version."""
        assert self.http is not None
        body = {"kind": kind, "config": config, "poll_interval_s": poll_interval_s}
        response = self.http.post("/v1/sources", json=body)
        if response.status_code != 201:
            raise BenchError(f"POST /v1/sources answered {response.status_code}: {response.text[:300]}")
        self.source_id = response.json()["id"]
        self.db = sqlite3.connect(f"file:{self.workdir / 'b.db'}?mode=ro", uri=True, check_same_thread=False)
        self._wait_version(lambda v: v >= 1, "the first read", timeout=30)
        if not self.follow:
            return
        # Entered as a context manager (websockets 17 deprecates a bare connect()); closed by stop().
        self.ws = ws_connect(self.url, compression=None, max_size=None, open_timeout=30).__enter__()
        self.ws.send(orjson.dumps({"type": "subscribe", "id": "driver", "source": self.source_id}).decode())
        self.seen = self._next_version(lambda message: message["type"] == "snapshot", "its snapshot")

    def _wait_healthy(self) -> None:
        assert self.server is not None and self.http is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.proc.poll() is not None:
                raise BenchError(f"sheetstream serve exited with code {self.server.proc.poll()}{self.server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"sheetstream serve not ready within 60 s{self.server.log_tail()}")

    def _wait_version(self, ok: Any, what: str, timeout: float, poll_s: float = 0.002) -> int:
        deadline = time.monotonic() + timeout
        while True:
            version = self.version()
            if ok(version):
                return version
            if time.monotonic() > deadline:
                raise BenchError(f"source {self.source_id} did not reach {what} in {timeout:.0f} s: {version}")
            time.sleep(poll_s)

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.server is not None
        return self.server.pid

    def version(self) -> int:
        """The source's committed version, read from the store's file (WAL: readers never block the server)."""
        assert self.db is not None
        row = self.db.execute("SELECT version FROM sources WHERE id = ?", (self.source_id,)).fetchone()
        return int(row[0]) if row else 0

    def write(self) -> None:
        """Rewrite the CSV atomically with the next value (temporary file, then rename)."""
        self.value += 1
        tmp = self.csv.with_suffix(".tmp")
        tmp.write_text(csv_text(self.value))
        os.replace(tmp, self.csv)

    def change(self) -> None:
        """Rewrite the CSV and ask for a read now."""
        assert self.http is not None
        self.write()
        response = self.http.post(f"/v1/sources/{self.source_id}/refresh")
        if response.status_code != 202:
            raise BenchError(f"POST refresh answered {response.status_code}: {response.text[:300]}")

    def change_and_wait(self) -> None:
        """Make a change and wait until the driver's own subscription got the next version."""
        before = self.seen
        self.change()
        self.seen = self._next_version(lambda m: m["type"] == "change" and m["version"] > before, "a new version")

    def _next_version(self, wanted: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60) -> int:
        """Read the driver's subscription until a message is `wanted`; its version."""
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = orjson.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                raise BenchError(f"source {self.source_id}: the driver got no {what} in {timeout:.0f} s") from None
            if message["type"] == "error":
                raise BenchError(f"source {self.source_id}: the driver's subscription failed: {message}")
            if wanted(message):
                return int(message["version"])

    def settle(self, changes_sent: int) -> int:
        """Wait until the committed snapshot holds the last value written; return that version."""
        assert self.http is not None
        deadline = time.monotonic() + 60
        want = str(self.value)
        while True:
            response = self.http.get(f"/v1/sources/{self.source_id}/snapshot")
            response.raise_for_status()
            body = response.json()
            rows = body["tabs"][0]["rows"] if body["tabs"] else []
            if len(rows) > 1 and len(rows[1]) > 1 and str(rows[1][1]) == want:
                self.seen = max(self.seen, int(body["version"]))  # what the subscription still holds is older
                return int(body["version"])
            if time.monotonic() > deadline:
                raise BenchError(f"the last change (B2={want}) was not committed within 60 s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server."""
        if self.ws is not None:
            self.ws.close()
        if self.http is not None:
            self.http.close()
        if self.db is not None:
            self.db.close()
        if self.server is not None:
            self.server.stop()


System = Baseline | Sheetstream

# Every system, in the order of the tables: name -> (label, how to make it).
SYSTEMS: dict[str, str] = {
    "fast": "sheetstream, picows listener (--ws-port)",
    "asgi": "sheetstream, ASGI /v1/ws on uvicorn",
    "picows": BASELINES["picows"].label,
    "node": BASELINES["node"].label,
    "websockets": BASELINES["websockets"].label,
    "socketio": BASELINES["socketio"].label,
    "fast-deflate": "sheetstream, picows listener, compress-once deflate (--ws-deflate)",
    "fast-untuned": "sheetstream, picows listener, collector not tuned",
    "asgi-untuned": "sheetstream, ASGI, collector not tuned",
}


def make_system(name: str, workdir: Path) -> System:
    """The system called `name` (a key of SYSTEMS)."""
    if name in BASELINES:
        return Baseline(name, workdir)
    if name not in SYSTEMS:
        raise BenchError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return Sheetstream(
        name,
        workdir,
        fast=name.startswith("fast"),
        untuned=name.endswith("-untuned"),
        deflate=name.endswith("-deflate"),
    )
