"""Load generator for the fan-out benchmark: N WebSocket subscribers in one process, driven over stdin/stdout.

    python -m benchmarks.loadgen --url ws://127.0.0.1:P/v1/ws --source ID --connections N [--client websockets]

Every connection sends `{"type": "subscribe", "id": "1", "source": ID}` and waits for its `snapshot`. Then the
process prints one JSON line `{"event": "subscribed", ...}` and records, for every `change` message, the connection,
the version, the receive time (`time.time()`) and the message's `at`. The driver then sends JSON command lines:

- `{"cmd": "mark"}`: start measuring this process's CPU time; answers `{"event": "marked"}`. From the mark on, a
  message is only stamped with its receive time and kept as it came: it is decoded when the driver collects, so
  that the client's work per message while the server sends is as small as it can be (the fan-out benchmark rejects
  a run in which the load generator, not the server, set the pace). Its garbage collector is off from the mark to
  the collect: a full collection over 5,000 connections' objects pauses it for a few hundred milliseconds, which
  would show as the server's latency.
- `{"cmd": "collect", "vmin": A, "vmax": B, "idle_s": S}`: wait until every connection has every version in A..B
  (or nothing arrived for S seconds), then answer `{"event": "stats", ...}` with the latency percentiles, the
  deliveries, the missing and duplicated (connection, version) pairs and the CPU used from the mark to the last
  message received (decoding what was kept is not counted: it happens after the messages stopped).
- `{"cmd": "quit"}`: close every connection and exit.

Three clients: the `websockets` asyncio client, `picows` (a Cython client, much cheaper per message) and `native`
(`benchmarks/native_client.py`: a C program with one epoll loop holds the connections, cheaper again, so that the
load generator does not set the pace of the fastest servers). With `--protocol socketio` (picows and native) the
same messages travel inside Socket.IO packets: the client joins namespace `/`, sends `42["subscribe", {...}]`,
answers Engine.IO pings and reads `42["message", {...}]`. The `subscribed` event names the process that reads
(`pid`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import orjson

# (connection index, version, receive time, the message's "at")
Record = tuple[int, int, float, str]


class Deflated(bytes):
    """A message payload that arrived compressed (permessage-deflate, RSV1 set): inflated when decoded."""


def inflate(payload: bytes) -> bytes:
    """A compressed message's payload inflated (RFC 7692: the flush's tail was left off by the sender)."""
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(payload + b"\x00\x00\xff\xff")


class Recorder:
    """What every connection received, shared by all of them."""

    def __init__(self, socketio: bool = False) -> None:
        self.socketio = socketio
        self.raw: list[tuple[int, bytes, float]] | None = None
        """While measuring: (connection, frame, receive time) of each message, decoded by `decode_raw`."""
        self.records: list[Record] = []
        self.frame_bytes: dict[int, int] = {}
        self.errors: list[str] = []
        self.subscribed = 0
        self.failed = 0
        self.closed = 0
        self.dropped = 0
        self.all_subscribed = asyncio.Event()
        self.expected = 0
        self.snapshot_waiters: dict[int, asyncio.Future[None]] = {}

    def decode(self, payload: bytes | str) -> tuple[dict[str, Any], int]:
        """A text frame's message (inflated if it came compressed, taken out of its Socket.IO event) and its size
        on the wire."""
        size = len(payload)
        if isinstance(payload, Deflated):
            payload = inflate(payload)
        return (orjson.loads(payload[2:])[1] if self.socketio else orjson.loads(payload)), size

    def on_message(self, index: int, payload: bytes | str) -> bool:
        """Handle one text frame; True when it was the connection's snapshot."""
        return self.on_decoded(index, *self.decode(payload))

    def on_decoded(self, index: int, message: dict[str, Any], size: int, received: float | None = None) -> bool:
        """Handle one decoded message of `size` bytes on the wire, received at `received` (`time.time()`, now if
        None); True when it was the connection's snapshot."""
        kind = message.get("type")
        if kind == "change":
            version = message["version"]
            self.records.append((index, version, time.time() if received is None else received, message["at"]))
            if index == 0:
                self.frame_bytes[version] = size
            return False
        if kind == "snapshot":
            self.subscribed += 1
            waiter = self.snapshot_waiters.pop(index, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            self._check_done()
            return True
        if kind == "error" and len(self.errors) < 20:
            self.errors.append(f"connection {index}: {message}")
        return False

    def decode_raw(self) -> None:
        """Decode the messages kept since the mark into `records` (and errors); keep recording raw ones."""
        raw, self.raw = self.raw or [], []
        for index, payload, received in raw:
            self.on_decoded(index, *self.decode(payload), received)

    def on_failure(self, index: int, exc: BaseException) -> None:
        """A connection could not connect or subscribe."""
        self.failed += 1
        if len(self.errors) < 20:
            self.errors.append(f"connection {index}: {type(exc).__name__}: {exc}")
        self._check_done()

    def _check_done(self) -> None:
        if self.subscribed + self.failed >= self.expected:
            self.all_subscribed.set()


# --- clients ----------------------------------------------------------------------------------------------------


def subscribe_frame(source: str) -> bytes:
    """The subscribe message every connection sends."""
    return orjson.dumps({"type": "subscribe", "id": "1", "source": source})


async def websockets_client(index: int, url: str, source: str, rec: Recorder, stop: asyncio.Event) -> None:
    """One connection with the `websockets` asyncio client; records until `stop` is set."""
    from websockets.asyncio.client import connect

    # No compression: one deflate per message per connection would dominate both sides and the
    # load generator's CPU; no client pings: 5,000 timers add noise (the server still pings us).
    async with connect(url, compression=None, ping_interval=None, open_timeout=120, max_size=None) as ws:
        await ws.send(subscribe_frame(source).decode())
        reader = asyncio.ensure_future(_read_all(ws, index, rec))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([reader, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in (reader, stopper):
            task.cancel()
    if not stop.is_set():
        rec.dropped += 1
        if len(rec.errors) < 20:
            rec.errors.append(f"connection {index}: closed by the server, code {ws.close_code}")
    rec.closed += 1


async def _read_all(ws: Any, index: int, rec: Recorder) -> None:
    async for message in ws:
        rec.on_message(index, message)


def picows_factory(index: int, source: str, rec: Recorder, socketio: bool = False) -> Callable[[], Any]:
    """A picows listener factory for connection `index` (speaking Socket.IO around the messages if `socketio`).

    A frame with RSV1 set (the connection negotiated permessage-deflate) is kept as `Deflated`, inflated only when
    decoded: the client's cost per message stays that of a plain one while measuring.
    """
    from picows import WSListener, WSMsgType

    text = WSMsgType.TEXT
    now = time.time

    class Listener(WSListener):
        def on_ws_connected(self, transport: Any) -> None:
            if not socketio:  # Socket.IO: wait for the Engine.IO open packet
                transport.send(WSMsgType.TEXT, subscribe_frame(source))

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == text:
                payload = frame.get_payload_as_bytes() if not frame.rsv1 else Deflated(frame.get_payload_as_bytes())
                raw = rec.raw
                if raw is not None and (not socketio or payload.startswith(b"42")):
                    raw.append((index, payload, now()))  # measuring: decoded later (Recorder.decode_raw)
                elif socketio:
                    socketio_packet(transport, payload)
                else:
                    rec.on_message(index, payload)
            elif frame.msg_type == WSMsgType.CLOSE:
                if len(rec.errors) < 20:
                    rec.errors.append(
                        f"connection {index}: closed by the server, code {frame.get_close_code()}"
                    )
                transport.disconnect()

    def socketio_packet(transport: Any, payload: bytes) -> None:
        if payload.startswith(b"42"):  # an event: ["message", {...}]
            rec.on_message(index, payload)
        elif payload == b"2":  # Engine.IO ping
            transport.send(WSMsgType.TEXT, b"3")
        elif payload.startswith(b"0"):  # Engine.IO open: join the default namespace
            transport.send(WSMsgType.TEXT, b"40")
        elif payload.startswith(b"40"):  # joined: subscribe
            transport.send(WSMsgType.TEXT, b'42["subscribe",' + subscribe_frame(source) + b"]")

    return Listener


SOCKETIO = False
"""Whether the picows clients speak Socket.IO (set from --protocol)."""
DEFLATE = False
"""Whether the picows clients offer permessage-deflate (set from --deflate)."""


async def picows_client(index: int, url: str, source: str, rec: Recorder, stop: asyncio.Event) -> None:
    """One connection with the picows client; records until `stop` is set."""
    from picows import ws_connect

    offer = {"Sec-WebSocket-Extensions": "permessage-deflate"} if DEFLATE else None
    transport, _listener = await ws_connect(
        picows_factory(index, source, rec, SOCKETIO), url, websocket_handshake_timeout=120, extra_headers=offer
    )
    stopper = asyncio.ensure_future(stop.wait())
    closed = asyncio.ensure_future(transport.wait_disconnected())
    await asyncio.wait([stopper, closed], return_when=asyncio.FIRST_COMPLETED)
    if not closed.done():
        transport.disconnect()
        await closed
    stopper.cancel()
    if not stop.is_set():
        rec.dropped += 1
    rec.closed += 1


Client = Callable[[int, str, str, Recorder, asyncio.Event], Coroutine[Any, Any, None]]
CLIENTS: dict[str, Client] = {"websockets": websockets_client, "picows": picows_client}


# --- statistics -------------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


def parse_at(text: str) -> float:
    """An ISO-8601 `at` (with Z) as a Unix timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def summarize(records: list[Record], connections: int, vmin: int, vmax: int) -> dict[str, Any]:
    """Deliveries, gaps, duplicates and latencies of the records with a version in vmin..vmax."""
    at_cache: dict[str, float] = {}
    seen: set[tuple[int, int]] = set()
    latencies: list[float] = []
    duplicates = 0
    outside = 0
    first_at = float("inf")
    last_receive = 0.0
    receive_span: dict[int, list[float]] = {}
    by_version: dict[int, list[float]] = {}
    for index, version, received, at in records:
        if not vmin <= version <= vmax:
            outside += 1
            continue
        key = (index, version)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        at_ts = at_cache.get(at)
        if at_ts is None:
            at_ts = at_cache[at] = parse_at(at)
        latencies.append(received - at_ts)
        by_version.setdefault(version, []).append(received - at_ts)
        first_at = min(first_at, at_ts)
        last_receive = max(last_receive, received)
        span = receive_span.setdefault(version, [received, received])
        span[0] = min(span[0], received)
        span[1] = max(span[1], received)
    latencies.sort()
    expected = connections * (vmax - vmin + 1) if vmax >= vmin else 0
    spans = sorted(b - a for a, b in receive_span.values())
    return {
        "deliveries": len(seen),
        "expected": expected,
        "missing": expected - len(seen),
        "duplicates": duplicates,
        "outside_range": outside,
        "latency_p50_ms": percentile(latencies, 50) * 1000,
        "latency_p99_ms": percentile(latencies, 99) * 1000,
        "latency_max_ms": (latencies[-1] * 1000) if latencies else float("nan"),
        "first_at": first_at if latencies else None,
        "last_receive": last_receive if latencies else None,
        "spread_p50_ms": percentile(spans, 50) * 1000,
        # Each version's first and last receive time (time.time()), for measuring from an outside event.
        "receive_span": {str(v): span for v, span in sorted(receive_span.items())},
        # Each version's median and largest latency: shows whether a slow tail is one change or every change.
        "by_version_ms": {
            str(v): [round(1000 * statistics.median(lat), 1), round(1000 * max(lat), 1)]
            for v, lat in sorted(by_version.items())
        },
    }


# --- driver protocol --------------------------------------------------------------------------------------------


def runqueue_wait_s(pid: int | str = "self") -> float:
    """Time the process's main thread spent runnable but waiting for a CPU (0 where schedstat is missing)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line for the driver."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


async def wait_for(rec: Recorder, connections: int, vmin: int, vmax: int, idle_s: float) -> tuple[float, float]:
    """Wait until every connection has every version in vmin..vmax, or `idle_s` passed without a new message.

    Returns this process's CPU time and the monotonic time when the last message was seen (within one poll), before
    the messages kept raw were decoded.
    """
    expected = connections * (vmax - vmin + 1)
    seen: set[tuple[int, int]] = set()
    scanned = 0
    last_progress = time.monotonic()
    last_cpu = time.process_time()
    received = -1
    while True:
        count = len(rec.raw or ()) + len(rec.records)
        if count > received:
            received, last_progress, last_cpu = count, time.monotonic(), time.process_time()
        idle = time.monotonic() - last_progress > idle_s
        if (rec.raw and len(rec.raw) + len(seen) >= expected) or idle:
            rec.decode_raw()  # counts alone cannot tell a duplicate from a missing message: check the versions
        records = rec.records
        for index, version, _, _ in records[scanned:]:
            if vmin <= version <= vmax:
                seen.add((index, version))
        scanned = len(records)
        if len(seen) >= expected or idle:
            return last_cpu, last_progress
        # A benchmark tool, not a test: polling every 20 ms costs little next to thousands of messages.
        await asyncio.sleep(0.02)


def emit_stats(
    rec: Recorder, connections: int, vmin: int, vmax: int, cpu: float, wall: float, wait: float
) -> None:
    """Answer a `collect`: the figures of the decoded records in vmin..vmax, then forget them.

    `cpu` and `wall` run from the mark to the last message received; `wait` is the time spent waiting for a CPU.
    """
    stats = summarize(rec.records, connections, vmin, vmax)
    sizes = [size for version, size in rec.frame_bytes.items() if vmin <= version <= vmax]
    rec.records = []
    emit(
        "stats",
        **stats,
        frame_bytes=round(sum(sizes) / len(sizes)) if sizes else None,
        loadgen_cpu_s=cpu,
        loadgen_wall_s=wall,
        loadgen_cpu_pct=100 * cpu / wall if wall > 0 else None,
        loadgen_cpu_per_delivery_us=1e6 * cpu / stats["deliveries"] if stats["deliveries"] else None,
        loadgen_runqueue_wait_s=wait,
        dropped=rec.dropped,
        errors=rec.errors[:5],
    )


async def serve_commands(rec: Recorder, connections: int, stop: asyncio.Event) -> None:
    """Read command lines from stdin and answer them on stdout until `quit` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    cpu_mark, wall_mark, wait_mark = time.process_time(), time.monotonic(), runqueue_wait_s()
    while True:
        line = await reader.readline()
        if not line:
            break
        command = orjson.loads(line)
        cmd = command.get("cmd")
        if cmd == "mark":
            rec.raw = []
            gc.collect()
            gc.disable()  # no collector pause while measuring (enabled again at collect)
            cpu_mark, wall_mark, wait_mark = time.process_time(), time.monotonic(), runqueue_wait_s()
            emit("marked")
        elif cmd == "collect":
            vmin, vmax = int(command["vmin"]), int(command["vmax"])
            cpu_end, wall_end = await wait_for(rec, connections, vmin, vmax, float(command.get("idle_s", 15)))
            wait = runqueue_wait_s() - wait_mark
            rec.decode_raw()
            rec.raw = None
            gc.enable()
            emit_stats(rec, connections, vmin, vmax, cpu_end - cpu_mark, wall_end - wall_mark, wait)
        elif cmd == "quit":
            break
    stop.set()


async def gated(
    client: Client,
    index: int,
    args: argparse.Namespace,
    rec: Recorder,
    stop: asyncio.Event,
    gate: asyncio.Semaphore,
) -> None:
    """Run one client, holding a slot of `gate` until its snapshot arrived or it failed."""
    # The gate bounds the connections that are opening at once, so the server's accept backlog never overflows.
    await gate.acquire()
    subscribed = asyncio.get_running_loop().create_future()
    rec.snapshot_waiters[index] = subscribed
    task = asyncio.ensure_future(client(index, args.url, args.source, rec, stop))
    try:
        await asyncio.wait([subscribed, task], return_when=asyncio.FIRST_COMPLETED)
    finally:
        gate.release()
        rec.snapshot_waiters.pop(index, None)
    try:
        await task
    except Exception as exc:  # a failed connection is counted and reported, not fatal
        if not subscribed.done():
            rec.on_failure(index, exc)
        elif len(rec.errors) < 20:
            rec.errors.append(f"connection {index} dropped: {type(exc).__name__}: {exc}")


async def main_async(args: argparse.Namespace) -> None:
    """Open every connection, report, then serve the driver's commands."""
    rec = Recorder(socketio=SOCKETIO)
    rec.expected = args.connections
    stop = asyncio.Event()
    gate = asyncio.Semaphore(args.connect_concurrency)
    started = time.monotonic()
    tasks = [
        asyncio.create_task(gated(CLIENTS[args.client], index, args, rec, stop, gate))
        for index in range(args.connections)
    ]
    await rec.all_subscribed.wait()
    emit(
        "subscribed",
        connections=rec.subscribed,
        failed=rec.failed,
        seconds=time.monotonic() - started,
        client=args.client,
        loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        pid=os.getpid(),
        errors=rec.errors[:5],
    )
    await serve_commands(rec, args.connections, stop)
    await asyncio.wait(tasks, timeout=30)
    emit("closed", closed=rec.closed)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="ws://host:port/v1/ws")
    parser.add_argument("--source", required=True, help="The source id to subscribe to.")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument(
        "--client",
        choices=sorted([*CLIENTS, "native"]),
        default="websockets",
        help="native: the C client of benchmarks/native_client.py, the cheapest per message.",
    )
    parser.add_argument("--connect-concurrency", type=int, default=100, help="Connections opening at once.")
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        help="Event loop (default: uvloop when installed: its loop runs in C, so the client is less of a limit).",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="Offer permessage-deflate (picows and native); messages inflate when decoded.",
    )
    parser.add_argument(
        "--protocol",
        choices=("sheetstream", "socketio"),
        default="sheetstream",
        help="socketio: picows and native only.",
    )
    args = parser.parse_args(argv)
    if args.client == "websockets" and (args.deflate or args.protocol == "socketio"):
        parser.error("--deflate and --protocol socketio need --client picows or native")
    if args.client == "native":
        from benchmarks import native_client

        native_client.main(args, socketio=args.protocol == "socketio", deflate=args.deflate)
        return
    global DEFLATE, SOCKETIO
    DEFLATE = args.deflate
    SOCKETIO = args.protocol == "socketio"
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
