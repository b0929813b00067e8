"""End-to-end benchmark: a write to a watched file reaching every one of 1,000 subscribers.

    python -m benchmarks.bench_e2e [--subscribers 1000] [--changes 30] [--listener fast|asgi] [--source file|sheet]

`sheetstream serve` (SQLite store, pinned to CPU 0) watches a CSV file; 1,000 subscribers are held by the load
generator (`benchmarks/loadgen.py`, its C client `wsload`, pinned to CPU 1) on the picows listener (`--ws-port`, default) or
the ASGI `/v1/ws`. Each change replaces the file atomically (temporary file + rename, so the source needs no
settle delay: `settle_s` 0) and is timed from just before the rename to the moment the last subscriber received
it. Two ways for the server to learn of the write are measured:

- `hint`: nothing but the file-system watcher (watchfiles, which hands events on after 5 ms of quiet);
- `refresh`: the writer also calls `POST /v1/sources/{id}/refresh` right after the rename.

`--source sheet` does the same with a `google_sheets` source on the local Google emulator (`sheetstream emulator`,
its own process, push notifications without coalescing delay): each change is a `values.update` of one cell,
timed from just before the call. Its two ways: `push` (the Drive push channel the monitor opens on the emulator,
posting to `/v1/hooks/drive`) and `refresh` (the writer calls the refresh endpoint after the update). Every read
is a Drive version check plus one `values.batchGet`, as against Google.

Changes are made one at a time (the next one after every subscriber got the last), so each is measured alone.
`run()` returns a dict for `benchmarks/run.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.fanout_systems import BenchError, Child, Sheetstream, free_port, pinned

PAUSE_S = 0.1
"""Between one change's last receipt and the next write."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


SHEET_ID = "bench-sheet"
SHEET_SEED = {
    "spreadsheets": [
        {
            "id": SHEET_ID,
            "title": "Bench",
            "sheets": [{"title": "Sheet1", "rows": [["name", "value"], ["x", 0]]}],
        }
    ],
    "quotas": {
        "read_per_user": 1_000_000,
        "read_per_project": 1_000_000,
        "write_per_user": 1_000_000,
        "write_per_project": 1_000_000,
    },
}


class Emulator:
    """`sheetstream emulator` in a process of its own, seeded with one spreadsheet; `write` sets its cell B2."""

    def __init__(self, workdir: Path) -> None:
        seed = workdir / "seed.json"
        seed.write_text(json.dumps(SHEET_SEED))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable, "-m", "sheetstream", "emulator", "--port", str(self.port), "--push-delay-s", "0",
            "--seed-file", str(seed),
        ]  # fmt: skip
        self.log = (workdir / "emulator.log").open("w")
        self.proc = subprocess.Popen(pinned(1, argv), stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": "Bearer bench"}, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get(f"/v4/spreadsheets/{SHEET_ID}").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the emulator did not start (see {workdir / 'emulator.log'})")
            time.sleep(0.1)

    def write(self, value: int) -> None:
        response = self.http.put(
            f"/v4/spreadsheets/{SHEET_ID}/values/Sheet1!B2", params={"valueInputOption": "RAW"},
            json={"values": [[value]]},
        )  # fmt: skip
        if response.status_code != 200:
            raise BenchError(f"values.update answered {response.status_code}: {response.text[:300]}")

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _change(
    server: Sheetstream, loadgen: Child, write: Callable[[], None], refresh: bool
) -> dict[str, float]:
    """One write, timed to its first and last receipt."""
    before = server.version()
    written = time.time()
    write()
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


def run(
    subscribers: int = 1000, changes: int = 30, listener: str = "fast", source: str = "file"
) -> dict[str, Any]:
    """Start the server and the subscribers, time `changes` writes per mode; return the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        server = Sheetstream("e2e", Path(tmp), fast=listener == "fast", follow=False)
        loadgen: Child | None = None
        emulator: Emulator | None = None
        try:
            if source == "sheet":
                emulator = Emulator(Path(tmp))
                port = free_port()
                server.start_server(
                    "--public-url", f"http://127.0.0.1:{port}", "--google-reads-per-min", "1000000",
                    "--google-project-reads-per-min", "1000000", port=port,
                )  # fmt: skip
                config = {
                    "spreadsheet_id": SHEET_ID, "base_url": emulator.url, "credentials": {"access_token": "bench"},
                    "min_interval_s": 0.01,
                }  # fmt: skip
                server.register("google_sheets", config, poll_interval_s=30)
                sheet = emulator

                def write() -> None:
                    server.value += 1
                    sheet.write(server.value)

                ways = ("push", "refresh")
            else:
                server.start()

                write = server.write

                ways = ("hint", "refresh")
            argv = pinned(
                1,
                [
                    sys.executable, "-m", "benchmarks.loadgen", "--url", server.url, "--source", server.source_id,
                    "--connections", str(subscribers), "--client", "native",
                ],
            )  # fmt: skip
            loadgen = Child("load generator", argv, Path(tmp) / "loadgen.log")
            subscribed = loadgen.expect("subscribed", timeout=300)
            if subscribed["failed"]:
                raise BenchError(f"{subscribed['failed']} subscribers failed: {subscribed['errors']}")
            modes: dict[str, Any] = {}
            for mode in ways:
                _change(server, loadgen, write, refresh=True)  # warm-up, not counted
                timings = []
                for _ in range(changes):
                    time.sleep(PAUSE_S)
                    timings.append(_change(server, loadgen, write, refresh=mode == "refresh"))
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
            if emulator is not None:
                emulator.stop()
    return {
        "subscribers": subscribers,
        "listener": listener,
        "source": source,
        "changes_per_mode": changes,
        **modes,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="File write to N subscribers, end to end.")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--listener", choices=("fast", "asgi"), default="fast")
    parser.add_argument(
        "--source", choices=("file", "sheet"), default="file", help="A CSV file, or an emulated sheet."
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args.subscribers, args.changes, args.listener, args.source), indent=2))


if __name__ == "__main__":
    main()
