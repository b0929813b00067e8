"""`sheetstream emulator` as a real child process, seeded from a YAML file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.harness import free_port

SEED = """
spreadsheets:
  - id: demo-people
    title: People
    sheets:
      - title: Staff
        sheetId: 5
        rows: [[name, age], [Ada, "36"], [Total, {formula: "=SUM(B2:B2)", value: 36}]]
"""


def test_cli_serves_a_seeded_spreadsheet(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    port = free_port()
    cmd = [sys.executable, "-m", "sheetstream", "emulator", "--port", str(port), "--seed-file", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v4/spreadsheets/demo-people/values/Staff"
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(
                    url,
                    headers={"Authorization": "Bearer local"},
                    params={"valueRenderOption": "UNFORMATTED_VALUE"},
                )
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.05)
        assert response.json()["values"] == [["name", "age"], ["Ada", 36], ["Total", 36]]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert b"spreadsheet demo-people" in output


def test_cli_rejects_a_broken_seed_file(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text('{"spreadsheets": [{"sheets": [{"rows": "not rows"}]}]}')
    result = subprocess.run(
        [sys.executable, "-m", "sheetstream", "emulator", "--port", "0", "--seed-file", str(seed)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "spreadsheets[0].sheets[0].rows: expected a list of lists" in result.stderr


def test_a_taken_port_is_refused_and_leaves_no_socket_open() -> None:
    import gc
    import socket as socket_module
    import warnings

    import pytest

    from sheetstream.emulator.server import run_asgi

    with socket_module.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)  # a leaked socket warns when collected
            with pytest.raises(OSError), run_asgi(object(), port=port):
                pass
            gc.collect()
