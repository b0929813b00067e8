"""Fan-out benchmark: one change delivered to N WebSocket subscribers, sheetstream against a plain broadcast.

    python -m benchmarks.bench_fanout [--connections 5000] [--runs 3] [--targets baseline,sheetstream]

Each run starts the system under test as a child process pinned to CPU 0 (`taskset -c 0`) and the load generator
(`benchmarks/loadgen.py`) as another pinned to CPU 1, and measures:

- memory: the server's VmRSS before and after the N subscriptions, per connection;
- paced: 20 changes, one every 200 ms: per-delivery latency (receive time - the change's `at`) p50/p99;
- burst: 50 changes, each made as soon as the previous one is committed: deliveries/s, latency p50/p99, and the
  server's CPU time (utime + stime) per delivery;
- correctness: every client must get every committed version exactly once (missing and duplicates are counted).

sheetstream is the real server (`python -m sheetstream serve`, SQLite store, a CSV file source); the baseline is
`benchmarks/baseline_broadcast.py` (`websockets.broadcast()` with no store, bus or queues). `run()` returns every
run's figures with medians and sheetstream/baseline ratios; `benchmarks/run.py` turns them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PACED_CHANGES = 20
PACED_INTERVAL_S = 0.2
BURST_CHANGES = 50
SEND_QUEUE_SIZE = 4096
CSV_ROWS = 10
TARGETS = ("baseline", "sheetstream")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not run; the message says which step failed."""


# --- processes ----------------------------------------------------------------------------------------------------


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """`argv` pinned to one CPU with taskset, or unchanged when taskset is missing."""
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


class Child:
    """A child process that speaks JSON lines on stdin/stdout; stderr goes to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        """The process id (taskset execs the command, so this is the Python process)."""
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
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                raise BenchError(
                    f"{self.name}: no '{event}' within {timeout:.0f} s{self.log_tail()}"
                ) from None
            if line is None:
                raise BenchError(
                    f"{self.name} exited (code {self.proc.poll()}) before '{event}'{self.log_tail()}"
                )
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
        """Ask the process to stop (SIGINT), then kill it if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
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
# appended to a log file as "<time.time()> <generation> <milliseconds>", so the driver can tell
# a pause of the whole server process apart from slow sending. The hook costs a clock read per collection.
GC_PROBE = """
import gc, runpy, sys, time
log = open(sys.argv[1], "a", buffering=1)
started = [0.0]
def probe(phase, info):
    if phase == "start":
        started[0] = time.perf_counter()
        return
    ms = 1000 * (time.perf_counter() - started[0])
    if ms >= 5:
        log.write(f"{time.time()} {info['generation']} {ms:.1f}\\n")
gc.callbacks.append(probe)
module = sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def probed(log: Path, module: str, *args: str) -> list[str]:
    """`python -m module args` with the garbage-collection probe logging to `log`."""
    return [sys.executable, "-c", GC_PROBE, str(log), module, *args]


def gc_pauses(log: Path, since: float, until: float) -> dict[str, float]:
    """Collections of 5 ms or more logged between two wall-clock times: count, total and longest, in ms."""
    pauses = []
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            at, _generation, ms, *_ = line.split()
            if since <= float(at) <= until:
                pauses.append(float(ms))
    return {"count": len(pauses), "total_ms": sum(pauses), "max_ms": max(pauses, default=0.0)}


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    # The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait_s(pid: int) -> float:
    """Time the process's main thread spent runnable but waiting for a CPU: how much the machine got in the way."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


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
    """The op one change makes (B2: value-1 -> value), for the baseline to send the same shape and size."""
    return {"op": "set", "tab": 0, "row": 1, "col": 1, "a1": "B2", "old": str(value - 1), "new": str(value)}


# --- systems under test ---------------------------------------------------------------------------------------------


class Baseline:
    """`benchmarks/baseline_broadcast.py` in its own process; changes are commands on its stdin."""

    name = "baseline"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.value = 0
        self.server: Child | None = None
        self.source_id = "baseline"
        self.gc_log = workdir / "baseline-gc.log"
        self.url = ""

    def start(self) -> None:
        """Start the server and learn its port."""
        self.gc_log = self.workdir / "baseline-gc.log"
        argv = pinned(0, probed(self.gc_log, "benchmarks.baseline_broadcast", "--port", "0"))
        self.server = Child("baseline server", argv, self.workdir / "baseline.log")
        port = self.server.expect("listening", timeout=30)["port"]
        self.url = f"ws://127.0.0.1:{port}/v1/ws"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.server is not None
        return self.server.pid

    def version(self) -> int:
        """The last version sent (the server starts at 1)."""
        return 1 + self.value

    def change(self) -> None:
        """Broadcast the next change."""
        assert self.server is not None
        self.value += 1
        self.server.send(cmd="change", source=self.source_id, epoch="baseline", ops=[set_op(self.value)])

    def change_and_wait(self) -> None:
        """Broadcast the next change and wait until `broadcast()` returned."""
        assert self.server is not None
        self.change()
        self.server.expect("sent", timeout=120)

    def settle(self, changes_sent: int) -> int:
        """Wait for the acks of the paced changes not yet acknowledged; return the final version."""
        assert self.server is not None
        for _ in range(changes_sent):
            self.server.expect("sent", timeout=120)
        return self.version()

    def stop(self) -> None:
        """Stop the server."""
        if self.server is not None:
            self.server.send(cmd="quit")
            self.server.stop()


class Sheetstream:
    """The real server (`python -m sheetstream serve`) watching a CSV file; a change rewrites the file."""

    name = "sheetstream"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.value = 0
        self.server: Child | None = None
        self.csv = workdir / "bench.csv"
        self.gc_log = workdir / "sheetstream-gc.log"
        self.source_id = ""
        self.url = ""
        self.http: httpx.Client | None = None

    def start(self) -> None:
        """Start the server, register the CSV source and wait for its first version."""
        self.csv.write_text(csv_text(self.value))
        port = free_port()
        db = self.workdir / "b.db"
        argv = pinned(
            0,
            [
                *probed(self.gc_log, "sheetstream", "serve"), "--port", str(port), "--store", f"sqlite:///{db}",
                "--log-level", "warning", "--send-queue-size", str(SEND_QUEUE_SIZE),
            ],
        )  # fmt: skip
        self.server = Child("sheetstream server", argv, self.workdir / "sheetstream.log")
        base = f"http://127.0.0.1:{port}"
        self.url = f"ws://127.0.0.1:{port}/v1/ws"
        self.http = httpx.Client(base_url=base, timeout=30)
        self._wait_healthy()
        response = self.http.post(
            "/v1/sources", json={"kind": "file", "config": {"path": str(self.csv)}, "poll_interval_s": 30}
        )
        if response.status_code != 201:
            raise BenchError(f"POST /v1/sources answered {response.status_code}: {response.text[:300]}")
        self.source_id = response.json()["id"]
        self._wait_version(lambda v: v >= 1, "the first read", timeout=30)

    def _wait_healthy(self) -> None:
        assert self.server is not None and self.http is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.proc.poll() is not None:
                raise BenchError(
                    f"sheetstream serve exited with code {self.server.proc.poll()}{self.server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/healthz").status_code == 200:
                    return
            time.sleep(0.1)
        raise BenchError(f"sheetstream serve not healthy within 60 s{self.server.log_tail()}")

    def _source(self) -> dict[str, Any]:
        assert self.http is not None
        response = self.http.get(f"/v1/sources/{self.source_id}")
        response.raise_for_status()
        source: dict[str, Any] = response.json()
        return source

    def _wait_version(self, ok: Any, what: str, timeout: float, poll_s: float = 0.005) -> int:
        deadline = time.monotonic() + timeout
        while True:
            source = self._source()
            if ok(source["version"]):
                return int(source["version"])
            if time.monotonic() > deadline:
                raise BenchError(f"source {self.source_id} did not reach {what} in {timeout:.0f} s: {source}")
            time.sleep(poll_s)

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.server is not None
        return self.server.pid

    def version(self) -> int:
        """The source's committed version."""
        return int(self._source()["version"])

    def change(self) -> None:
        """Rewrite the CSV atomically and ask for a read now."""
        assert self.http is not None
        self.value += 1
        tmp = self.csv.with_suffix(".tmp")
        tmp.write_text(csv_text(self.value))
        os.replace(tmp, self.csv)
        response = self.http.post(f"/v1/sources/{self.source_id}/refresh")
        if response.status_code != 202:
            raise BenchError(f"POST refresh answered {response.status_code}: {response.text[:300]}")

    def change_and_wait(self) -> None:
        """Make a change and wait until the version moved (the commit, not the delivery)."""
        before = self.version()
        self.change()
        self._wait_version(lambda v: v > before, "a new version", timeout=30)

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
                return int(body["version"])
            if time.monotonic() > deadline:
                raise BenchError(f"the last change (B2={want}) was not committed within 60 s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server."""
        if self.http is not None:
            self.http.close()
        if self.server is not None:
            self.server.stop()


# --- one run ------------------------------------------------------------------------------------------------------


def run_once(target_name: str, connections: int, client: str, workdir: Path) -> dict[str, Any]:
    """Start one system under test and the load generator, measure, stop both; return the figures."""
    target: Baseline | Sheetstream = Baseline(workdir) if target_name == "baseline" else Sheetstream(workdir)
    loadgen: Child | None = None
    try:
        target.start()
        time.sleep(0.5)  # let the fresh process finish its start-up allocations before the first RSS reading
        rss_before = rss_kib(target.pid)
        argv = pinned(
            1,
            [
                sys.executable, "-m", "benchmarks.loadgen", "--url", target.url, "--source", target.source_id,
                "--connections", str(connections), "--client", client,
            ],
        )  # fmt: skip
        loadgen = Child("load generator", argv, workdir / f"loadgen-{target_name}.log")
        subscribed = loadgen.expect("subscribed", timeout=600)
        if subscribed["failed"]:
            raise BenchError(
                f"{subscribed['failed']} of {connections} connections failed: {subscribed['errors']}"
            )
        rss_after = rss_kib(target.pid)
        figures: dict[str, Any] = {
            "subscribe_s": subscribed["seconds"],
            "rss_before_mib": rss_before / 1024,
            "rss_after_mib": rss_after / 1024,
            "mem_per_conn_kib": (rss_after - rss_before) / connections,
        }
        figures.update(_paced(target, loadgen))
        figures.update(_burst(target, loadgen))
        loadgen.send(cmd="quit")
        loadgen.expect("closed", timeout=60)
        return figures
    finally:
        if loadgen is not None:
            loadgen.stop()
        target.stop()


def _paced(target: Baseline | Sheetstream, loadgen: Child) -> dict[str, Any]:
    first = target.version() + 1
    since = time.time()
    loadgen.send(cmd="mark")
    loadgen.expect("marked", timeout=30)
    start = time.monotonic()
    for i in range(PACED_CHANGES):
        # Absolute deadlines, so a slow change does not shift the ones after it.
        delay = start + i * PACED_INTERVAL_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        target.change()
    last = target.settle(PACED_CHANGES)
    loadgen.send(cmd="collect", vmin=first, vmax=last, idle_s=20)
    stats = loadgen.expect("stats", timeout=600)
    _report_losses("paced", stats)
    return {
        "paced_versions": last - first + 1,
        "paced_deliveries": stats["deliveries"],
        "paced_missing": stats["missing"],
        "paced_duplicates": stats["duplicates"],
        "paced_p50_ms": stats["latency_p50_ms"],
        "paced_p99_ms": stats["latency_p99_ms"],
        "paced_spread_ms": stats["spread_p50_ms"],
        "paced_gc_max_ms": gc_pauses(target.gc_log, since, time.time())["max_ms"],
        "paced_by_version_ms": stats["by_version_ms"],
        "paced_loadgen_cpu_pct": stats["loadgen_cpu_pct"],
        "frame_bytes": stats["frame_bytes"],
    }


def _report_losses(phase: str, stats: dict[str, Any]) -> None:
    """Print what went wrong when a connection missed or repeated a version, or was closed by the server."""
    if stats["missing"] or stats["duplicates"] or stats["dropped"]:
        print(
            f"[fanout] {phase}: {stats['missing']} missing, {stats['duplicates']} duplicate deliveries, "
            f"{stats['dropped']} connection(s) closed by the server so far; first errors: {stats['errors']}",
            file=sys.stderr,
        )


def _burst(target: Baseline | Sheetstream, loadgen: Child) -> dict[str, Any]:
    first = target.version() + 1
    since = time.time()
    loadgen.send(cmd="mark")
    loadgen.expect("marked", timeout=30)
    cpu_before, wall_before, wait_before = (
        cpu_seconds(target.pid),
        time.monotonic(),
        runqueue_wait_s(target.pid),
    )
    for _ in range(BURST_CHANGES):
        target.change_and_wait()
    last = target.settle(0)
    loadgen.send(cmd="collect", vmin=first, vmax=last, idle_s=20)
    stats = loadgen.expect("stats", timeout=900)
    cpu, wall = cpu_seconds(target.pid) - cpu_before, time.monotonic() - wall_before
    wait = runqueue_wait_s(target.pid) - wait_before
    _report_losses("burst", stats)
    gc = gc_pauses(target.gc_log, since, time.time())
    deliveries = stats["deliveries"]
    window = (stats["last_receive"] - stats["first_at"]) if deliveries else float("nan")
    return {
        "burst_versions": last - first + 1,
        "burst_deliveries": deliveries,
        "burst_missing": stats["missing"],
        "burst_duplicates": stats["duplicates"],
        "dropped_connections": stats["dropped"],
        "burst_rate": deliveries / window if deliveries and window > 0 else float("nan"),
        "burst_p50_ms": stats["latency_p50_ms"],
        "burst_p99_ms": stats["latency_p99_ms"],
        "burst_by_version_ms": stats["by_version_ms"],
        "cpu_per_delivery_us": 1e6 * cpu / deliveries if deliveries else float("nan"),
        "burst_server_cpu_pct": 100 * cpu / wall,
        "burst_loadgen_cpu_pct": stats["loadgen_cpu_pct"],
        "burst_loadgen_cpu_per_delivery_us": stats["loadgen_cpu_per_delivery_us"],
        "burst_wall_s": wall,
        "burst_gc_count": gc["count"],
        "burst_gc_max_ms": gc["max_ms"],
        "burst_gc_share_pct": 100 * gc["total_ms"] / 1000 / wall,
        "burst_server_wait_pct": 100 * wait / wall,
        "burst_loadgen_wait_pct": 100 * stats["loadgen_runqueue_wait_s"] / stats["loadgen_wall_s"],
    }


# --- several runs ---------------------------------------------------------------------------------------------------

# The figures summarised and compared, with how to print them.
METRICS: dict[str, str] = {
    "mem_per_conn_kib": "server memory per connection (KiB)",
    "paced_p50_ms": "paced latency p50 (ms)",
    "paced_p99_ms": "paced latency p99 (ms)",
    "paced_spread_ms": "paced: first to last receive of one change (ms)",
    "burst_rate": "burst deliveries/s",
    "burst_p50_ms": "burst latency p50 (ms)",
    "burst_p99_ms": "burst latency p99 (ms)",
    "cpu_per_delivery_us": "server CPU per delivery (us)",
    "burst_server_cpu_pct": "server CPU during the burst (%)",
    "burst_loadgen_cpu_pct": "load generator CPU during the burst (%)",
    "burst_loadgen_cpu_per_delivery_us": "load generator CPU per delivery (us)",
    "burst_server_wait_pct": "server waiting for a CPU during the burst (% of wall)",
    "burst_loadgen_wait_pct": "load generator waiting for a CPU during the burst (% of wall)",
    "burst_gc_max_ms": "server's longest garbage-collection pause in the burst (ms)",
    "burst_gc_share_pct": "server time in collections of 5 ms or more during the burst (% of wall)",
    "subscribe_s": "time to subscribe all connections (s)",
    "frame_bytes": "change message size (bytes)",
}
# The figures whose sheetstream/baseline ratio means something (not the CPU shares and waits of the run).
COMPARED = (
    "mem_per_conn_kib", "paced_p50_ms", "paced_p99_ms", "paced_spread_ms", "burst_rate", "burst_p50_ms",
    "burst_p99_ms", "cpu_per_delivery_us", "subscribe_s", "frame_bytes",
)  # fmt: skip
CORRECTNESS = (
    "paced_missing",
    "paced_duplicates",
    "burst_missing",
    "burst_duplicates",
    "dropped_connections",
)


def default_client() -> str:
    """picows when installed (its per-message cost is lower, so the load generator gets in the way less), else websockets."""
    try:
        import picows  # noqa: F401
    except ImportError:
        return "websockets"
    return "picows"


def summarize(values: list[float]) -> dict[str, float]:
    """Median, min and max of a list of figures."""
    clean = [v for v in values if v == v]  # drop NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean)}


def run(
    connections: int = 5000,
    runs: int = 3,
    targets: tuple[str, ...] = TARGETS,
    client: str | None = None,
    progress: IO[str] | None = sys.stderr,
) -> dict[str, Any]:
    """Run the benchmark `runs` times per target (alternating their order); return figures, medians and ratios."""
    client = client or default_client()
    per_target: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        for r in range(runs):
            # Alternate which target goes first, so a slow phase of the shared machine hits both alike.
            order = list(targets) if r % 2 == 0 else list(reversed(targets))
            for name in order:
                if name in errors:
                    continue
                workdir = Path(tmp) / f"{name}-{r}"
                workdir.mkdir()
                if progress:
                    print(
                        f"[fanout] run {r + 1}/{runs}: {name}, {connections} connections ...", file=progress
                    )
                try:
                    figures = run_once(name, connections, client, workdir)
                except BenchError as exc:
                    errors[name] = str(exc)
                    if progress:
                        print(f"[fanout] {name} failed: {exc}", file=progress)
                    continue
                per_target[name].append(figures)
                if progress:
                    print("[fanout]   " + _one_line(figures), file=progress)
    summary = {
        name: {metric: summarize([f[metric] for f in figures]) for metric in METRICS}
        for name, figures in per_target.items()
        if figures
    }
    ratios: dict[str, float] = {}
    if "baseline" in summary and "sheetstream" in summary:
        for metric in COMPARED:
            base, ours = summary["baseline"][metric]["median"], summary["sheetstream"][metric]["median"]
            ratios[metric] = ours / base if base else float("nan")
    correctness = {
        name: {key: sum(int(f[key]) for f in figures) for key in CORRECTNESS}
        for name, figures in per_target.items()
    }
    return {
        "connections": connections,
        "runs": runs,
        "client": client,
        "pinned": shutil.which("taskset") is not None,
        "paced_changes": PACED_CHANGES,
        "paced_interval_s": PACED_INTERVAL_S,
        "burst_changes": BURST_CHANGES,
        "per_run": per_target,
        "summary": summary,
        "ratios": ratios,
        "correctness": correctness,
        "errors": errors,
    }


def _one_line(f: dict[str, Any]) -> str:
    return (
        f"mem/conn {f['mem_per_conn_kib']:.1f} KiB, paced p50/p99 {f['paced_p50_ms']:.0f}/{f['paced_p99_ms']:.0f} ms, "
        f"burst {f['burst_rate']:.0f}/s p50/p99 {f['burst_p50_ms']:.0f}/{f['burst_p99_ms']:.0f} ms, "
        f"cpu/delivery {f['cpu_per_delivery_us']:.1f} us (loadgen {f['burst_loadgen_cpu_per_delivery_us']:.1f}), "
        f"cpu % server/loadgen {f['burst_server_cpu_pct']:.0f}/{f['burst_loadgen_cpu_pct']:.0f}, "
        f"cpu-wait % {f['burst_server_wait_pct']:.0f}/{f['burst_loadgen_wait_pct']:.0f}, "
        f"missing {f['paced_missing'] + f['burst_missing']}, duplicates {f['paced_duplicates'] + f['burst_duplicates']}"
    )


def print_report(result: dict[str, Any], out: IO[str] = sys.stdout) -> None:
    """A plain-text table of medians (min-max) and ratios."""
    names = list(result["summary"])
    print(
        f"fan-out to {result['connections']} connections, {result['runs']} run(s), client {result['client']}",
        file=out,
    )
    header = f"{'metric':62}" + "".join(f"{n:>26}" for n in names) + ("   ratio" if result["ratios"] else "")
    print(header, file=out)
    for metric, label in METRICS.items():
        cells = ""
        for name in names:
            s = result["summary"][name][metric]
            cells += f"{s['median']:>10.1f} ({s['min']:.1f}-{s['max']:.1f})".rjust(26)
        ratio = result["ratios"].get(metric)
        print(f"{label:62}{cells}" + (f"   {ratio:5.2f}" if ratio is not None else ""), file=out)
    for name, counts in result["correctness"].items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=out)
    for name, error in result["errors"].items():
        print(f"{name} FAILED: {error}", file=out)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description="Fan-out benchmark: sheetstream vs a websockets.broadcast baseline."
    )
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="Comma-separated: baseline, sheetstream."
    )
    parser.add_argument(
        "--client",
        choices=("websockets", "picows"),
        help="The load generator's client (default: picows if installed).",
    )
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    args = parser.parse_args(argv)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    result = run(args.connections, args.runs, targets, args.client)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
