"""Run the `sheetstream` command line as a real child process, and read a long-running one's output line by line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

# A wide terminal so that help screens show option and env var names in full.
HELP_COLUMNS = "200"


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any SHEETSTREAM_* setting of the caller's shell, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEETSTREAM_")}
    env.update(overrides)
    return env


def cli_command(*args: str) -> list[str]:
    """The command line that runs `sheetstream ARGS` with this interpreter."""
    return [sys.executable, "-m", "sheetstream", *args]


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout_s: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run `sheetstream ARGS` to completion and capture its output."""
    return subprocess.run(
        cli_command(*args), env=dict(env) if env is not None else clean_env(), cwd=cwd,
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )


class LineReader:
    """A long-running `sheetstream ARGS` process whose stdout and stderr lines are collected by reader threads."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            cli_command(*args), env=dict(env) if env is not None else clean_env(), cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            with self._lock:
                into.append(line.rstrip("\n"))

    def lines(self) -> list[str]:
        """The stdout lines so far."""
        with self._lock:
            return list(self.stdout)

    def errors(self) -> list[str]:
        """The stderr lines so far."""
        with self._lock:
            return list(self.stderr)

    def wait_until(self, predicate: Callable[[list[str]], bool], timeout_s: float = 15.0, what: str = "output") -> None:
        """Poll the stdout lines until `predicate(lines)` holds; fail with what was printed if it does not in time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            exited = self.proc.poll() is not None
            if exited:
                self._join()  # every line it printed is read
            if predicate(self.lines()):
                return
            if exited:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"timed out after {timeout_s} s waiting for {what} (exit code {self.proc.poll()});\n"
            f"stdout: {self.lines()}\nstderr: {self.errors()}"
        )

    def wait_exit(self, timeout_s: float = 15.0) -> int:
        """Wait for the process to end by itself and for its output to be read; its exit code."""
        code = self.proc.wait(timeout_s)
        self._join()
        return code

    def stop(self) -> None:
        """End the process (SIGINT, as Ctrl-C; then SIGKILL if it lingers) and close its pipes."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._join()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
