"""Fan-out through 1 and then 2 gateway processes on the scale-out stack (Redis bus, shared store).

    python -m benchmarks.bench_gateways [--connections 2000] [--changes 20] [--redis redis://127.0.0.1:6379/0]

For each gateway count it starts `sheetstream api`, one `sheetstream monitor` and N `sheetstream gateway`
processes on one SQLite file (or `--store`) and a fresh Redis stream prefix, then one load generator
(`benchmarks/loadgen.py`) per gateway holding connections / N subscribers. Each change rewrites a watched CSV
file and calls `POST /v1/sources/{id}/refresh`; the next change is made once the store's version moved, so the
fan-out of one change overlaps the next read and commit. Reported per run: deliveries/s over the burst
(deliveries / (last receive - first change's commit time)), latency p50/p99 (receive - commit time), missing and
duplicated deliveries, and the CPU each gateway used per delivery.

Read the figures for what they are: every process shares this machine's cores, the load generators included.
With 2 cores, a second gateway process adds a core's worth of sending only if the other processes leave it
free, so the gain from 1 to 2 gateways here is a floor, not what 2 gateway hosts would give. `run()` returns a
dict for `benchmarks/run.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import redis

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Role:
    """One `sheetstream ROLE` process."""

    def __init__(self, role: str, name: str, store: str, bus: str, workdir: Path) -> None:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "sheetstream", role, "--port", str(self.port), "--store", store, "--bus", bus,
               "--log-level", "warning", "--send-queue-size", "4096",
               # Load without credentials, and no limit on the load generator's connections or messages.
               "--anonymous", "--connections-per-ip-per-min", "0", "--max-messages-per-s", "0",
               "--rest-requests-per-min", "0"]
        if role != "api":
            cmd += ["--node-id", name]
        self.log: IO[bytes] = (workdir / f"{name}.log").open("ab")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self.log, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.url} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url} not ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class _LoadGen:
    """One load generator process, driven over its stdin/stdout."""

    def __init__(self, ws_url: str, source: str, connections: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen", "--url", ws_url, "--source", source,
             "--connections", str(connections)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        return dict(orjson.loads(line))

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(orjson.dumps(command) + b"\n")
        self.proc.stdin.flush()

    def quit(self) -> None:
        try:
            self.send(cmd="quit")
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def _csv(step: int, rows: int = 50) -> str:
    return "id,value,label,note\n" + "".join(f"{i},{step if i == step % rows else 0},r{i},n\n" for i in range(rows))


def run_once(gateways: int, connections: int, changes: int, redis_url: str, store: str | None) -> dict[str, Any]:
    """One stack with `gateways` gateway processes; the burst's figures."""
    with tempfile.TemporaryDirectory(prefix="bench-gateways-") as tmp:
        workdir = Path(tmp)
        prefix = f"sheetstream-bench-{uuid.uuid4().hex[:10]}"
        bus = f"{redis_url}?stream_prefix={prefix}"
        store_url = store or f"sqlite:///{workdir / 'store.db'}"
        path = workdir / "data.csv"
        path.write_text(_csv(0))
        nodes = [_Role("api", "api", store_url, bus, workdir), _Role("monitor", "monitor", store_url, bus, workdir)]
        gws = [_Role("gateway", f"gateway-{n}", store_url, bus, workdir) for n in range(1, gateways + 1)]
        loadgens: list[_LoadGen] = []
        try:
            for node in [*nodes, *gws]:
                node.wait_ready()
            api = nodes[0].url
            source = httpx.post(f"{api}/v1/sources", json={"kind": "file", "config": {"path": str(path)},
                                                             "poll_interval_s": 30}, timeout=10).json()["id"]
            _wait_version(api, source, 1)
            share = [connections // gateways + (1 if n < connections % gateways else 0) for n in range(gateways)]
            loadgens = [_LoadGen(f"ws://127.0.0.1:{gw.port}/v1/ws", source, count) for gw, count in zip(gws, share, strict=True)]
            subscribed = [lg.read() for lg in loadgens]
            for lg in loadgens:
                lg.send(cmd="mark")
                lg.read()
            cpu_before = [_cpu_s(gw.proc.pid) for gw in gws]
            for step in range(1, changes + 1):
                tmp_path = path.with_name("data.csv.tmp")
                tmp_path.write_text(_csv(step))
                os.replace(tmp_path, path)
                httpx.post(f"{api}/v1/sources/{source}/refresh", timeout=10)
                _wait_version(api, source, step + 1)
            for lg in loadgens:
                lg.send(cmd="collect", vmin=2, vmax=changes + 1, idle_s=15)
            stats = [lg.read() for lg in loadgens]
            cpu = [_cpu_s(gw.proc.pid) - before for gw, before in zip(gws, cpu_before, strict=True)]
        finally:
            for lg in loadgens:
                lg.quit()
            for node in [*gws, *nodes]:
                node.stop()
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)
            client.close()
    deliveries = sum(s["deliveries"] for s in stats)
    first = min(s["first_at"] for s in stats if s["first_at"] is not None)
    last = max(s["last_receive"] for s in stats if s["last_receive"] is not None)
    return {
        "gateways": gateways,
        "connections": sum(s["connections"] for s in subscribed),
        "subscribe_failures": sum(s["failed"] for s in subscribed),
        "changes": changes,
        "deliveries": deliveries,
        "missing": sum(s["missing"] for s in stats),
        "duplicates": sum(s["duplicates"] for s in stats),
        "deliveries_per_s": deliveries / (last - first) if last > first else None,
        "latency_p50_ms": max(s["latency_p50_ms"] for s in stats),
        "latency_p99_ms": max(s["latency_p99_ms"] for s in stats),
        "gateway_cpu_s": [round(c, 2) for c in cpu],
        "gateway_cpu_per_delivery_us": 1e6 * sum(cpu) / deliveries if deliveries else None,
    }


def _wait_version(api: str, source: str, version: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{api}/v1/sources/{source}", timeout=10).json()["version"] >= version:
            return
        time.sleep(0.005)
    raise TimeoutError(f"source {source} did not reach version {version}")


def run(
    connections: int = 2000,
    changes: int = 20,
    redis_url: str = "redis://127.0.0.1:6379/0",
    store: str | None = None,
) -> dict[str, Any]:
    """Fan-out with 1 and with 2 gateway processes; the figures of each and the ratio of their throughput."""
    results = [run_once(n, connections, changes, redis_url, store) for n in (1, 2)]
    one, two = results
    ratio = (
        two["deliveries_per_s"] / one["deliveries_per_s"]
        if one["deliveries_per_s"] and two["deliveries_per_s"]
        else None
    )
    return {"cores": os.cpu_count(), "runs": results, "throughput_ratio_2_vs_1": ratio}


def main(argv: list[str] | None = None) -> None:
    """Command line: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--store", default=None, help="Store URL (default: a SQLite file in a temporary directory).")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.connections, args.changes, args.redis, args.store), indent=2))


if __name__ == "__main__":
    main()
