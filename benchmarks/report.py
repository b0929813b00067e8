"""The fan-out, end-to-end and diff figures as Markdown for docs/benchmarks.md, and the fan-out plots as PNG files.

Only rendering: `benchmarks/run.py` runs the benchmarks and hands their results here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import bench_fanout

TARGETS = {
    # The acceptance figures at N = 5,000 and 10,000, as (metric, test on fast's median and the others).
    "cpu": "server CPU per delivery at most 9 µs, and at most 1.2x raw picows",
    "rate": "deliveries/s at least Node ws and at least 0.8x raw picows",
    "p99": "burst p99 at most 1.25x raw picows",
    "peers": "ahead of websockets broadcast() and python-socketio on every figure",
    "memory": "memory per idle connection at {n:,} connections at most 10 KiB",
}
SHORT = {
    "fast": "sheetstream\npicows listener",
    "asgi": "sheetstream\nASGI",
    "picows": "raw\npicows",
    "node": "Node\nws",
    "websockets": "websockets\nbroadcast()",
    "socketio": "python-\nsocketio",
}
"""Names short enough for the plots' axes."""
LOWER_IS_BETTER = {
    "cpu_per_delivery_us",
    "paced_p50_ms",
    "paced_p99_ms",
    "burst_p50_ms",
    "burst_p99_ms",
    "mem_per_conn_kib",
    "isolated_cpu_per_delivery_us",
}


def fmt(value: Any) -> str:
    """A figure with sensible precision."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
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
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _median(result: dict[str, Any], name: str, metric: str) -> float:
    summary = result["summary"].get(name)
    return float(summary[metric]["median"]) if summary else float("nan")


def fanout_section(result: dict[str, Any], command: str, plots: list[str]) -> str:
    """The fan-out part of the page: medians with ratios to raw picows, memory, GC before/after, every run."""
    summary, ratios, labels = result["summary"], result["ratios"], result["labels"]
    names = [n for n in labels if n in summary and not n.endswith("-untuned")]
    out = [
        f"## Fan-out: one change to {result['connections']:,} WebSocket subscribers",
        "",
        f"Command: `{command}` ({result['runs']} run(s) per system, rotating which goes first). Each cell is the "
        "median, then the smallest and largest run; below it, the ratio to raw picows measured in the same run.",
        "",
    ]
    header = ["figure", *[labels[n] for n in names]]
    rows = []
    for metric, label in bench_fanout.METRICS.items():
        row = [label]
        for name in names:
            s = summary[name][metric]
            cell = f"**{fmt(s['median'])}** ({fmt(s['min'])}-{fmt(s['max'])})"
            ratio = ratios.get(name, {}).get(metric)
            if ratio is not None and ratio == ratio:
                cell += f"<br>{ratio:.2f}x"
            row.append(cell)
        rows.append(row)
    out += [table(header, rows), ""]
    if result["large"] or result["large_errors"]:
        out += [large_section(result), ""]
    out += [gc_section(result), acceptance_section(result), reading(result), ""]
    out += [f"![{p}]({p})" for p in plots]
    if plots:
        out.append("")
    correctness = "; ".join(
        f"{labels[n]}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items())
        for n, c in result["correctness"].items()
        if n in summary
    )
    saturated = ", ".join(f"{labels[n]} {k}" for n, k in result["saturated_runs"].items() if k)
    out += [
        f"Correctness over all runs (must all be 0): {correctness}.",
        "",
        "Runs where the load generator used more than 90 % of its core during the burst (the client, not the "
        f"server, may have set the pace there): {saturated or 'none'}.",
        "",
        "Every run:",
        "",
        per_run_table(result),
        "",
    ]
    for name, error in result["errors"].items():
        out += [f"**{labels.get(name, name)} did not run to the end:**", "", "```", error, "```", ""]
    return "\n".join(out)


def gc_section(result: dict[str, Any]) -> str:
    """Before/after of the collector tuning, when the untuned systems ran."""
    pairs = [
        (n, f"{n}-untuned")
        for n in ("fast", "asgi")
        if n in result["summary"] and f"{n}-untuned" in result["summary"]
    ]
    if not pairs:
        return ""
    keys = ("burst_gc_max_ms", "burst_gc_share_pct", "paced_p99_ms", "burst_p99_ms", "cpu_per_delivery_us")
    rows = []
    for tuned, untuned in pairs:
        for name in (untuned, tuned):
            rows.append([result["labels"][name], *[fmt(_median(result, name, k)) for k in keys]])
    return "\n".join(
        [
            "**Garbage collection, before and after** (`sheetstream.runtime.gc_tuning`: `gc.freeze()` once started, "
            "youngest-generation threshold 20,000; *not tuned* runs the same server with the tuning switched off):",
            "",
            table(["system", "longest GC pause (ms)", "burst time in GC (%)", "paced p99 (ms)", "burst p99 (ms)",
                   "CPU per delivery (µs)"], rows),
            "",
        ]
    )  # fmt: skip


def acceptance_section(result: dict[str, Any]) -> str:
    """The issue's acceptance figures for the picows listener, computed from the medians of this run."""
    if "fast" not in result["summary"] or "picows" not in result["summary"]:
        return ""
    fast = {k: _median(result, "fast", k) for k in bench_fanout.METRICS}
    picows = {k: _median(result, "picows", k) for k in bench_fanout.METRICS}
    node_rate = _median(result, "node", "burst_rate")
    rows = [
        [TARGETS["cpu"], f"{fmt(fast['cpu_per_delivery_us'])} µs, {fast['cpu_per_delivery_us'] / picows['cpu_per_delivery_us']:.2f}x "
                         f"(readers stopped: {fmt(fast['isolated_cpu_per_delivery_us'])} µs, "
                         f"{fast['isolated_cpu_per_delivery_us'] / picows['isolated_cpu_per_delivery_us']:.2f}x)"],
        [TARGETS["rate"], f"{fmt(fast['burst_rate'])}/s: {fast['burst_rate'] / node_rate:.2f}x Node ws, "
                          f"{fast['burst_rate'] / picows['burst_rate']:.2f}x picows"],
        [TARGETS["p99"], f"{fast['burst_p99_ms'] / picows['burst_p99_ms']:.2f}x"],
    ]  # fmt: skip
    behind = []
    for peer in ("websockets", "socketio"):
        if peer not in result["summary"]:
            continue
        for metric in bench_fanout.COMPARED:
            ours, theirs = fast[metric], _median(result, peer, metric)
            worse = ours > theirs if metric in LOWER_IS_BETTER else ours < theirs
            if worse:
                behind.append(f"{bench_fanout.METRICS[metric]} vs {result['labels'][peer]}")
    rows.append([TARGETS["peers"], "yes" if not behind else "behind on: " + "; ".join(behind)])
    if "fast" in result["large"]:
        target = TARGETS["memory"].format(n=result["large_connections"])
        rows.append([target, f"{fmt(result['large']['fast']['mem_per_conn_kib'])} KiB"])
    return "\n".join(
        [
            "**The picows listener against the issue's targets** (medians of this run):",
            "",
            table(["target", "measured"], rows),
            "",
        ]
    )


BACKLOG_RATIO = 1.2
"""A burst whose last changes' median latency exceeds its first ones' by this much fell behind at the client."""


def reading(result: dict[str, Any]) -> str:
    """A paragraph on what the figures say and where they stop saying it, from the figures themselves."""
    if "fast" not in result["summary"]:
        return ""
    parts = ["**Reading the figures.**"]
    user, system = (
        _median(result, "fast", "user_cpu_per_delivery_us"),
        _median(result, "fast", "system_cpu_per_delivery_us"),
    )
    total = _median(result, "fast", "cpu_per_delivery_us")
    parts.append(
        f"The picows listener's CPU per delivery, {fmt(total)} µs, splits into the kernel's (the socket send "
        f"itself; median {fmt(system)} µs) and its own (median {fmt(user)} µs): the send through picows (on asyncio's transport, "
        "its buffer check answered in C), the hub's fan-out to the source's live group (one call "
        "per change for the subscribers in step, looping over their sockets in C; the sessions decide only for "
        "those that are not), and each change's read, diff, commit and refresh request shared by all subscribers."
    )
    if "picows" in result["summary"]:
        parts.append(
            f"Raw picows spends {fmt(_median(result, 'picows', 'system_cpu_per_delivery_us'))} µs in the kernel and "
            f"{fmt(_median(result, 'picows', 'user_cpu_per_delivery_us'))} µs of its own: it keeps no state per "
            "subscriber, which is the floor."
        )
    saturated = sum(result["saturated_runs"].values())
    if saturated:
        parts.append(
            f"In {saturated} run(s) the load generator was above 90 % of its core during the burst: there "
            "deliveries/s and latencies are partly the client's limit."
        )
    parts.append(
        "The client's pace moves the servers' CPU per delivery too: a reader that keeps up sleeps between "
        "messages, and each send must then wake it, in the sender's system time. The figure with the readers "
        "stopped leaves the client out: it is the steadier comparison of the servers' own cost."
    )
    if "fast-deflate" in result["summary"]:
        parts.append(
            "With `--ws-deflate` and every client offering permessage-deflate, the picows listener compresses each "
            f"change once and sends the same frame to all: {fmt(_median(result, 'fast-deflate', 'cpu_per_delivery_us'))}"
            f" µs of CPU per delivery (readers stopped: "
            f"{fmt(_median(result, 'fast-deflate', 'isolated_cpu_per_delivery_us'))} µs), for messages of "
            f"{fmt(_median(result, 'fast-deflate', 'frame_bytes'))} bytes instead of "
            f"{fmt(_median(result, 'fast', 'frame_bytes'))}, with no compressor kept per connection."
        )
    backlog = [
        f"{result['labels'][n]} {fmt(_median(result, n, 'burst_first_p50_ms'))} to "
        f"{fmt(_median(result, n, 'burst_last_p50_ms'))} ms"
        for n in ("fast", "picows", "node", "websockets")
        if n in result["summary"] and "burst_first_p50_ms" in result["summary"][n]
    ]
    if backlog:
        behind = [
            result["labels"][n]
            for n in result["summary"]
            if _median(result, n, "burst_last_p50_ms") > BACKLOG_RATIO * _median(result, n, "burst_first_p50_ms")
        ]
        parts.append(
            "Median latency over the burst's first 10 changes, then over its last 10: " + "; ".join(backlog) + ". "
            + (
                "Where the later changes wait longer, the server sent faster than the load generator read "
                "(" + ", ".join(behind) + "): each change then also waits behind the earlier ones at the client, "
                "and those burst latencies are partly the client's."
                if behind
                else "No latency grew through the burst: the load generator kept up with every server."
            )
        )
    waits = [_median(result, n, "burst_server_wait_pct") for n in result["summary"]]
    parts.append(
        f"Servers waited for their core {fmt(min(waits))}-{fmt(max(waits))} % of the burst (medians per system; "
        f"load averages per run in the last column below): latencies move with that far more than CPU per "
        "delivery does."
    )
    return " ".join(parts) + "\n"


LARGE_FIGURES = [
    ("burst_rate", "burst deliveries/s"),
    ("burst_p50_ms", "burst p50 (ms)"),
    ("burst_p99_ms", "burst p99 (ms)"),
    ("paced_p99_ms", "paced p99 (ms)"),
    ("cpu_per_delivery_us", "CPU per delivery (µs)"),
    ("isolated_cpu_per_delivery_us", "readers stopped (µs)"),
]


def large_section(result: dict[str, Any]) -> str:
    """The run of each system at `large_connections`: memory per idle connection, and the fan-out figures."""
    runs, labels = result["large"], result["labels"]
    reference = runs.get(bench_fanout.REFERENCE, {})
    header = ["system", "KiB per connection", "server RSS (MiB)", "time to subscribe (s)"]
    header += [label for _, label in LARGE_FIGURES] + ["loadgen CPU %", "missing, duplicated, dropped"]
    rows = []
    for name, f in runs.items():
        row = [labels[name], f"**{fmt(f['mem_per_conn_kib'])}**", fmt(f["rss_after_mib"]), fmt(f["subscribe_s"])]
        for key, _ in LARGE_FIGURES:
            cell = fmt(f.get(key))
            base = reference.get(key)
            if base and f.get(key) is not None:
                cell += f" ({f[key] / base:.2f}x)"
            row.append(cell)
        lost = sum(int(f.get(key, 0)) for key in bench_fanout.CORRECTNESS)
        row += [fmt(f.get("burst_loadgen_cpu_pct")), str(lost)]
        rows.append(row)
    lines = [
        f"**At {result['large_connections']:,} connections** (one run each, the same phases; memory per idle "
        "connection read after every subscription, before the first change; in brackets the ratio to raw "
        "picows in this pass):",
        "",
        table(header, rows),
    ]
    for name, error in result["large_errors"].items():
        lines += ["", f"{labels[name]} failed at {result['large_connections']:,} connections: {error}"]
    return "\n".join(lines)


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
        ("loadgen_saturated", "loadgen saturated"),
        ("burst_server_wait_pct", "server CPU-wait %"),
        ("burst_loadgen_wait_pct", "loadgen CPU-wait %"),
        ("burst_gc_max_ms", "longest GC ms"),
        ("load", "load average"),
    ]
    rows = []
    for name, runs in result["per_run"].items():
        for i, figures in enumerate(runs, 1):
            rows.append([f"{name} #{i}", *[fmt(figures.get(k)) for k, _ in keys]])
    return table(["run", *[label for _, label in keys]], rows)


def plot_fanout(result: dict[str, Any], folder: Path) -> list[str]:
    """Bar charts of the main medians as PNG files in `folder`; their names (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    summary, labels = result["summary"], result["labels"]
    names = [n for n in labels if n in summary and not n.endswith("-untuned")]
    charts = [
        ("burst_rate", "deliveries/s (higher is better)"),
        ("cpu_per_delivery_us", "server CPU per delivery, µs (lower is better)"),
        ("burst_p99_ms", "burst latency p99, ms (lower is better)"),
        ("mem_per_conn_kib", "memory per connection, KiB (lower is better)"),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, (metric, title) in zip(axes.flat, charts, strict=True):
        values = [summary[n][metric]["median"] for n in names]
        lows = [v - summary[n][metric]["min"] for n, v in zip(names, values, strict=True)]
        highs = [summary[n][metric]["max"] - v for n, v in zip(names, values, strict=True)]
        colors = ["#2b6cb0" if n in ("fast", "asgi") else "#a0aec0" for n in names]
        ax.bar(range(len(names)), values, yerr=[lows, highs], color=colors, capsize=3)
        ax.set_xticks(range(len(names)), [SHORT.get(n, n) for n in names], fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Fan-out to {result['connections']:,} connections (medians, min-max bars)")
    fig.tight_layout()
    name = "fanout.png"
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return [name]


E2E_WAYS = {"file": ("hint", "refresh"), "sheet": ("push", "refresh")}
E2E_SOURCES = {"file": "A CSV file", "sheet": "A sheet on the local Google emulator"}


def e2e_section(runs: list[tuple[dict[str, Any] | None, str | None, str]], description: str) -> str:
    """The end-to-end benchmark's tables: one per source kind, from (result, error, source) triples."""
    out = ["## A write reaching its subscribers, end to end (`benchmarks/bench_e2e.py`)", "", description, ""]
    keys = ("write_to_last_p50_ms", "write_to_last_p99_ms", "write_to_last_max_ms", "write_to_first_p50_ms")
    for result, error, source in runs:
        if result is None:
            out += [f"{E2E_SOURCES[source]}: did not run: `{error}`", ""]
            continue
        rows = [
            [way, *[fmt(result[way][k]) for k in keys], fmt(result[way]["changes"])]
            for way in E2E_WAYS[source]
        ]
        out += [
            f"{E2E_SOURCES[source]}, {result['subscribers']:,} subscribers on the {result['listener']} listener:",
            "",
            table(["how the server learns of the write", "write to last receipt p50 (ms)", "p99 (ms)", "max (ms)",
                   "write to first receipt p50 (ms)", "changes"], rows),
            "",
        ]  # fmt: skip
    return "\n".join(out)
