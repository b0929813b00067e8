"""Fan-out benchmark: one change delivered to N WebSocket subscribers, sheetstream side by side with its peers.

    python -m benchmarks.bench_fanout [--connections 5000] [--runs 3] [--systems fast,asgi,picows,...]
                                      [--large-connections 10000] [--client native|picows]

Systems (`benchmarks/fanout_systems.py`): sheetstream's picows listener (`fast`) and its ASGI `/v1/ws`
(`asgi`), and the baselines of `benchmarks/baselines/`: raw picows, Node `ws`, websockets `broadcast()`,
python-socketio; `fast-untuned` / `asgi-untuned` run sheetstream without its collector tuning (once, in the
first round). Each run starts one system pinned to CPU 0 and the load generator (`benchmarks/loadgen.py`; its
`native` client by default, a C epoll loop, or `--client picows`) pinned to CPU 1:

- memory: the server's VmRSS before and after the N subscriptions, per connection;
- paced: 20 changes, one every 200 ms: per-delivery latency (receive time - the change's `at`) p50/p99;
- burst: 50 changes, each made as soon as the previous one is committed (or sent): deliveries/s, latency
  p50/p99, the server's CPU time per delivery, and the load generator's CPU share (a run where it is above
  90 % is flagged: the client, not the server, may have set the pace);
- isolated: the load generator is stopped (SIGSTOP) while 20 more changes are made, then resumed: the server's CPU
  per delivery when no reader runs, so that neither the client's pace nor waking it up weighs on the figure (the
  messages wait in the sockets' receive buffers, and every one must still arrive once the readers resume);
- correctness: every client must get every version exactly once (missing and duplicates are counted).

`--large-connections M` adds one more run of each system at M connections, with the same phases: memory per
idle connection at M, and the fan-out figures at M.

`run()` returns every run's figures, medians and the ratios of each system to raw picows; `benchmarks/run.py`
turns them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from benchmarks.fanout_systems import (
    CSV_ROWS,
    SEND_QUEUE_SIZE,
    SYSTEMS,
    BenchError,
    Child,
    System,
    make_system,
    pinned,
)

PACED_CHANGES = 20
PACED_INTERVAL_S = 0.2
BURST_CHANGES = 50
ISOLATED_CHANGES = 20
REFERENCE = "picows"
DEFAULT_SYSTEMS = ("fast", "asgi", "picows", "node", "websockets", "socketio", "fast-deflate")
SATURATED_PCT = 90.0
CLIENT = "native"
"""The load generator's client: the C one (`benchmarks/native_client.py`), far cheaper per message than any server
measured, so that no server's burst is paced by the client."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
__all__ = ["CSV_ROWS", "SEND_QUEUE_SIZE", "SYSTEMS", "run"]


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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process, in seconds: its own code, and the kernel's work for it (socket sends)."""
    # The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def runqueue_wait_s(pid: int) -> float:
    """Time the process's main thread spent runnable but waiting for a CPU: how much the machine got in the way."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


# --- one run ------------------------------------------------------------------------------------------------------


def run_once(name: str, connections: int, workdir: Path, *, client: str = CLIENT) -> dict[str, Any]:
    """Start one system and the load generator, measure, stop both; return the figures."""
    target = make_system(name, workdir)
    loadgen: Child | None = None
    try:
        target.start()
        time.sleep(0.5)  # let the fresh process finish its start-up allocations before the first RSS reading
        rss_before = rss_kib(target.pid)
        argv = pinned(
            1,
            [
                sys.executable, "-m", "benchmarks.loadgen", "--url", target.url, "--source", target.source_id,
                "--connections", str(connections), "--client", client, "--protocol", target.protocol,
                *target.loadgen_args,
            ],
        )  # fmt: skip
        loadgen = Child("load generator", argv, workdir / f"loadgen-{name}.log")
        subscribed = loadgen.expect("subscribed", timeout=900)
        if subscribed["failed"]:
            raise BenchError(f"{subscribed['failed']} of {connections} connections failed: {subscribed['errors']}")
        time.sleep(1.0)  # the last snapshots were just sent: let the server settle before reading its memory
        rss_after = rss_kib(target.pid)
        figures: dict[str, Any] = {
            "connections": connections,
            "client": subscribed.get("client"),
            "client_loop": subscribed.get("loop"),
            "subscribe_s": subscribed["seconds"],
            "rss_before_mib": rss_before / 1024,
            "rss_after_mib": rss_after / 1024,
            "mem_per_conn_kib": (rss_after - rss_before) / connections,
        }
        figures.update(_paced(target, loadgen))
        figures.update(_burst(target, loadgen))
        figures.update(_isolated(target, loadgen, subscribed.get("pid", loadgen.pid)))
        loadgen.send(cmd="quit")
        loadgen.expect("closed", timeout=120)
        return figures
    finally:
        if loadgen is not None:
            loadgen.stop()
        target.stop()


def _paced(target: System, loadgen: Child) -> dict[str, Any]:
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
    stats = loadgen.expect("stats", timeout=900)
    _report_losses("paced", stats)
    return {
        "paced_versions": last - first + 1,
        "paced_deliveries": stats["deliveries"],
        "paced_missing": stats["missing"],
        "paced_duplicates": stats["duplicates"],
        "paced_p50_ms": stats["latency_p50_ms"],
        "paced_p99_ms": stats["latency_p99_ms"],
        "paced_gc_max_ms": gc_pauses(target.gc_log, since, time.time())["max_ms"],
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


def _burst(target: System, loadgen: Child) -> dict[str, Any]:
    first = target.version() + 1
    since = time.time()
    loadgen.send(cmd="mark")
    loadgen.expect("marked", timeout=30)
    cpu_before, wall_before = cpu_seconds(target.pid), time.monotonic()
    wait_before = runqueue_wait_s(target.pid)
    for _ in range(BURST_CHANGES):
        target.change_and_wait()
    last = target.settle(0)
    loadgen.send(cmd="collect", vmin=first, vmax=last, idle_s=20)
    stats = loadgen.expect("stats", timeout=1800)
    (user_after, system_after), wall = cpu_seconds(target.pid), time.monotonic() - wall_before
    user, system = user_after - cpu_before[0], system_after - cpu_before[1]
    cpu = user + system
    wait = runqueue_wait_s(target.pid) - wait_before
    _report_losses("burst", stats)
    gc = gc_pauses(target.gc_log, since, time.time())
    deliveries = stats["deliveries"]
    window = (stats["last_receive"] - stats["first_at"]) if deliveries else float("nan")
    loadgen_pct = stats["loadgen_cpu_pct"]
    return {
        "burst_versions": last - first + 1,
        "burst_deliveries": deliveries,
        "burst_missing": stats["missing"],
        "burst_duplicates": stats["duplicates"],
        "dropped_connections": stats["dropped"],
        "burst_rate": deliveries / window if deliveries and window > 0 else float("nan"),
        "burst_p50_ms": stats["latency_p50_ms"],
        "burst_p99_ms": stats["latency_p99_ms"],
        **_backlog(stats["by_version_ms"]),
        "cpu_per_delivery_us": 1e6 * cpu / deliveries if deliveries else float("nan"),
        "user_cpu_per_delivery_us": 1e6 * user / deliveries if deliveries else float("nan"),
        "system_cpu_per_delivery_us": 1e6 * system / deliveries if deliveries else float("nan"),
        "burst_server_cpu_pct": 100 * cpu / wall,
        "burst_loadgen_cpu_pct": loadgen_pct,
        "loadgen_saturated": bool(loadgen_pct is not None and loadgen_pct > SATURATED_PCT),
        "burst_loadgen_cpu_per_delivery_us": stats["loadgen_cpu_per_delivery_us"],
        "burst_wall_s": wall,
        "burst_gc_count": gc["count"],
        "burst_gc_max_ms": gc["max_ms"],
        "burst_gc_share_pct": 100 * gc["total_ms"] / 1000 / wall,
        "burst_server_wait_pct": 100 * wait / wall,
        "burst_loadgen_wait_pct": 100 * stats["loadgen_runqueue_wait_s"] / stats["loadgen_wall_s"],
    }


def _backlog(by_version_ms: dict[str, list[float]], changes: int = 10) -> dict[str, float]:
    """The burst's median latency over its first and its last `changes` changes (the median of their medians).

    When a server sends faster than the load generator reads, the client falls behind as the burst goes on: the
    last changes wait behind the earlier ones at the client, and the burst's latencies measure that backlog more
    than the server.
    """
    medians = [by_version_ms[v][0] for v in sorted(by_version_ms, key=int)]
    if len(medians) < 2 * changes:
        return {"burst_first_p50_ms": float("nan"), "burst_last_p50_ms": float("nan")}
    return {
        "burst_first_p50_ms": statistics.median(medians[:changes]),
        "burst_last_p50_ms": statistics.median(medians[-changes:]),
    }


def _isolated(target: System, loadgen: Child, reader: int) -> dict[str, Any]:
    """The readers-stopped phase; `reader` is the load generator's process that holds the connections."""
    first = target.version() + 1
    loadgen.send(cmd="mark")
    loadgen.expect("marked", timeout=30)
    os.kill(reader, signal.SIGSTOP)
    try:
        cpu_before = cpu_seconds(target.pid)
        for _ in range(ISOLATED_CHANGES):
            target.change_and_wait()
        last = target.settle(0)
        time.sleep(0.2)  # the last change's sends: settle() may return as it is committed, before it is sent
        user, system = (after - before for after, before in zip(cpu_seconds(target.pid), cpu_before, strict=True))
    finally:
        os.kill(reader, signal.SIGCONT)
    loadgen.send(cmd="collect", vmin=first, vmax=last, idle_s=20)
    stats = loadgen.expect("stats", timeout=900)
    _report_losses("isolated", stats)
    owed = stats["expected"]  # per delivery the server owed: a lost message cannot make the figure look cheaper
    return {
        "isolated_missing": stats["missing"],
        "isolated_duplicates": stats["duplicates"],
        "isolated_cpu_per_delivery_us": 1e6 * (user + system) / owed if owed else float("nan"),
        "isolated_user_cpu_per_delivery_us": 1e6 * user / owed if owed else float("nan"),
    }


# --- several runs ---------------------------------------------------------------------------------------------------

# The figures summarised and compared, with how to print them.
METRICS: dict[str, str] = {
    "burst_rate": "burst deliveries/s",
    "cpu_per_delivery_us": "server CPU per delivery (µs)",
    "user_cpu_per_delivery_us": "of which in the server's own code (user, µs)",
    "system_cpu_per_delivery_us": "of which in the kernel (system: socket sends, µs)",
    "paced_p50_ms": "paced latency p50 (ms)",
    "paced_p99_ms": "paced latency p99 (ms)",
    "burst_p50_ms": "burst latency p50 (ms)",
    "burst_p99_ms": "burst latency p99 (ms)",
    "burst_first_p50_ms": "burst latency p50, first 10 changes (ms)",
    "burst_last_p50_ms": "burst latency p50, last 10 changes (ms)",
    "mem_per_conn_kib": "server memory per connection (KiB)",
    "burst_gc_max_ms": "longest garbage-collection pause in the burst (ms)",
    "burst_gc_share_pct": "burst time in collections of 5 ms or more (%)",
    "burst_server_cpu_pct": "server CPU during the burst (%)",
    "burst_loadgen_cpu_pct": "load generator CPU during the burst (%)",
    "burst_loadgen_cpu_per_delivery_us": "load generator CPU per delivery (µs)",
    "isolated_cpu_per_delivery_us": "server CPU per delivery with the readers stopped (µs)",
    "isolated_user_cpu_per_delivery_us": "of which in the server's own code (user, µs)",
    "burst_server_wait_pct": "server waiting for a CPU during the burst (% of wall)",
    "burst_loadgen_wait_pct": "load generator waiting for a CPU during the burst (% of wall)",
    "subscribe_s": "time to subscribe all connections (s)",
    "frame_bytes": "change message size (bytes)",
}
# The figures whose ratio to raw picows means something (not the CPU shares and waits of the run).
COMPARED = (
    "burst_rate", "cpu_per_delivery_us", "paced_p50_ms", "paced_p99_ms", "burst_p50_ms", "burst_p99_ms",
    "mem_per_conn_kib", "isolated_cpu_per_delivery_us",
)  # fmt: skip
CORRECTNESS = (
    "paced_missing", "paced_duplicates", "burst_missing", "burst_duplicates", "isolated_missing",
    "isolated_duplicates", "dropped_connections",
)  # fmt: skip


def summarize(values: list[Any]) -> dict[str, float]:
    """Median, min and max of a list of figures."""
    clean = [float(v) for v in values if v is not None and v == v]  # drop None and NaN
    if not clean:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(clean), "min": min(clean), "max": max(clean)}


def run(
    connections: int = 5000,
    runs: int = 3,
    systems: tuple[str, ...] = DEFAULT_SYSTEMS,
    large_connections: int | None = None,
    progress: IO[str] | None = sys.stderr,
    client: str = CLIENT,
) -> dict[str, Any]:
    """Run every system `runs` times (rotating their order); return figures, medians and ratios to raw picows."""
    per_system: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    large: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    large_errors: dict[str, str] = {}
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        for r in range(runs):
            # Rotate which system goes first, so a slow phase of the shared machine does not hit one alone.
            order = list(systems[r % len(systems) :] + systems[: r % len(systems)])
            for name in order:
                if name in errors or (r > 0 and name.endswith("-untuned")):
                    continue  # the not-tuned variants run once: they show the pauses, not a median
                what = f"run {r + 1}/{runs}"
                figures = _attempt(name, connections, Path(tmp) / f"{name}-{r}", errors, progress, what, client=client)
                if figures is not None:
                    figures["load"] = _load()
                    loads.append(figures["load"])
                    per_system[name].append(figures)
        if large_connections:
            for name in systems:
                if name.endswith("-untuned"):
                    continue  # the not-tuned variants run once, at the main N
                what = f"{large_connections:,} connections"
                workdir = Path(tmp) / f"{name}-large"
                figures = _attempt(name, large_connections, workdir, large_errors, progress, what, client=client)
                if figures is not None:
                    large[name] = figures
    summary = {
        name: {metric: summarize([f.get(metric) for f in figures]) for metric in METRICS}
        for name, figures in per_system.items()
        if figures
    }
    ratios: dict[str, dict[str, float]] = {}
    if REFERENCE in summary:
        for name in summary:
            ratios[name] = {}
            for metric in COMPARED:
                base, ours = summary[REFERENCE][metric]["median"], summary[name][metric]["median"]
                ratios[name][metric] = ours / base if base else float("nan")
    return {
        "connections": connections,
        "runs": runs,
        "client": client,
        "pinned": shutil.which("taskset") is not None,
        "paced_changes": PACED_CHANGES,
        "paced_interval_s": PACED_INTERVAL_S,
        "burst_changes": BURST_CHANGES,
        "isolated_changes": ISOLATED_CHANGES,
        "reference": REFERENCE,
        "labels": {name: SYSTEMS[name] for name in systems},
        "per_run": per_system,
        "summary": summary,
        "ratios": ratios,
        "large_connections": large_connections,
        "large": large,
        "large_errors": large_errors,
        "saturated_runs": {
            name: sum(1 for f in figures if f.get("loadgen_saturated")) for name, figures in per_system.items()
        },
        "correctness": {
            name: {key: sum(int(f[key]) for f in figures) for key in CORRECTNESS}
            for name, figures in per_system.items()
        },
        "loads": loads,
        "errors": errors,
    }


def _attempt(
    name: str,
    connections: int,
    workdir: Path,
    errors: dict[str, str],
    progress: IO[str] | None,
    what: str,
    *,
    client: str = CLIENT,
) -> dict[str, Any] | None:
    """One run, its failure recorded in `errors` rather than raised."""
    workdir.mkdir()
    if progress:
        print(f"[fanout] {what}: {name}, {connections} connections, load {_load()} ...", file=progress)
    try:
        figures = run_once(name, connections, workdir, client=client)
    except BenchError as exc:
        errors[name] = str(exc)
        if progress:
            print(f"[fanout] {name} failed: {exc}", file=progress)
        return None
    if progress:
        print("[fanout]   " + _one_line(figures), file=progress)
    return figures


def _load() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "unknown"


def _one_line(f: dict[str, Any]) -> str:
    return (
        f"mem/conn {f['mem_per_conn_kib']:.1f} KiB, paced p50/p99 {f['paced_p50_ms']:.0f}/{f['paced_p99_ms']:.0f} ms, "
        f"burst {f['burst_rate']:.0f}/s p50/p99 {f['burst_p50_ms']:.0f}/{f['burst_p99_ms']:.0f} ms, "
        f"cpu/delivery {f['cpu_per_delivery_us']:.1f} us (user {f['user_cpu_per_delivery_us']:.1f}) (loadgen {f['burst_loadgen_cpu_per_delivery_us'] or 0:.1f}), "
        f"cpu % server/loadgen {f['burst_server_cpu_pct']:.0f}/{f['burst_loadgen_cpu_pct'] or 0:.0f}"
        f"{' SATURATED' if f['loadgen_saturated'] else ''}, "
        f"wait % {f['burst_server_wait_pct']:.0f}/{f['burst_loadgen_wait_pct']:.0f}, gc max {f['burst_gc_max_ms']:.0f} ms, "
        f"missing {f['paced_missing'] + f['burst_missing']}, duplicates {f['paced_duplicates'] + f['burst_duplicates']}"
    )


def print_report(result: dict[str, Any], out: IO[str] = sys.stdout) -> None:
    """A plain-text table of medians and ratios to raw picows."""
    names = list(result["summary"])
    print(f"fan-out to {result['connections']} connections, {result['runs']} run(s); medians (ratio to picows)", file=out)
    print(f"{'metric':58}" + "".join(f"{n:>22}" for n in names), file=out)
    for metric, label in METRICS.items():
        cells = ""
        for name in names:
            median = result["summary"][name][metric]["median"]
            ratio = result["ratios"].get(name, {}).get(metric)
            cells += (f"{median:10.1f}" + (f" ({ratio:5.2f}x)" if ratio is not None else "")).rjust(22)
        print(f"{label:58}{cells}", file=out)
    for name, figures in result["large"].items():
        print(f"{result['large_connections']} connections, {name}: " + _one_line(figures), file=out)
    for name, error in result["large_errors"].items():
        print(f"{name} FAILED at {result['large_connections']} connections: {error}", file=out)
    for name, counts in result["correctness"].items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=out)
    for name, error in result["errors"].items():
        print(f"{name} FAILED: {error}", file=out)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Fan-out benchmark: sheetstream beside raw picows, Node ws, ...")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--systems", default=",".join(DEFAULT_SYSTEMS), help=f"Comma-separated, of: {', '.join(SYSTEMS)}."
    )
    parser.add_argument(
        "--large-connections",
        type=int,
        help="One more run per system at this N (every phase; memory per idle connection included).",
    )
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument(
        "--client",
        choices=("native", "picows"),
        default=CLIENT,
        help="The load generator's client (benchmarks/loadgen.py); native, the C one, is the cheapest per message.",
    )
    args = parser.parse_args(argv)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    result = run(args.connections, args.runs, systems, args.large_connections, client=args.client)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
