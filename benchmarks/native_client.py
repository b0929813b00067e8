"""The load generator's `native` client: every connection held by `wsload`, a C program with one epoll loop.

`python -m benchmarks.loadgen --client native ...` compiles `benchmarks/native/wsload.c` (with the machine's C
compiler and zlib, once, into `benchmarks/native/build/`), starts it on the same CPU and relays the driver's
commands to it. While the server sends, only `wsload` runs on the client's side: it stamps each message with its
receive time and copies it into memory, about ten times less work per message than the picows client does. At
`collect` this process reads what `wsload` kept and computes the same figures as the Python clients
(`loadgen.summarize`), so every client answers the driver alike. The `subscribed` event names `wsload`'s pid: that
is the process to stop (SIGSTOP) for the readers-stopped figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import orjson

from benchmarks.loadgen import Deflated, Recorder, emit, emit_stats, runqueue_wait_s, subscribe_frame

SOURCE = Path(__file__).parent / "native" / "wsload.c"
BUILD = Path(__file__).parent / "native" / "build"
RECORD = struct.Struct("<IIdI")
"""A dumped message's header: connection, payload length, receive time, flags (1: compressed)."""


class NativeError(RuntimeError):
    """wsload could not be built or stopped answering."""


def binary() -> Path:
    """The `wsload` executable, compiled first if it is missing or older than its source."""
    target = BUILD / "wsload"
    if target.exists() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise NativeError("no C compiler: install gcc (and zlib's headers) for the native load generator")
    BUILD.mkdir(exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=BUILD, prefix=".wsload-")
    os.close(fd)
    built = subprocess.run(
        [compiler, "-O2", "-Wall", "-o", partial, str(SOURCE), "-lz"],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        os.unlink(partial)
        raise NativeError(f"compiling {SOURCE.name} failed:\n{built.stderr}")
    os.replace(partial, target)  # atomic: two load generators building at once both get a whole binary
    return target


def read_dump(path: Path) -> list[tuple[int, bytes, float]]:
    """The messages of one dump as (connection, payload, receive time); compressed payloads are `Deflated`."""
    data = path.read_bytes()
    messages: list[tuple[int, bytes, float]] = []
    offset, end, head = 0, len(data), RECORD.size
    while offset < end:
        index, size, received, flags = RECORD.unpack_from(data, offset)
        payload = data[offset + head : offset + head + size]
        messages.append((index, Deflated(payload) if flags & 1 else payload, received))
        offset += head + size
    return messages


class Wsload:
    """A running `wsload` and its JSON-line answers."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout

    def send(self, command: str) -> None:
        self.stdin.write(command.encode() + b"\n")
        self.stdin.flush()

    def expect(self, event: str) -> dict[str, Any]:
        line = self.stdout.readline()
        if not line:
            raise NativeError(
                f"wsload exited (code {self.process.wait()}) while the driver waited for {event!r}"
            )
        answer: dict[str, Any] = orjson.loads(line)
        if answer.get("event") != event:
            raise NativeError(f"wsload answered {answer} where {event!r} was expected")
        return answer


def collect(
    wsload: Wsload, rec: Recorder, connections: int, vmin: int, vmax: int, idle_s: float, dump: Path
) -> dict[str, Any]:
    """Wait until every connection has every version in vmin..vmax (or `idle_s` passed without a message) and
    decode what arrived into `rec.records`; return wsload's last `waited` answer (CPU and wall time)."""
    expected = connections * (vmax - vmin + 1)
    seen: set[tuple[int, int]] = set()
    count = expected
    while True:
        wsload.send(f"wait {count} {idle_s}")
        waited = wsload.expect("waited")
        wsload.send(f"dump {dump}")
        wsload.expect("dumped")
        scanned = len(rec.records)
        rec.raw = read_dump(dump)
        rec.decode_raw()
        seen.update(
            (index, version) for index, version, _, _ in rec.records[scanned:] if vmin <= version <= vmax
        )
        if len(seen) >= expected or waited["idle"]:
            return waited
        # A count alone cannot tell a duplicate or a version outside the range from a missing message.
        count = expected - len(seen)


def main(args: argparse.Namespace, socketio: bool, deflate: bool) -> None:
    """Hold `args.connections` subscribers in wsload and answer the driver's commands (see `benchmarks.loadgen`)."""
    url = urlsplit(args.url)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    argv = [
        str(binary()), url.hostname or "127.0.0.1", str(url.port or 80), path, str(args.connections),
        subscribe_frame(args.source).decode(), "--concurrency", str(args.connect_concurrency),
        *(["--socketio"] if socketio else []), *(["--deflate"] if deflate else []),
    ]  # fmt: skip
    wsload = Wsload(argv)
    rec = Recorder(socketio=socketio)
    with tempfile.TemporaryDirectory(prefix="wsload-") as tmp:
        dump = Path(tmp) / "messages.bin"
        try:
            subscribed = wsload.expect("subscribed")
            emit(**subscribed, client="native", loop="epoll (C)", pid=wsload.process.pid)
            wait_mark = 0.0
            for line in sys.stdin:
                command = orjson.loads(line)
                cmd = command.get("cmd")
                if cmd == "mark":
                    wsload.send("mark")
                    wsload.expect("marked")
                    wait_mark = runqueue_wait_s(wsload.process.pid)
                    emit("marked")
                elif cmd == "collect":
                    vmin, vmax = int(command["vmin"]), int(command["vmax"])
                    idle_s = float(command.get("idle_s", 15))
                    waited = collect(wsload, rec, args.connections, vmin, vmax, idle_s, dump)
                    rec.dropped = waited["dropped"]
                    rec.errors = waited["errors"]
                    wait = runqueue_wait_s(wsload.process.pid) - wait_mark
                    emit_stats(rec, args.connections, vmin, vmax, waited["cpu_s"], waited["wall_s"], wait)
                elif cmd == "quit":
                    break
            wsload.send("quit")
            closed = wsload.expect("closed")
            emit("closed", closed=closed["closed"])
        finally:
            if wsload.process.poll() is None:
                wsload.process.kill()
            wsload.process.wait()
