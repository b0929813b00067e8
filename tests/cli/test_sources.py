"""`sheetstream sources add|list|show|update|rm` against a real server, by `--server` and by SHEETSTREAM_SERVER."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from sheetstream.cli.app import app  # the package registers every command on it
from tests.cli.harness import clean_env, run_cli
from tests.e2e.harness import ServerProcess, free_port, write_atomically

runner = CliRunner()


def cli(*args: str, **env: str | None) -> Result:
    """Run the CLI in this process; SHEETSTREAM_SERVER of the caller's shell is ignored unless given."""
    return runner.invoke(app, list(args), env={"SHEETSTREAM_SERVER": None, **env})


def ok_json(result: Result) -> dict[str, Any]:
    """The JSON document a successful command printed."""
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def assert_clean_failure(result: Result, exit_code: int, *fragments: str) -> None:
    """The command failed with `exit_code`, its message has every fragment, and no exception escaped."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    write_atomically(path, "id,name\n1,Ada\n2,Grace\n")
    return path


def test_add_list_show_update_rm_with_server_flag(shared_server: ServerProcess, csv_file: Path) -> None:
    server = ("--server", shared_server.http)
    added = ok_json(cli("sources", "add", "file", str(csv_file), "--name", "n", "--key-column", "id", *server))
    source = added["id"]
    assert (added["kind"], added["name"]) == ("file", "n")
    assert added["config"] == {"path": str(csv_file), "key_column": "id"}

    listed = cli("sources", "list", *server)
    assert listed.exit_code == 0, listed.output
    row = next(line.split("\t") for line in listed.stdout.splitlines() if line.startswith(source))
    assert row[1] == "file" and row[-1] == "n"

    shown = ok_json(cli("sources", "show", source, *server))
    assert shown["config"] == added["config"] and shown["id"] == source

    paused = ok_json(cli("sources", "update", source, "--poll-interval-s", "3", "--paused", *server))
    assert (paused["poll_interval_s"], paused["paused"], paused["status"]["state"]) == (3.0, True, "paused")
    assert ok_json(cli("sources", "show", source, *server))["paused"] is True
    active = ok_json(cli("sources", "update", source, "--active", *server))
    assert active["paused"] is False and active["poll_interval_s"] == 3.0

    removed = cli("sources", "rm", source, *server)
    assert removed.exit_code == 0 and removed.stdout.strip() == f"deleted {source}"
    assert_clean_failure(cli("sources", "show", source, *server), 1, "source_not_found")
    assert source not in cli("sources", "list", *server).stdout


def test_the_server_env_var_is_used_when_no_flag_is_given(shared_server: ServerProcess, csv_file: Path) -> None:
    added = ok_json(cli("sources", "add", "file", str(csv_file), SHEETSTREAM_SERVER=shared_server.http))
    assert ok_json(cli("sources", "show", added["id"], SHEETSTREAM_SERVER=shared_server.http))["id"] == added["id"]
    # A flag wins over the env var: this one points nowhere.
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert_clean_failure(
        cli("sources", "show", added["id"], "--server", nowhere, SHEETSTREAM_SERVER=shared_server.http),
        2, "cannot reach",
    )
    assert cli("sources", "rm", added["id"], SHEETSTREAM_SERVER=shared_server.http).exit_code == 0


# Ids are url-safe base64: one in 64 starts with "-" and must still be taken as an id, not as an option.
@pytest.mark.parametrize("source", ["no-such-id", "-Fno-such-id"])
@pytest.mark.parametrize(
    "args", [("show", "{}"), ("update", "{}", "--name", "x"), ("rm", "{}")], ids=["show", "update", "rm"]
)
def test_an_unknown_source_id_exits_1_with_the_error_code(
    shared_server: ServerProcess, args: tuple[str, ...], source: str
) -> None:
    result = cli("sources", *(arg.format(source) for arg in args), "--server", shared_server.http)
    assert_clean_failure(result, 1, "error (404)", "source_not_found", source)


def test_watch_takes_an_id_that_starts_with_a_dash(shared_server: ServerProcess) -> None:
    result = cli("watch", "-Fno-such-id", "--server", shared_server.http)
    assert_clean_failure(result, 1, "error: unknown_source: no source with id '-Fno-such-id'")


def test_a_mistyped_option_is_still_refused(shared_server: ServerProcess) -> None:
    result = cli("sources", "update", "abc", "--pased", "--server", shared_server.http)
    assert_clean_failure(result, 2, "--pased")


def test_a_bad_kind_shows_the_422_message(shared_server: ServerProcess, csv_file: Path) -> None:
    result = cli("sources", "add", "spreadsheet", str(csv_file), "--server", shared_server.http)
    assert_clean_failure(result, 1, "error (422)", "unknown source kind 'spreadsheet'", "file, http_csv, http_json")


def test_an_invalid_field_lists_the_field_errors(shared_server: ServerProcess, csv_file: Path) -> None:
    result = cli("sources", "add", "file", str(csv_file), "--poll-interval-s", "-1", "--server", shared_server.http)
    assert_clean_failure(result, 1, "error (422)", "validation_error", "\n  body.poll_interval_s: ")


@pytest.mark.parametrize(
    "args", [("list",), ("show", "x"), ("add", "file", "x.csv"), ("update", "x", "--active"), ("rm", "x")],
    ids=["list", "show", "add", "update", "rm"],
)
def test_no_server_running_exits_2_saying_it_cannot_reach_it(args: tuple[str, ...]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    assert_clean_failure(cli("sources", *args, "--server", nowhere), 2, f"cannot reach {nowhere}")


@pytest.mark.slow
def test_sources_commands_as_processes_with_the_server_env_var(
    shared_server: ServerProcess, csv_file: Path
) -> None:
    env = clean_env(SHEETSTREAM_SERVER=shared_server.http)
    # A relative path is resolved where the command runs, not where the server runs.
    added = run_cli("sources", "add", "file", csv_file.name, "--name", "proc", "--key-column", "id",
                    env=env, cwd=csv_file.parent)
    assert added.returncode == 0, added.stderr
    source = json.loads(added.stdout)["id"]
    assert json.loads(added.stdout)["config"] == {"path": str(csv_file.resolve()), "key_column": "id"}

    listed = run_cli("sources", "list", env=env)
    assert any(line.startswith(source) and line.endswith("proc") for line in listed.stdout.splitlines())
    updated = run_cli("sources", "update", source, "--poll-interval-s", "3", "--paused", env=env)
    assert (json.loads(updated.stdout)["paused"], json.loads(updated.stdout)["poll_interval_s"]) == (True, 3.0)
    assert run_cli("sources", "rm", source, env=env).stdout.strip() == f"deleted {source}"
    missing = run_cli("sources", "show", source, env=env)
    assert missing.returncode == 1 and "source_not_found" in missing.stderr and "Traceback" not in missing.stderr
    unreachable = run_cli("sources", "list", env=clean_env(SHEETSTREAM_SERVER=f"http://127.0.0.1:{free_port()}"))
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


@pytest.mark.parametrize(
    "given",
    ["1AbC-d_Ef9", "https://docs.google.com/spreadsheets/d/1AbC-d_Ef9/edit#gid=0"],
    ids=["id", "browser address"],
)
def test_a_google_sheet_is_added_by_its_id_or_its_address(shared_server: ServerProcess, given: str) -> None:
    added = ok_json(cli("sources", "add", "google_sheets", given, "--server", shared_server.http))
    assert added["kind"] == "google_sheets"
    assert added["config"]["spreadsheet_id"] == "1AbC-d_Ef9" and "url" not in added["config"]
    assert cli("sources", "rm", added["id"], "--server", shared_server.http).exit_code == 0
