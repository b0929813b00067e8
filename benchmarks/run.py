"""Run every benchmark and (re)write docs/benchmarks.md with the figures, the machine and how they were measured.

    python -m benchmarks.run [--connections 5000] [--runs 3] [--client picows] [--output docs/benchmarks.md]

`make bench` runs this. The fan-out benchmark is `benchmarks/bench_fanout.py`; the diff benchmark,
`benchmarks/bench_diff.py`, is run when it exists (its `run()` returns a dict, shown as tables).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import bench_fanout

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "benchmarks.md"

INTRO = """\
# Benchmarks

This page is written by `make bench` (`python -m benchmarks.run`); edit the template in `benchmarks/run.py`, not
this file. Benchmarks are not tests: nothing here passes or fails on speed. Every figure is the median of repeated
runs, with the smallest and largest run beside it.

The machine is small (2 cores) and shared with other work, so absolute figures move from one day to the next. What
holds better is the comparison with a baseline measured in the same run, on the same cores, with the same load
generator: read the ratios first.

For a quick check of the fan-out benchmark alone: `python -m benchmarks.bench_fanout --connections 500 --runs 1`
(`--targets sheetstream` skips the baseline, `--json FILE` keeps every figure). The load generator uses `picows`
when it is installed, else the `websockets` client; in a one-off comparison here (baseline server, 5,000
connections) the `websockets` client spent about 40 µs of CPU per received message against about 27 µs for
`picows`, and fell seconds behind, so with it the figures measure the client more than the server.
"""

FANOUT_METHOD = """\
**What is measured.** One change to a watched file is delivered to {connections:,} WebSocket subscribers.

- *sheetstream* is the real server, `python -m sheetstream serve --store sqlite:///… --log-level warning
  --send-queue-size {send_queue}`, in its own process{pin_server}. It watches a CSV file ({rows} rows x 4 columns,
  poll interval 30 s); a change rewrites the file atomically (temporary file + `os.replace`) and calls
  `POST /v1/sources/{{id}}/refresh`, so each delivery went through the monitor's read and diff, the SQLite commit,
  the in-process bus, the dispatcher and each connection's send queue.
- *baseline* is `benchmarks/baseline_broadcast.py`: a plain `websockets` server that answers the same `subscribe`
  with a small snapshot and sends change messages of the same shape and size with `websockets.broadcast()` when the
  driver asks on its stdin (no store, no bus, no queues), also in its own process{pin_server}.
- The load generator, `benchmarks/loadgen.py`, is a separate process{pin_loadgen} holding every connection with
  the `{client}` client (no compression, no client pings). Each connection subscribes and waits for its snapshot;
  then every `change` it receives is recorded with `time.time()`. **Latency** is that receive time minus the change's
  `at` (sheetstream: the commit time; baseline: the send time; ms resolution, same clock).
- **Memory**: the server's VmRSS (`/proc/PID/status`) after all subscriptions minus before, per connection.
- **Paced**: {paced} changes, one every {interval:.0f} ms; latency p50/p99 over every delivery.
- **Burst**: {burst} changes, each made as soon as the previous one is committed (sheetstream: the version moved
  in `GET /v1/sources/{{id}}`; baseline: `broadcast()` returned), so fan-out of one change overlaps the next commit.
  **Deliveries/s** = deliveries / (last receive - first change's `at`). **CPU per delivery** = the server's
  utime + stime (`/proc/PID/stat`) over the burst / deliveries; for sheetstream it includes the HTTP calls the
  driver makes (refresh and version polls), a small share next to {connections:,} sends per change.
- **Correctness**: every connection must receive every committed version once; missing and duplicated
  (connection, version) pairs are counted over all runs and must be 0.
- *Waiting for a CPU* is the run-queue wait of the process's main thread (`/proc/PID/schedstat`): the share of
  the time it was ready to run but another process had the core. It shows how much the shared machine got in the
  way of a run.
"""


# --- machine ------------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    """Total memory in GiB, from /proc/meminfo."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def version_of(package: str) -> str:
    """An installed package's version, or 'not installed'."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "websockets": version_of("websockets"),
        "picows": version_of("picows"),
        "uvicorn": version_of("uvicorn"),
        "load_before": load_average(),
    }


# --- rendering ----------------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A figure with sensible precision."""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1 or value == 0:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fanout_section(result: dict[str, Any], command: str) -> str:
    """The fan-out benchmark's part of the page."""
    pinned = result["pinned"]
    out = [
        f"## Fan-out: one change to {result['connections']:,} WebSocket subscribers",
        "",
        f"Command: `{command}` ({result['runs']} run(s) per system, alternating which goes first).",
        "",
    ]
    summary, ratios = result["summary"], result["ratios"]
    names = [n for n in ("sheetstream", "baseline") if n in summary]
    if names:
        header = ["figure", *[f"{n} median (min-max)" for n in names]]
        if ratios:
            header.append("sheetstream / baseline")
        rows = []
        for metric, label in bench_fanout.METRICS.items():
            row = [label]
            for name in names:
                s = summary[name][metric]
                row.append(f"**{fmt(s['median'])}** ({fmt(s['min'])}-{fmt(s['max'])})")
            if ratios:
                ratio = ratios.get(metric, float("nan"))
                row.append(f"{ratio:.2f}x" if ratio == ratio else "")
            rows.append(row)
        out += [table(header, rows), ""]
        correctness = "; ".join(
            f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
            for name, counts in result["correctness"].items()
            if name in summary
        )
        out += [f"Correctness over all runs (must all be 0): {correctness}.", ""]
        out += ["Every run:", "", per_run_table(result), ""]
    for name, error in result["errors"].items():
        out += [f"**{name} did not run to the end:**", "", "```", error, "```", ""]
    out += [
        FANOUT_METHOD.format(
            connections=result["connections"],
            send_queue=bench_fanout.SEND_QUEUE_SIZE,
            rows=bench_fanout.CSV_ROWS,
            pin_server=" pinned to CPU 0 (`taskset -c 0`)" if pinned else " (not pinned: taskset is missing)",
            pin_loadgen=" pinned to CPU 1" if pinned else " (not pinned)",
            client=result["client"],
            paced=result["paced_changes"],
            interval=result["paced_interval_s"] * 1000,
            burst=result["burst_changes"],
        ),
        fanout_reading(result),
        "",
    ]
    return "\n".join(out)


def per_run_table(result: dict[str, Any]) -> str:
    """One row per run and system: the figures the medians come from."""
    keys = [
        ("mem_per_conn_kib", "KiB/conn"),
        ("paced_p50_ms", "paced p50 ms"),
        ("paced_p99_ms", "paced p99 ms"),
        ("burst_rate", "burst deliveries/s"),
        ("burst_p50_ms", "burst p50 ms"),
        ("burst_p99_ms", "burst p99 ms"),
        ("cpu_per_delivery_us", "server µs/delivery"),
        ("burst_loadgen_cpu_pct", "loadgen CPU %"),
        ("burst_server_wait_pct", "server CPU-wait %"),
        ("burst_loadgen_wait_pct", "loadgen CPU-wait %"),
        ("burst_gc_max_ms", "longest GC ms"),
        ("paced_versions", "paced versions"),
        ("burst_versions", "burst versions"),
    ]
    rows = []
    for name, runs in result["per_run"].items():
        for i, figures in enumerate(runs, 1):
            rows.append([f"{name} #{i}", *[fmt(figures.get(k, float("nan"))) for k, _ in keys]])
    return table(["run", *[label for _, label in keys]], rows)


def fanout_reading(result: dict[str, Any]) -> str:
    """One paragraph on what the figures mean and where they stop meaning it, from the figures themselves."""
    summary, ratios = result["summary"], result["ratios"]
    if "sheetstream" not in summary:
        return "**Reading the figures.** sheetstream did not complete a run, so there is nothing to compare."
    ours = {k: v["median"] for k, v in summary["sheetstream"].items()}
    parts = ["**Reading the figures.**"]
    if ratios:
        parts.append(
            f"Per delivery, sheetstream spends {ratios['cpu_per_delivery_us']:.1f}x the server CPU of a bare "
            f"`websockets.broadcast()` ({fmt(ours['cpu_per_delivery_us'])} µs against "
            f"{fmt(summary['baseline']['cpu_per_delivery_us']['median'])} µs) and holds "
            f"{ratios['mem_per_conn_kib']:.1f}x the memory per connection; that is the price of what the baseline "
            "does not do: a committed, versioned change log, a send queue per connection that closes slow "
            "consumers instead of buffering without bound, and gap-free resume. The CPU figure is the most stable "
            "one here, since it does not depend on when the scheduler let each process run."
        )
    lg_cpu, lg_wait = ours["burst_loadgen_cpu_pct"], ours["burst_loadgen_wait_pct"]
    lg_us, srv_us = ours["burst_loadgen_cpu_per_delivery_us"], ours["cpu_per_delivery_us"]
    if lg_cpu + lg_wait >= 80 and lg_us >= srv_us * 0.8:
        verdict = (
            "so the load generator was (close to) saturated and latencies and deliveries/s are in part its limit, "
            "not the server's"
        )
    else:
        pacer = (
            "the server"
            if ours["burst_server_wait_pct"] < 30
            else "the server and the other work on its core"
        )
        verdict = f"so during sheetstream's burst the load generator had headroom and {pacer}, not the client, set the pace"
    parts.append(
        f"The load generator is Python too: during sheetstream's burst it used {fmt(lg_cpu)} % of its core and "
        f"{fmt(lg_us)} µs per delivery (the server {fmt(srv_us)} µs), and waited for a CPU {fmt(lg_wait)} % of the "
        f"time, {verdict}."
    )
    if "baseline" in summary:
        base = {k: v["median"] for k, v in summary["baseline"].items()}
        busy = base["burst_loadgen_cpu_pct"] + base["burst_loadgen_wait_pct"]
        if busy >= 80:
            parts.append(
                f"During the baseline's burst, though, the load generator was busy or waiting for its core "
                f"{fmt(busy)} % of the time ({fmt(base['burst_loadgen_cpu_per_delivery_us'])} µs per delivery): the "
                "baseline's deliveries/s and latencies are partly the client's limit, so its true figures are "
                "better and the deliveries/s and latency ratios flatter sheetstream; the CPU-per-delivery ratio "
                "does not depend on the client."
            )
        else:
            parts.append(
                f"During the baseline's burst the load generator was busy or waiting {fmt(busy)} % of the time, so "
                "it had headroom there too."
            )
    gc_max, gc_share = ours["burst_gc_max_ms"], ours["burst_gc_share_pct"]
    if gc_max >= 100:
        base_gc = summary["baseline"]["burst_gc_max_ms"]["median"] if "baseline" in summary else float("nan")
        parts.append(
            f"sheetstream's latency tail is mostly pauses of the whole server process, not slow connections: its "
            f"longest garbage collection during the burst took {fmt(gc_max)} ms of wall-clock time "
            f"({fmt(gc_share)} % of the burst "
            f"went to collections of 5 ms or more; baseline: longest {fmt(base_gc)} ms). Such a pause delays every "
            "delivery of the change in flight, which is why p99 sits so far above p50 (`--json` output lists each "
            "version's median and largest latency: a few versions are late as a whole)."
        )
    paced_versions = [f["paced_versions"] for f in result["per_run"]["sheetstream"]]
    if min(paced_versions) < result["paced_changes"]:
        parts.append(
            f"In the paced test sheetstream committed {min(paced_versions)}-{max(paced_versions)} versions for "
            f"{result['paced_changes']} writes: a change took longer to fan out than the pause before the next "
            "one, so the monitor read the file less often and committed several writes as one version (coalescing, "
            "as intended); every committed version still reached every subscriber."
        )
    parts.append(
        f"Both processes also waited for a CPU (sheetstream's server {fmt(ours['burst_server_wait_pct'])} % of the "
        f"burst; load average {result.get('load', 'unknown')}): on this shared 2-core machine other work took turns "
        "on the pinned cores, which stretches latencies (p99 most) far more than it changes CPU per delivery. "
        "Latencies are for changes that each touch one cell (a ~"
        f"{fmt(ours['frame_bytes'])}-byte message); larger changes cost more per delivery in both systems, and "
        "permessage-deflate, which browsers negotiate, would add one compression per message per connection."
    )
    return " ".join(parts)


def inline(value: Any) -> str:
    """A nested value on one line: `a: 1, b: 2` for a dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return fmt(value)


def _dict_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def generic_section(title: str, result: Any, description: str = "") -> str:
    """A benchmark's returned dict as Markdown tables.

    A "markdown" entry is taken verbatim. Entries that are dicts sharing the same keys (e.g. median_s, min_s,
    max_s) become one table with a row each; other dicts become a figure/value table; scalars are listed last.
    """
    out = [f"## {title}", ""]
    if description:
        out += [description, ""]
    if not isinstance(result, dict):
        return "\n".join([*out, f"```\n{result!r}\n```", ""])
    if isinstance(result.get("markdown"), str):
        return "\n".join([*out, result["markdown"].strip(), ""])
    timed = {k: v for k, v in result.items() if isinstance(v, dict) and "median_s" in v}
    if timed:
        columns = list(dict.fromkeys(c for v in timed.values() for c in v))
        rows = [[f"`{k}`", *[inline(v.get(c, "")) for c in columns]] for k, v in timed.items()]
        out += [table(["", *columns], rows), ""]
    for key, value in result.items():
        if key in timed:
            continue
        if isinstance(value, dict):
            out += [
                f"**{key}**",
                "",
                table(["figure", "value"], [[k, inline(v)] for k, v in value.items()]),
                "",
            ]
        elif _dict_list(value):
            columns = list(dict.fromkeys(c for v in value for c in v))
            out += [
                f"**{key}**",
                "",
                table(columns, [[inline(v.get(c, "")) for c in columns] for v in value]),
                "",
            ]
    scalars = [[k, inline(v)] for k, v in result.items() if not isinstance(v, dict) and not _dict_list(v)]
    if scalars:
        out += [table(["figure", "value"], scalars), ""]
    return "\n".join(out)


def machine_section(info: dict[str, Any], started: datetime, seconds: float) -> str:
    """Where and when the figures were measured."""
    rows = [
        ["date", started.strftime("%Y-%m-%d %H:%M UTC")],
        ["CPU", info["cpu"]],
        ["cores", fmt(info["cores"])],
        ["RAM", f"{info['ram_gib']:.0f} GiB"],
        ["Python", info["python"]],
        ["kernel", info["kernel"]],
        ["websockets / picows / uvicorn", f"{info['websockets']} / {info['picows']} / {info['uvicorn']}"],
        ["load average before / after (1, 5, 15 min)", f"{info['load_before']} / {info['load_after']}"],
        ["time taken", f"{seconds / 60:.1f} min"],
    ]
    return "\n".join(["## Machine", "", table(["", ""], rows), ""])


# --- main -----------------------------------------------------------------------------------------------------------


def run_diff() -> tuple[dict[str, Any] | None, str | None]:
    """bench_diff.run() when benchmarks/bench_diff.py exists: (figures, None), (None, error) or (None, None)."""
    if importlib.util.find_spec("benchmarks.bench_diff") is None:
        return None, None
    try:
        module = importlib.import_module("benchmarks.bench_diff")
        result: dict[str, Any] = module.run()
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        return None, f"{type(exc).__name__}: {exc}"
    return result, None


def diff_description() -> str:
    """The diff benchmark's module docstring up to its "Run:" line: what it measures and against what."""
    module = sys.modules.get("benchmarks.bench_diff")
    doc = (module.__doc__ or "") if module is not None else ""
    return doc.split("Run:", 1)[0].strip()


def render(
    info: dict[str, Any],
    started: datetime,
    seconds: float,
    fanout: dict[str, Any],
    fanout_command: str,
    diff: dict[str, Any] | None,
    diff_error: str | None,
) -> str:
    """The whole page."""
    parts = [INTRO, machine_section(info, started, seconds), fanout_section(fanout, fanout_command)]
    if diff is not None:
        parts.append(generic_section("Diff engine (`benchmarks/bench_diff.py`)", diff, diff_description()))
    elif diff_error is not None:
        parts.append(f"## Diff engine\n\n`benchmarks/bench_diff.py` failed:\n\n```\n{diff_error}\n```\n")
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and write the page."""
    parser = argparse.ArgumentParser(description="Run every benchmark and write docs/benchmarks.md.")
    parser.add_argument("--connections", type=int, default=5000, help="Fan-out subscribers.")
    parser.add_argument("--runs", type=int, default=3, help="Fan-out runs per system.")
    parser.add_argument("--client", choices=("websockets", "picows"), help="Load generator client.")
    parser.add_argument("--skip-diff", action="store_true", help="Do not run benchmarks/bench_diff.py.")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="Where to write the page.")
    args = parser.parse_args(argv)

    started, t0 = datetime.now(UTC), time.monotonic()
    info = machine()
    fanout = bench_fanout.run(args.connections, args.runs, client=args.client)
    bench_fanout.print_report(fanout)
    fanout["load"] = load_average()
    diff, diff_error = (None, None) if args.skip_diff else run_diff()
    if diff_error:
        print(f"bench_diff failed: {diff_error}", file=sys.stderr)
    info["load_after"] = load_average()
    fanout_command = (
        f"python -m benchmarks.bench_fanout --connections {args.connections} --runs {args.runs} "
        f"--client {fanout['client']}"
    )
    page = render(info, started, time.monotonic() - t0, fanout, fanout_command, diff, diff_error)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
