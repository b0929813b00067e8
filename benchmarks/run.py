"""Run every benchmark and (re)write docs/benchmarks.md with the figures, the machine and how they were measured.

    python -m benchmarks.run [--connections 5000] [--runs 3] [--large-connections 10000] [--output docs/benchmarks.md]

`make bench` runs this: the fan-out benchmark (`benchmarks/bench_fanout.py`, sheetstream beside raw picows,
Node `ws`, websockets `broadcast()` and python-socketio), the end-to-end benchmark (`benchmarks/bench_e2e.py`) and
the diff benchmark (`benchmarks/bench_diff.py`, against daff). Rendering is in `benchmarks/report.py`; the fan-out
plot is written beside the page (docs/img/) when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import bench_fanout, report
from benchmarks.report import fmt, table

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "benchmarks.md"
IMAGES = "img"
"""Folder of the plots, next to the page."""

INTRO = """\
# Benchmarks

This page is written by `make bench` (`python -m benchmarks.run`); edit the templates in `benchmarks/run.py` and
`benchmarks/report.py`, not this file. Benchmarks are not tests: nothing here passes or fails on speed.

The machine is small (2 cores) and shared with other work, so absolute figures move from one day to the next,
and a run can be slowed by whatever else the machine did meanwhile (the load average is given per run). What
holds better is the comparison with the peers measured in the same run, on the same cores, with the same load
generator: read the ratios to raw picows first, and the CPU per delivery before the latencies.

For a quick check: `python -m benchmarks.bench_fanout --connections 1000 --runs 1 --systems fast,picows`
(`--json FILE` keeps every figure; `--systems` takes any of {systems}).
"""

FANOUT_METHOD = """\
**What is measured.** One change delivered to {connections:,} WebSocket subscribers, by each system in turn:

- *sheetstream* is the real server, `python -m sheetstream serve --store sqlite:///… --log-level warning
  --send-queue-size {send_queue}` (plus `--ws-port P` for the picows listener), in its own process{pin_server}.
  It watches a CSV file ({rows} rows x 4 columns); a change rewrites the file atomically (so the source has
  `settle_s` 0: no wait for the file to settle) and calls `POST /v1/sources/{{id}}/refresh`, so each delivery went through the monitor's read and diff, the SQLite commit,
  the in-process bus, the dispatcher and the hub's sessions. The driver learns of each new version from a WebSocket
  subscription of its own on the same endpoint (one more subscriber). *ASGI* is `/v1/ws` on the REST port (uvicorn, a send queue
  and writer task per connection); the *picows listener* writes each change to the sockets directly. *Compress-once
  deflate* is the picows listener with `--ws-deflate`, its clients offering permessage-deflate: one compressed frame
  per change for all of them, and no compressor kept per connection (the load generator inflates each message when
  it decodes them, after the measurement).
- The peers are the servers of `benchmarks/baselines/`, each answering the same `subscribe` with a small snapshot
  and sending change messages of the same shape and size, encoded once, when the driver asks on stdin (no store,
  no bus, no queues): raw picows (`WSTransport.send` in a loop, picows's defaults and auto-ping), Node `ws`
  (`send` of one Buffer in a loop, a ping timer), websockets (`broadcast()`), python-socketio on uvicorn (one
  `emit` to a room). All ping every 20 s, none compresses.
- The load generator, `benchmarks/loadgen.py`, is a separate process{pin_loadgen} holding every connection with
  {client} (Socket.IO framing for python-socketio). **Latency** is each message's receive time (wall clock) minus
  the change's `at` (sheetstream: the commit time; peers: the send time; ms resolution, same clock).
- **Memory**: the server's VmRSS after all subscriptions minus before, per connection.
- **Paced**: {paced} changes, one every {interval:.0f} ms; latency p50/p99 over every delivery.
- **Burst**: {burst} changes, each made as soon as the previous one reached the driver's subscription (peers: as soon
  as the server reports it sent), so the client may still be reading one change when the next arrives. **Deliveries/s** = deliveries / (last receive - first change's `at`). **CPU per
  delivery** = the server's utime + stime over the burst / deliveries (sheetstream's includes reading, diffing and
  committing each change and the refresh request).
- **Readers stopped**: then the load generator is stopped (SIGSTOP) for {isolated} more changes, made the same
  way, and resumed: the server's CPU per delivery when no client reads, so that the client's pace (and waking
  it up) does not weigh on the figure. The messages wait in the sockets' receive buffers; once resumed, every
  connection must still get every one of them.
- **Correctness**: every connection must receive every version once; missing and duplicated
  (connection, version) pairs are counted over all runs and must be 0.
- *Waiting for a CPU* is the run-queue wait of the process's main thread (`/proc/PID/schedstat`): how much the
  shared machine got in the way of a run.
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
        "python-socketio": version_of("python-socketio"),
        "daff": version_of("daff"),
        "node": node_version(),
        "load_before": load_average(),
    }


# --- rendering ----------------------------------------------------------------------------------------------------


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
        ["python-socketio / daff / node", f"{info['python-socketio']} / {info['daff']} / {info['node']}"],
        ["load average before / after (1, 5, 15 min)", f"{info['load_before']} / {info['load_after']}"],
        ["time taken", f"{seconds / 60:.1f} min"],
    ]
    return "\n".join(["## Machine", "", table(["", ""], rows), ""])


# --- the benchmarks ------------------------------------------------------------------------------------------------


def attempt(module: str, **kwargs: Any) -> tuple[dict[str, Any] | None, str | None]:
    """`benchmarks.<module>.run(**kwargs)`: (figures, None) or (None, the error); one failure loses no other."""
    try:
        result: dict[str, Any] = importlib.import_module(f"benchmarks.{module}").run(**kwargs)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return result, None


def description(module: str) -> str:
    """A benchmark module's docstring after its usage line and up to its "Run:" or `run()` sentence."""
    doc = importlib.import_module(f"benchmarks.{module}").__doc__ or ""
    paragraphs = [p for p in doc.split("\n\n") if not p.startswith("    ")]
    text = "\n\n".join(paragraphs[1:] if len(paragraphs) > 1 else paragraphs)
    return text.split("Run:", 1)[0].split("`run()` returns", 1)[0].strip()


def node_version() -> str:
    """The version of node on PATH, or 'not installed'."""
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not installed"


def client_text(fanout: dict[str, Any]) -> str:
    """How the load generator held its connections in these runs."""
    if fanout.get("client") == "native":
        return (
            "`wsload`, a C program with one epoll loop (`benchmarks/native/wsload.c`, started and read by "
            "`benchmarks/native_client.py`): while measuring it only stamps each message with its receive time "
            "and copies it, and nothing is decoded until the messages stopped"
        )
    runs = fanout["per_run"].values()
    loops = sorted({str(f.get("client_loop")) for figures in runs for f in figures if f.get("client_loop")})
    return "the picows client on " + (" and ".join(f"`{loop}`" for loop in loops) or "asyncio")


def render(
    info: dict[str, Any],
    started: datetime,
    seconds: float,
    fanout: dict[str, Any],
    fanout_command: str,
    plots: list[str],
    e2e: list[tuple[dict[str, Any] | None, str | None, str]],
    diff: tuple[dict[str, Any] | None, str | None],
) -> str:
    """The whole page."""
    pinned = fanout["pinned"]
    method = FANOUT_METHOD.format(
        client=client_text(fanout),
        connections=fanout["connections"],
        send_queue=bench_fanout.SEND_QUEUE_SIZE,
        rows=bench_fanout.CSV_ROWS,
        pin_server=" pinned to CPU 0 (`taskset -c 0`)" if pinned else " (not pinned: taskset is missing)",
        pin_loadgen=" pinned to CPU 1" if pinned else " (not pinned)",
        paced=fanout["paced_changes"],
        interval=fanout["paced_interval_s"] * 1000,
        burst=fanout["burst_changes"],
        isolated=fanout.get("isolated_changes", bench_fanout.ISOLATED_CHANGES),
    )
    parts = [
        INTRO.format(systems=", ".join(bench_fanout.SYSTEMS)),
        machine_section(info, started, seconds),
        report.fanout_section(fanout, fanout_command, [f"{IMAGES}/{p}" for p in plots]),
        method,
        report.e2e_section(e2e, description("bench_e2e")),
    ]
    if diff[0] is not None:
        parts.append(
            generic_section("Diff engine (`benchmarks/bench_diff.py`)", diff[0], description("bench_diff"))
        )
    elif diff[1] is not None:
        parts.append(f"## Diff engine\n\n`benchmarks/bench_diff.py` failed:\n\n```\n{diff[1]}\n```\n")
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and write the page."""
    parser = argparse.ArgumentParser(description="Run every benchmark and write docs/benchmarks.md.")
    parser.add_argument("--connections", type=int, default=5000, help="Fan-out subscribers.")
    parser.add_argument("--runs", type=int, default=3, help="Fan-out runs per system.")
    parser.add_argument(
        "--systems", default=",".join(bench_fanout.SYSTEMS), help="Fan-out systems, comma-separated."
    )
    parser.add_argument(
        "--large-connections",
        type=int,
        default=10_000,
        help="One more run per system at this N (every phase; memory per idle connection included; 0: skip).",
    )
    parser.add_argument("--e2e-subscribers", type=int, default=1000)
    parser.add_argument("--skip-diff", action="store_true", help="Do not run benchmarks/bench_diff.py.")
    parser.add_argument("--skip-e2e", action="store_true", help="Do not run benchmarks/bench_e2e.py.")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="Where to write the page.")
    parser.add_argument(
        "--json", type=Path, help="Also keep every figure in this file (to re-render it later)."
    )
    parser.add_argument(
        "--render-only", type=Path, metavar="JSON", help="Only re-render the page from a --json file."
    )
    args = parser.parse_args(argv)
    if args.render_only:
        write_page(json.loads(args.render_only.read_text()), args.output)
        return
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())

    started, t0 = datetime.now(UTC), time.monotonic()
    info = machine()
    fanout = bench_fanout.run(args.connections, args.runs, systems, args.large_connections or None)
    bench_fanout.print_report(fanout)
    e2e = {
        source: (None, "skipped")
        if args.skip_e2e
        else attempt("bench_e2e", subscribers=args.e2e_subscribers, source=source)
        for source in ("file", "sheet")
    }
    diff: tuple[dict[str, Any] | None, str | None] = (None, None) if args.skip_diff else attempt("bench_diff")
    for name, (_, error) in (
        ("bench_e2e file", e2e["file"]),
        ("bench_e2e sheet", e2e["sheet"]),
        ("bench_diff", diff),
    ):
        if error and error != "skipped":
            print(f"{name} failed: {error}", file=sys.stderr)
    info["load_after"] = load_average()
    command = (
        f"python -m benchmarks.bench_fanout --connections {args.connections} --runs {args.runs} "
        f"--systems {','.join(systems)} --large-connections {args.large_connections}"
    )
    results = {
        "info": info,
        "started": started.isoformat(),
        "seconds": time.monotonic() - t0,
        "fanout": fanout,
        "command": command,
        "e2e": list(e2e["file"]),
        "e2e_sheet": list(e2e["sheet"]),
        "diff": list(diff),
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    write_page(results, args.output)


def write_page(results: dict[str, Any], output: Path) -> None:
    """Draw the plots and write the page from the results of a run."""
    plots = report.plot_fanout(results["fanout"], output.parent / IMAGES)
    diff = results["diff"]
    e2e = [(results["e2e"][0], results["e2e"][1], "file")]
    if "e2e_sheet" in results:  # pages rendered from runs before the emulated-sheet case have none
        e2e.append((results["e2e_sheet"][0], results["e2e_sheet"][1], "sheet"))
    page = render(
        results["info"],
        datetime.fromisoformat(results["started"]),
        results["seconds"],
        results["fanout"],
        results["command"],
        plots,
        e2e,
        (diff[0], diff[1]),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
