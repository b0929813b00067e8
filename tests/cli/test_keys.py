"""`sheetstream keys create|list|revoke` as real processes on a SQLite store, then a real server using that store.

The server runs with `--no-anonymous` and info logs: it must take the keys made before it started, refuse a key
revoked while it runs from the next request on, and never write a key into its log.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sheetstream.cli.app import app  # the package registers every command on it
from sheetstream.cli.keys import DEFAULT_STORE
from sheetstream.runtime.settings import Settings
from tests.cli.harness import clean_env, run_cli
from tests.e2e.harness import ServerProcess, write_atomically

runner = CliRunner()


def keys(store: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`sheetstream keys ARGS --store STORE` in a child process."""
    return run_cli("keys", *args, "--store", store, env=clean_env(**env))


def created_key(result: subprocess.CompletedProcess[str]) -> str:
    """The key a `keys create` printed: its only stdout line; stderr says it will not be shown again."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssk_"), result.stdout
    assert "cannot be shown again" in result.stderr
    return lines[0]


def test_create_list_revoke_then_a_real_server_refuses_the_revoked_key(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sheetstream.db'}"
    reader = created_key(keys(store, "create", "--name", "dashboard", "--scope", "read"))
    writer = created_key(keys(store, "create", "--name", "ci", "--scope", "read", "--scope", "write"))
    reader_id, writer_id = reader[4:16], writer[4:16]

    listed = keys(store, "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        (reader_id, "read", "active", "dashboard"),
        (writer_id, "read,write", "active", "ci"),
    ]
    as_json = json.loads(keys(store, "list", "--json").stdout)
    assert [k["id"] for k in as_json] == [reader_id, writer_id]
    assert set(as_json[0]) == {"id", "name", "scopes", "created_at", "revoked_at"}  # no secret, no hash
    for output in (listed.stdout, json.dumps(as_json)):
        assert reader[16:] not in output and writer[16:] not in output

    server = ServerProcess(tmp_path, "--no-anonymous", "--log-level", "info").start()
    try:
        csv = tmp_path / "prices.csv"
        write_atomically(csv, "item,price\napple,1\n")
        api = {"SHEETSTREAM_SERVER": server.http}
        added = run_cli("sources", "add", "file", str(csv), "--api-key", writer, env=clean_env(**api))
        assert added.returncode == 0, added.stderr
        source = json.loads(added.stdout)["id"]

        by_env = run_cli("sources", "list", env=clean_env(**api, SHEETSTREAM_API_KEY=reader))
        assert by_env.returncode == 0, by_env.stderr
        assert by_env.stdout.startswith(source)
        no_key = run_cli("sources", "list", env=clean_env(**api))
        assert no_key.returncode == 1
        assert "error (401): unauthorized" in no_key.stderr and "--api-key" in no_key.stderr
        read_only = run_cli("sources", "rm", source, "--api-key", reader, env=clean_env(**api))
        assert read_only.returncode == 1
        assert "error (403): forbidden" in read_only.stderr

        revoked = keys(store, "revoke", reader_id)
        assert revoked.returncode == 0, revoked.stderr
        assert f"revoked API key {reader_id}" in revoked.stdout
        refused = httpx.get(
            server.http + "/v1/sources", headers={"Authorization": f"Bearer {reader}"}, timeout=10
        )
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert run_cli("sources", "list", "--api-key", reader, env=clean_env(**api)).returncode == 1
        # The other key is untouched, by either header.
        assert (
            httpx.get(server.http + "/v1/sources", headers={"X-API-Key": writer}, timeout=10).status_code
            == 200
        )
    finally:
        server.stop()

    again = keys(store, "revoke", reader_id)
    assert again.returncode == 0 and "already revoked" in again.stdout
    rows = [line.split("\t") for line in keys(store, "list").stdout.splitlines()]
    assert [r[2].split(" ")[0] for r in rows] == ["revoked", "active"]
    log = server.log_path.read_text()
    assert "rest request refused" in log and reader_id in log  # refusals are logged, naming the key by its id
    assert reader[16:] not in log and writer[16:] not in log


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["create", "--name", "x", "--scope", "admin"], 2, "'admin' is not one of"),
        (["create", "--scope", "read"], 2, "--name"),
        (["create", "--name", "x"], 2, "--scope"),
        (["create", "--name", " ", "--scope", "read"], 2, "needs a name"),
        (["create", "--name", "x", "--scope", "read", "--store", "memory://"], 2, "would vanish"),
        (["create", "--name", "x", "--scope", "read", "--store", "nosuch://x"], 2, "no such store"),
        (["list", "--store", "sqlite:///does/not/exist.db"], 2, "no SQLite store at"),
        (["revoke", "0123456789ab"], 1, "no API key with id '0123456789ab'"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    store = f"sqlite:///{tmp_path / 'keys.db'}"
    assert (
        runner.invoke(
            app, ["keys", "create", "--name", "seed", "--scope", "read", "--store", store]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["keys", *args] if "--store" in args else ["keys", *args, "--store", store])
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_store_defaults_to_serves_and_reads_sheetstream_store(tmp_path: Path) -> None:
    assert Settings().store == DEFAULT_STORE
    store = f"sqlite:///{tmp_path / 'env.db'}"
    made = runner.invoke(
        app, ["keys", "create", "--name", "e", "--scope", "write"], env={"SHEETSTREAM_STORE": store}
    )
    assert made.exit_code == 0, made.output
    assert (tmp_path / "env.db").exists()
    listed = runner.invoke(app, ["keys", "list"], env={"SHEETSTREAM_STORE": store})
    assert listed.stdout.split("\t")[1] == "write"
