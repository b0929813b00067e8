"""`sheetstream token`: HS256 connection tokens for development, and `watch --token` using one."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from tests.cli.harness import LineReader, clean_env, run_cli
from tests.e2e.harness import ServerProcess, wait_for, write_atomically

SECRET = "a development secret of 32 bytes!"


def test_token_prints_a_jwt_the_server_accepts() -> None:
    result = run_cli(
        "token",
        "--sources",
        "a, b,",
        "--ttl-s",
        "120",
        "--subject",
        "ada",
        env=clean_env(SHEETSTREAM_JWT_SECRET=SECRET, SHEETSTREAM_JWT_AUDIENCE="aud"),
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="aud")
    assert (claims["sources"], claims["sub"], claims["aud"]) == (["a", "b"], "ada", "aud")
    assert abs(claims["exp"] - (time.time() + 120)) < 30
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "args", "expected"),
    [
        ({}, ["--sources", "*"], "SHEETSTREAM_JWT_SECRET is not set"),
        ({"SHEETSTREAM_JWT_SECRET": "short"}, ["--sources", "*"], "at least 32 bytes"),
        ({"SHEETSTREAM_JWT_SECRET": SECRET}, ["--sources", " , "], "at least one source id"),
        ({"SHEETSTREAM_JWT_SECRET": SECRET}, [], "--sources"),
        ({"SHEETSTREAM_JWT_SECRET": SECRET}, ["--sources", "*", "--ttl-s", "0"], "--ttl-s"),
    ],
)
def test_token_without_what_it_needs_is_a_clear_error(
    env: dict[str, str], args: list[str], expected: str
) -> None:
    result = run_cli("token", *args, env=clean_env(**env))
    assert result.returncode == 2 and result.stdout == ""
    assert expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_watch_with_a_token_follows_what_it_grants_and_is_refused_the_rest(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--jwt-secret", SECRET).start()
    watch: LineReader | None = None
    try:
        sources = []
        for name in ("granted", "other"):
            write_atomically(tmp_path / f"{name}.csv", "a,b\n1,2\n")
            sources.append(server.add_source("file", {"path": str(tmp_path / f"{name}.csv")})["id"])
        granted, other = sources
        wait_for(lambda: server.source(granted)["version"] >= 1, what="the first read")
        token = run_cli(
            "token", "--sources", granted, env=clean_env(SHEETSTREAM_JWT_SECRET=SECRET)
        ).stdout.strip()
        refused = run_cli("watch", other, "--server", server.http, env=clean_env(SHEETSTREAM_TOKEN=token))
        assert refused.returncode == 1
        assert "error: forbidden_source: this connection's token does not grant source" in refused.stderr
        watch = LineReader("watch", granted, "--server", server.http, "--token", token)
        watch.wait_until(
            lambda lines: any(line.startswith("snapshot v1") for line in lines), what="the snapshot"
        )
    finally:
        if watch is not None:
            watch.stop()
        server.stop()
