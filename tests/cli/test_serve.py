"""`sheetstream serve` as a process: settings from SHEETSTREAM_* env vars, flags winning, and bad settings refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.cli.harness import LineReader, clean_env, run_cli
from tests.e2e.harness import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.slow

SERVING = '"event": "serving"'  # the info-level line the server logs once it is set up


def _answers_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_ready(server: LineReader, port: int) -> None:
    """Wait until the server answers /readyz on `port`; fail with its output if it exits first."""
    def ready() -> bool:
        if server.proc.poll() is not None:
            server.wait_exit()
            raise AssertionError(f"serve exited with {server.proc.returncode}: {server.errors()}")
        return _answers_ready(port)

    wait_for(ready, 30.0, f"/readyz on port {port}")


def test_serve_takes_port_store_and_log_level_from_env_vars(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "from-env.db"
    env = clean_env(
        SHEETSTREAM_PORT=str(port), SHEETSTREAM_STORE=f"sqlite:///{db}", SHEETSTREAM_LOG_LEVEL="warning"
    )
    server = LineReader("serve", env=env, cwd=tmp_path)
    try:
        _wait_ready(server, port)
        assert db.exists(), "the store named by SHEETSTREAM_STORE was not created"
        assert not (tmp_path / "sheetstream.db").exists(), "the default store was opened instead"
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.errors()  # Ctrl-C is a clean stop
    assert not any(SERVING in line for line in server.errors()), "info lines logged at SHEETSTREAM_LOG_LEVEL=warning"


def test_flags_win_over_env_vars(tmp_path: Path) -> None:
    env_port, flag_port = free_port(), free_port()
    env_db, flag_db = tmp_path / "env.db", tmp_path / "flag.db"
    env = clean_env(
        SHEETSTREAM_PORT=str(env_port), SHEETSTREAM_STORE=f"sqlite:///{env_db}", SHEETSTREAM_LOG_LEVEL="warning"
    )
    server = LineReader(
        "serve", "--port", str(flag_port), "--store", f"sqlite:///{flag_db}", "--log-level", "info",
        env=env, cwd=tmp_path,
    )
    try:
        _wait_ready(server, flag_port)
        assert flag_db.exists() and not env_db.exists()
        assert not _answers_ready(env_port)
        wait_for(lambda: any(SERVING in line for line in server.errors()), 10.0, "the info-level 'serving' line")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("flag", "url", "expected"),
    [
        ("--store", "sqlit:///x.db", "error: no such store: 'sqlit'. Did you mean 'sqlite'?"),
        ("--store", "x.db", "error: store URL 'x.db' has no scheme"),
        ("--bus", "memroy://", "error: no such bus: 'memroy'. Did you mean 'memory'?"),
    ],
)
def test_a_bad_store_or_bus_url_is_one_error_line_without_traceback(
    tmp_path: Path, flag: str, url: str, expected: str
) -> None:
    result = run_cli("serve", "--port", "0", flag, url, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert list(tmp_path.iterdir()) == [], "a store file was made for a refused URL"


def test_a_port_in_use_is_a_clear_error(shared_server: ServerProcess, tmp_path: Path) -> None:
    result = run_cli("serve", "--port", str(shared_server.port), "--store", "memory://", cwd=tmp_path)
    assert result.returncode != 0
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert _answers_ready(shared_server.port), "the running server was disturbed"
