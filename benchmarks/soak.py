"""Soak test of the resume promise: N WebSocket clients drop and resume at random while changes stream.

    python -m benchmarks.soak [--clients 1000] [--duration-s 120] [--rate 5] [--seed 1] [--json PATH]

It starts a real `sheetstream serve` (SQLite store in a temporary directory, anonymous access, connection and
message limits off, the fast listener on `--ws-port` beside the ASGI `/v1/ws`), registers a `file` source on a
CSV and rewrites that CSV `--rate` times a second for `--duration-s` seconds: cell edits, row inserts and row
deletes. Meanwhile `--clients` subscribers (`benchmarks/soak_client.py`), each connecting to either endpoint at
random, drop their connection after a random time (abruptly, or with a clean close), stay away a random short
time and resume with `since`. Then the writes stop, the final version is read from the REST API, the drops stop,
and once every client holds the final version each one is judged (`benchmarks/soak_check.py`): it must have
received the versions after its first snapshot up to the final one exactly once each, in order, and its copy of
the source, built by applying the ops it received, must equal `GET /v1/sources/{id}/snapshot`.

A summary is printed (and written as JSON with `--json`); the exit code is 0 when no client broke the promise,
1 when one did, 2 when the soak could not run. `--seed` fixes every random choice (the writes, each client's
drop times, offline times and endpoints); the timing of the machine still varies from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import httpx

from benchmarks.soak_check import COUNTERS, Verdict, check_timeline
from benchmarks.soak_client import Fleet, SoakClient
from sheetstream.core.codec import tabs_from_json

CONNECT_CONCURRENCY = 100
"""Clients opening their first connection at once, so the server's accept backlog never overflows."""
MIN_ROWS, MAX_ROWS = 10, 80


class SoakError(RuntimeError):
    """The soak could not run (the server did not start, clients could not subscribe ...)."""


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_open_files_limit(needed: int) -> int:
    """Raise this process's soft limit of open files towards `needed` (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# --- the source ---------------------------------------------------------------------------------------------


class Writer:
    """The CSV the source watches, changed one atomic rewrite at a time: cell edits, row inserts and deletes."""

    HEADER = ("key", "a", "b", "c")

    def __init__(self, path: Path, rng: random.Random, rows: int = 30) -> None:
        self.path = path
        self.rng = rng
        self.rows: list[list[str]] = [[f"k{i}", f"a{i}", f"b{i}", f"c{i}"] for i in range(rows)]
        self.next_key = rows
        self.writes = 0
        self.kinds: Counter[str] = Counter()

    def expected(self) -> list[list[str]]:
        """The rows the source's snapshot should hold after the last write."""
        return [list(self.HEADER), *self.rows]

    def write(self) -> None:
        """Replace the file atomically (temporary file, then rename), as editors do."""
        text = "".join(",".join(row) + "\n" for row in self.expected())
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def change(self) -> None:
        """Make one random change and write it."""
        self.writes += 1
        rng, rows = self.rng, self.rows
        roll = rng.random()
        if roll < 0.2 and len(rows) < MAX_ROWS:
            at = rng.randrange(len(rows) + 1)
            new = [self._new_row() for _ in range(rng.randint(1, 3))]
            rows[at:at] = new
            self.kinds["insert"] += 1
        elif roll < 0.4 and len(rows) > MIN_ROWS:
            at = rng.randrange(len(rows) - 3)
            del rows[at : at + rng.randint(1, 3)]
            self.kinds["delete"] += 1
        else:
            for n in range(rng.randint(1, 3)):
                row = rng.randrange(len(rows))
                rows[row][rng.randint(1, 3)] = f"w{self.writes}.{n}"
            self.kinds["edit"] += 1
        self.write()

    def _new_row(self) -> list[str]:
        key = self.next_key
        self.next_key += 1
        return [f"k{key}", f"a{key}", f"b{key}", f"c{key}"]


# --- the server ---------------------------------------------------------------------------------------------


class Server:
    """`sheetstream serve` in a child process, with its REST port and fast WebSocket port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.ws_port = free_port()
        self.log_path = workdir / "server.log"
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def start(self, timeout_s: float = 60) -> None:
        """Start the process and wait until /readyz answers 200."""
        argv = [
            sys.executable, "-m", "sheetstream", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--ws-port", str(self.ws_port), "--store", f"sqlite:///{self.workdir / 'soak.db'}",
            "--log-level", "warning", "--anonymous", "--connections-per-ip-per-min", "0",
            "--max-messages-per-s", "0", "--rest-requests-per-min", "0",
        ]  # fmt: skip
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SoakError(f"sheetstream serve exited with code {self.proc.returncode}{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
        raise SoakError(f"sheetstream serve not ready within {timeout_s:.0f} s{self.log_tail()}")

    def add_file_source(self, path: Path) -> str:
        """Register the CSV as a `file` source and wait for its first version; its id."""
        config = {"path": str(path), "settle_s": 0}  # every write is an atomic rename: nothing to settle
        response = self.http.post(
            "/v1/sources", json={"kind": "file", "config": config, "poll_interval_s": 5}
        )
        if response.status_code != 201:
            raise SoakError(f"POST /v1/sources answered {response.status_code}: {response.text[:300]}")
        source = str(response.json()["id"])
        deadline = time.monotonic() + 30
        while self.http.get(f"/v1/sources/{source}").json().get("version", 0) < 1:
            if time.monotonic() > deadline:
                raise SoakError(f"source {source} was not read within 30 s{self.log_tail()}")
            time.sleep(0.05)
        return source

    def snapshot(self, source: str) -> dict[str, Any]:
        """`GET /v1/sources/{id}/snapshot`."""
        response = self.http.get(f"/v1/sources/{source}/snapshot")
        response.raise_for_status()
        return dict(response.json())

    def settle(self, source: str, rows: list[list[str]], timeout_s: float = 30) -> dict[str, Any]:
        """Wait until the committed snapshot holds `rows` (the last write); that snapshot."""
        self.http.post(f"/v1/sources/{source}/refresh")
        deadline = time.monotonic() + timeout_s
        while True:
            body = self.snapshot(source)
            if body["tabs"] and body["tabs"][0]["rows"] == rows:
                return body
            if time.monotonic() > deadline:
                raise SoakError(f"the last write was not committed within {timeout_s:.0f} s{self.log_tail()}")
            time.sleep(0.05)

    def cpu_s(self) -> float | None:
        """CPU seconds the server has used so far (None without /proc)."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log, for error messages."""
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n  server log: " + "\n  ".join(text)) if text else ""

    def tracebacks(self) -> int:
        """How many tracebacks the server logged."""
        try:
            return self.log_path.read_text(errors="replace").count("Traceback (most recent call last)")
        except OSError:
            return 0

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self.http.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


# --- the run ------------------------------------------------------------------------------------------------


async def _start_clients(clients: list[SoakClient], timeout_s: float) -> list[asyncio.Task[None]]:
    """Start every client, at most CONNECT_CONCURRENCY connecting at once; wait until each holds a snapshot."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    tasks: list[asyncio.Task[None]] = []

    async def start(client: SoakClient) -> None:
        async with gate:
            task = asyncio.create_task(client.run())
            tasks.append(task)
            subscribed = asyncio.ensure_future(client.subscribed.wait())
            await asyncio.wait([task, subscribed], return_when=asyncio.FIRST_COMPLETED)
            subscribed.cancel()

    try:
        await asyncio.wait_for(asyncio.gather(*(start(c) for c in clients)), timeout_s)
    except TimeoutError:
        behind = sum(1 for c in clients if not c.subscribed.is_set())
        raise SoakError(
            f"{behind} of {len(clients)} clients got no snapshot within {timeout_s:.0f} s"
        ) from None
    failed = [c for c in clients if c.failed is not None or not c.subscribed.is_set()]
    if failed:
        raise SoakError(
            f"{len(failed)} clients could not subscribe, e.g. {failed[0].failed or failed[0].problems}"
        )
    return tasks


async def _write_for(writer: Writer, duration_s: float, rate: float) -> None:
    """Change the file `rate` times a second for `duration_s` seconds, on a fixed schedule."""
    started = time.monotonic()
    period = 1 / rate
    tick = 0
    while True:
        tick += 1
        due = started + tick * period
        if due - started > duration_s:
            return
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        writer.change()


async def _wait_caught_up(clients: list[SoakClient], final: int, timeout_s: float) -> float:
    """Wait until every client still running holds `final`; the seconds it took (the clients behind stay so)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(c.failed is not None or (c.position is not None and c.position[1] >= final) for c in clients):
            break
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _seconds(values: list[float]) -> dict[str, float | None]:
    """Median, 99th percentile and largest of `values`, in seconds."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return {"p50": round(statistics.median(ordered), 4), "p99": round(p99, 4), "max": round(ordered[-1], 4)}


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak as `args` say; the summary."""
    open_files = raise_open_files_limit(4 * args.clients + 256)
    master = random.Random(args.seed)
    started = time.monotonic()
    cpu_started = time.process_time()
    with tempfile.TemporaryDirectory(prefix="sheetstream-soak-") as tmp:
        workdir = Path(tmp)
        writer = Writer(workdir / "soak.csv", random.Random(master.random()))
        writer.write()
        server = Server(workdir)
        try:
            server.start()
            source = server.add_file_source(writer.path)
            fleet = Fleet(
                source=source,
                asgi_url=f"ws://127.0.0.1:{server.port}/v1/ws",
                fast_url=f"ws://127.0.0.1:{server.ws_port}/v1/ws",
                fast_share=args.fast_share,
                mean_connected_s=args.mean_connected_s,
                max_offline_s=args.max_offline_s,
                clean_share=args.clean_share,
            )
            clients = [SoakClient(i, fleet, random.Random(master.random())) for i in range(args.clients)]
            tasks = await _start_clients(clients, args.connect_timeout_s)
            subscribed_s = time.monotonic() - started
            initial = server.snapshot(source)["version"]
            server_cpu_before = server.cpu_s()
            streaming = time.monotonic()
            await _write_for(writer, args.duration_s, args.rate)
            streamed_s = time.monotonic() - streaming
            final_snapshot = await asyncio.to_thread(server.settle, source, writer.expected())
            final = int(final_snapshot["version"])
            fleet.calm.set()
            catch_up_s = await _wait_caught_up(clients, final, args.settle_timeout_s)
            server_cpu = server.cpu_s()
            fleet.finished.set()
            done, pending = await asyncio.wait(tasks, timeout=30)
            crashed = [t.exception() for t in done if t.exception() is not None]
            for task in pending:
                task.cancel()
            server_alive = server.proc is not None and server.proc.poll() is None
            tracebacks = server.tracebacks()
        finally:
            server.stop()
    expected_state = tabs_from_json(final_snapshot["tabs"])
    verdicts = [check_timeline(c.timeline, final) for c in clients]
    mismatched = [
        c.index for c in clients if c.copy is None or fleet.replicas.states[c.copy] != expected_state
    ]
    counts: Counter[str] = Counter()
    for client in clients:
        counts.update(client.counts)
    totals = {name: sum(getattr(v, name) for v in verdicts) for name in COUNTERS}
    behind = [c.index for c in clients if c.position is None or c.position[1] < final]
    failed = [f"client {c.index}: {c.failed}" for c in clients if c.failed is not None]
    server_cpu_used = (
        round(server_cpu - server_cpu_before, 2)
        if server_cpu is not None and server_cpu_before is not None
        else None
    )
    summary: dict[str, Any] = {
        "clients": args.clients,
        "seed": args.seed,
        "duration_s": args.duration_s,
        "rate_per_s": args.rate,
        "writes": writer.writes,
        "write_kinds": dict(writer.kinds),
        "versions": {"initial": initial, "final": final, "streamed": final - initial},
        "drops": {
            "abrupt": counts["drops_abrupt"],
            "clean": counts["drops_clean"],
            "by_server": {
                k.removeprefix("server_close_"): n for k, n in counts.items() if k.startswith("server_close_")
            },
        },
        "connects": {
            "asgi": counts["connects_asgi"],
            "fast": counts["connects_fast"],
            "failed": counts["connect_failures"],
        },
        "subscribes": {
            "fresh": counts["fresh_subscribes"],
            "resumed_recovered_true": counts["resumes_recovered"],
            "resumed_recovered_false": counts["resumes_unrecovered"],
            "resubscribed_after_gap": counts["gap_resubscribes"],
        },
        "deliveries": totals["changes"],
        "duplicates": totals["duplicates"],
        "gaps": totals["gaps"],
        "out_of_order": totals["out_of_order"],
        "missing": totals["missing"],
        "resyncs": totals["resyncs"],
        "beyond_final": totals["beyond_final"],
        "early_changes": totals["early_changes"],
        "apply_errors": counts["apply_errors"],
        "bad_frames": counts["bad_frames"],
        "unexpected_messages": counts["unexpected_messages"],
        "client_errors": counts["client_errors"],
        "epoch_changes": counts["epoch_changes"],
        "bad_subscribed": counts["bad_subscribed"],
        "errors": {k.removeprefix("error_"): n for k, n in counts.items() if k.startswith("error_")},
        "state_checked": len(clients),
        "state_mismatches": len(mismatched),
        "clients_behind": len(behind),
        "clients_failed": len(failed),
        "catch_up_s": _seconds(fleet.catchups),
        "delivery_lag_s": _seconds(fleet.lags),
        "applies_computed": fleet.replicas.applied,
        "timing_s": {
            "subscribe_all": round(subscribed_s, 2),
            "streaming": round(streamed_s, 2),
            "final_catch_up": round(catch_up_s, 2),
            "total": round(time.monotonic() - started, 2),
        },
        "cpu_s": {
            "clients": round(time.process_time() - cpu_started, 2),
            "server_while_streaming": server_cpu_used,
        },
        "server": {"alive_at_end": server_alive, "tracebacks": tracebacks},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "open_files_limit": open_files,
        },
        "problems": [p for c in clients for p in c.problems][:10]
        + failed[:5]
        + [repr(e) for e in crashed[:5]],
    }
    summary["violations"] = violations(summary, verdicts, mismatched, behind, crashed)
    summary["ok"] = not summary["violations"]
    return summary


def violations(
    summary: dict[str, Any],
    verdicts: list[Verdict],
    mismatched: list[int],
    behind: list[int],
    crashed: list[Any],
) -> list[str]:
    """Every way the run broke the promise (or could not show it), one line each; empty when it held."""
    found = []
    for name in ("duplicates", "gaps", "out_of_order", "missing", "resyncs", "beyond_final", "early_changes"):
        if summary[name]:
            clients = [i for i, v in enumerate(verdicts) if getattr(v, name)]
            found.append(f"{summary[name]} {name.replace('_', ' ')} (clients {clients[:10]})")
    for name in (
        "apply_errors",
        "bad_frames",
        "unexpected_messages",
        "client_errors",
        "epoch_changes",
        "bad_subscribed",
        "clients_failed",
    ):
        if summary[name]:
            found.append(f"{summary[name]} {name.replace('_', ' ')}")
    if summary["subscribes"]["resumed_recovered_false"]:
        found.append(f"{summary['subscribes']['resumed_recovered_false']} resumes answered recovered=false")
    if mismatched:
        found.append(
            f"{len(mismatched)} clients' copies differ from the server's snapshot (clients {mismatched[:10]})"
        )
    if behind:
        found.append(f"{len(behind)} clients never reached the final version (clients {behind[:10]})")
    if summary["versions"]["streamed"] <= 0:
        found.append("no version was streamed: nothing was tested")
    if crashed:
        found.append(f"{len(crashed)} client tasks crashed: {crashed[0]!r}")
    if not summary["server"]["alive_at_end"]:
        found.append("the server died")
    return found


def report(summary: dict[str, Any]) -> str:
    """The summary as a few lines for people."""
    v, d, s, t = summary["versions"], summary["drops"], summary["subscribes"], summary["timing_s"]
    lines = [
        f"soak: {summary['clients']} clients, {summary['duration_s']:g} s of changes at {summary['rate_per_s']:g}/s "
        f"(seed {summary['seed']}), {summary['machine']['cpus']} CPUs",
        f"  versions {v['initial']} -> {v['final']} ({v['streamed']} streamed, {summary['writes']} writes: "
        f"{summary['write_kinds']})",
        f"  drops: {d['abrupt']} abrupt, {d['clean']} clean, by the server {d['by_server'] or 0}; "
        f"connects: {summary['connects']}",
        f"  subscribes: {s['fresh']} fresh, resumes {s['resumed_recovered_true']} recovered=true, "
        f"{s['resumed_recovered_false']} recovered=false; {s['resubscribed_after_gap']} resubscribed after a gap",
        f"  deliveries {summary['deliveries']}: duplicates {summary['duplicates']}, gaps {summary['gaps']}, "
        f"out of order {summary['out_of_order']}, missing {summary['missing']}, resyncs {summary['resyncs']}",
        f"  state: {summary['state_checked']} copies checked against the server's snapshot, "
        f"{summary['state_mismatches']} differ; {summary['clients_behind']} clients behind",
        f"  catch-up after a resume (s): {summary['catch_up_s']}; delivery lag (s): {summary['delivery_lag_s']}",
        f"  time (s): {t}; CPU (s): {summary['cpu_s']}; server tracebacks: {summary['server']['tracebacks']}",
    ]
    if summary["violations"]:
        lines.append("  VIOLATIONS:")
        lines += [f"    - {line}" for line in summary["violations"]]
        lines += [f"    problem: {p}" for p in summary["problems"]]
    else:
        lines.append(
            "  OK: every client got every version exactly once, in order, and holds the server's state"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients (default 1000).")
    parser.add_argument("--duration-s", type=float, default=120, help="Seconds of changes (default 120).")
    parser.add_argument("--rate", type=float, default=5, help="Writes to the CSV per second (default 5).")
    parser.add_argument("--seed", type=int, default=1, help="Seed of every random choice (default 1).")
    parser.add_argument(
        "--mean-connected-s",
        type=float,
        default=8,
        help="Mean time a connection lives before its drop (default 8).",
    )
    parser.add_argument(
        "--max-offline-s",
        type=float,
        default=2,
        help="Longest wait before reconnecting (uniform, default 2).",
    )
    parser.add_argument(
        "--clean-share", type=float, default=0.3, help="Share of drops made with a close frame (default 0.3)."
    )
    parser.add_argument(
        "--fast-share",
        type=float,
        default=0.5,
        help="Share of connections made to the fast listener (--ws-port) rather than the ASGI /v1/ws (default 0.5).",
    )
    parser.add_argument(
        "--connect-timeout-s", type=float, default=120, help="For every client's first snapshot."
    )
    parser.add_argument(
        "--settle-timeout-s", type=float, default=60, help="For every client to reach the final version."
    )
    parser.add_argument("--json", type=Path, help="Also write the summary here as JSON.")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration_s <= 0 or args.rate <= 0 or args.mean_connected_s <= 0:
        parser.error("--clients, --duration-s, --rate and --mean-connected-s must be positive")
    for name in ("clean_share", "fast_share"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; the exit code."""
    args = parse_args(argv)
    try:
        summary = asyncio.run(soak(args))
    except SoakError as exc:
        print(f"soak: could not run: {exc}", file=sys.stderr)
        return 2
    print(report(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
