"""Acceptance: a source's Authorization header reaches its upstream, and no log line, API answer or database file.

`sheetstream serve` runs as a child process at debug level with its stdout and stderr captured; the http_csv
source's upstream first fails (500), then works, so both the failure and the success paths log.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ServerProcess, wait_for
from tests.e2e.upstream import Upstream

pytestmark = pytest.mark.slow

SECRET = "Bearer e2e-s3cr3t-9f8e7d6c5b4a"


def start_server(workdir: Path) -> ServerProcess:
    # No key is given: the SQLite store gets one in a file beside the database.
    return ServerProcess(workdir, "--anonymous", "--backoff-max-s", "1", "--log-level", "debug").start()


def test_a_header_value_is_used_but_never_logged_answered_or_stored_in_plain_text(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.mode = "500"  # failing first: the error path must not log the header either
    server = start_server(tmp_path)
    answers: list[str] = []
    try:
        config = {"url": upstream.url, "headers": {"Authorization": SECRET}}
        created = httpx.post(
            server.http + "/v1/sources",
            json={"kind": "http_csv", "config": config, "poll_interval_s": 0.5},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        answers.append(created.text)
        source_id = created.json()["id"]

        def state() -> str:
            answer = httpx.get(f"{server.http}/v1/sources/{source_id}", timeout=10)
            answers.append(answer.text)
            return str(answer.json()["status"]["state"])

        wait_for(lambda: state() == "error", what="the failing read to mark the source failed")
        upstream.mode = "good"
        wait_for(lambda: state() == "ok", what="a good read")
        for path in ("/v1/sources", f"/v1/sources/{source_id}/snapshot", f"/v1/sources/{source_id}/changes"):
            answers.append(httpx.get(server.http + path, timeout=10).text)
        renamed = httpx.patch(f"{server.http}/v1/sources/{source_id}", json={"name": "scores"}, timeout=10)
        answers.append(renamed.text)
        assert renamed.status_code == 200
    finally:
        server.stop()

    assert upstream.authorizations and set(upstream.authorizations) == {
        SECRET
    }  # the monitor sent the real value
    lines = server.log_path.read_text().splitlines()
    assert any('"source read failed"' in line for line in lines)  # the failure was logged ...
    assert len(lines) > 10
    for line in lines:
        json.loads(line)  # every line is a JSON log record
        assert SECRET not in line and "e2e-s3cr3t" not in line  # ... without the secret
    for answer in answers:
        assert "e2e-s3cr3t" not in answer
    at_rest = b"".join(
        path.read_bytes() for path in tmp_path.glob("sheetstream.db*") if path.suffix != ".key"
    )
    assert b"e2e-s3cr3t" not in at_rest
    key_file = tmp_path / "sheetstream.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any(str(key_file) in line for line in lines)  # where the key is, once

    # A restart reads the same key file: the stored header still decrypts and reaches the upstream.
    key = key_file.read_text()
    seen = len(upstream.authorizations)
    server = start_server(tmp_path)
    try:
        wait_for(lambda: len(upstream.authorizations) > seen, what="a read after the restart")
        assert set(upstream.authorizations[seen:]) == {SECRET}
    finally:
        server.stop()
    assert key_file.read_text() == key
    assert key.strip() not in server.log_path.read_text()
