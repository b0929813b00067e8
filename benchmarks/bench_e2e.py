"""End-to-end benchmark: a write to a watched file reaching every one of 1,000 subscribers.

    python -m benchmarks.bench_e2e [--subscribers 1000] [--changes 30] [--listener fast|asgi]

`sheetstream serve` (SQLite store, pinned to CPU 0) watches a CSV file; 1,000 subscribers are held by the load
generator (`benchmarks/loadgen.py`, picows, pinned to CPU 1) on the picows listener (`--ws-port`, default) or
the ASGI `/v1/ws`. Each change replaces the file atomically (temporary file + rename, so the source needs no
settle delay: `settle_s` 0) and is timed from just before the rename to the moment the last subscriber received
it. Two ways for the server to learn of the write are measured:

- `hint`: nothing but the file-system watcher (watchfiles, which batches events for 20 ms);
- `refresh`: the writer also calls `POST /v1/sources/{id}/refresh` right after the rename.

Changes are made one at a time (the next one after every subscriber got the last), so each is measured alone.
`run()` returns a dict for `benchmarks/run.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.fanout_systems import BenchError, Child, Sheetstream, csv_text, pinned

PAUSE_S = 0.1
"""Between one change's last receipt and the next write."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


def _change(server: Sheetstream, loadgen: Child, subscribers: int, refresh: bool) -> dict[str, float]:
    """One write, timed to its first and last receipt."""
    before = server.version()
    server.value += 1
    tmp = server.csv.with_suffix(".tmp")
    tmp.write_text(csv_text(server.value))
    written = time.time()
    os.replace(tmp, server.csv)
    if refresh:
        assert server.http is not None
        server.http.post(f"/v1/sources/{server.source_id}/refresh")
    version = server._wait_version(lambda v: v > before, "the write's version", timeout=30, poll_s=0.001)
    loadgen.send(cmd="collect", vmin=version, vmax=version, idle_s=10)
    stats = loadgen.expect("stats", timeout=60)
    if stats["missing"] or stats["duplicates"]:
        raise BenchError(f"version {version}: {stats['missing']} missing, {stats['duplicates']} duplicates")
    first, last = stats["receive_span"][str(version)]
    return {"first_ms": 1000 * (first - written), "last_ms": 1000 * (last - written)}


def run(subscribers: int = 1000, changes: int = 30, listener: str = "fast") -> dict[str, Any]:
    """Start the server and the subscribers, time `changes` writes per mode; return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        server = Sheetstream("e2e", Path(tmp), fast=listener == "fast", settle_s=0)
        loadgen: Child | None = None
        try:
            server.start()
            argv = pinned(
                1,
                [
                    sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--source", server.source_id,
                    "--connections", str(subscribers), "--client", "picows",
                ],
            )  # fmt: skip
            loadgen = Child("load generator", argv, Path(tmp) / "loadgen.log")
            subscribed = loadgen.expect("subscribed", timeout=300)
            if subscribed["failed"]:
                raise BenchError(f"{subscribed['failed']} subscribers failed: {subscribed['errors']}")
            modes: dict[str, Any] = {}
            for mode in ("hint", "refresh"):
                _change(server, loadgen, subscribers, refresh=True)  # warm-up, not counted
                timings = []
                for _ in range(changes):
                    time.sleep(PAUSE_S)
                    timings.append(_change(server, loadgen, subscribers, refresh=mode == "refresh"))
                last = [t["last_ms"] for t in timings]
                first = [t["first_ms"] for t in timings]
                modes[mode] = {
                    "write_to_last_p50_ms": statistics.median(last),
                    "write_to_last_p99_ms": percentile(last, 99),
                    "write_to_last_max_ms": max(last),
                    "write_to_first_p50_ms": statistics.median(first),
                    "changes": len(timings),
                }
            loadgen.send(cmd="quit")
            loadgen.expect("closed", timeout=60)
        finally:
            if loadgen is not None:
                loadgen.stop()
            server.stop()
    return {"subscribers": subscribers, "listener": listener, "changes_per_mode": changes, **modes}


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="File write to N subscribers, end to end.")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--listener", choices=("fast", "asgi"), default="fast")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.subscribers, args.changes, args.listener), indent=2))


if __name__ == "__main__":
    main()
