"""`sheetstream dead-letters list|show|replay|rm` against a real server process.

The letters are set aside in the server's SQLite file by this test (as a second process on the same database):
a server process offers no seam to make its own dispatch fail. Replays are then done by the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from sheetstream.cli.app import app
from sheetstream.core.codec import changeset_to_json
from sheetstream.core.model import ChangeSet, SetCell
from sheetstream.stores.base import DeadLetter, NewDeadLetter
from sheetstream.stores.sqlite import SqliteStore
from tests.cli.harness import clean_env, run_cli
from tests.e2e.harness import ServerProcess

runner = CliRunner()
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"SHEETSTREAM_SERVER": None})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, "--anonymous").start()
    yield proc
    proc.stop()


@pytest.fixture
async def store(server: ServerProcess) -> AsyncIterator[SqliteStore]:
    """The server's own database, opened as a second process would."""
    opened = SqliteStore(str(server.db))
    await opened.open()
    yield opened
    await opened.close()


async def set_aside(store: SqliteStore) -> tuple[DeadLetter, DeadLetter, DeadLetter]:
    """A change set, a hint and an undecodable bus message, in that order."""
    cs = ChangeSet("src1", "E1", 1, AT, (SetCell(0, 0, 0, "A1", "", "x"),))
    changeset = await store.add_dead_letter(
        NewDeadLetter(
            "changeset", "src1", changeset_to_json(cs), "ValueError: boom", 5, key="changeset:src1:E1:1"
        ),
        now=AT,
    )
    hint = await store.add_dead_letter(
        NewDeadLetter(
            "hint",
            None,
            {"origin": "apps_script", "spreadsheet_id": "sheet-1"},
            "ConnectionError: monitor\nunreachable",
            5,
            key="hint:apps_script:sheet-1",
        ),
        now=AT,
    )
    raw = await store.add_dead_letter(
        NewDeadLetter(
            "changeset", None, {"entry": "s/1-0", "data": "{not json"}, "cannot decode", 1, key="entry:s/1-0"
        ),
        now=AT,
    )
    return changeset, hint, raw


async def test_list_show_replay_and_rm(server: ServerProcess, store: SqliteStore) -> None:
    changeset, hint, raw = await set_aside(store)
    flag = ("--server", server.http)

    listed = cli("dead-letters", "list", *flag)
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[:4] for row in rows] == [
        [raw.id, "changeset", "-", "1"],
        [hint.id, "hint", "-", "5"],
        [changeset.id, "changeset", "src1", "5"],
    ]
    assert rows[1][5] == "ConnectionError: monitor unreachable"  # one line per letter
    assert cli("dead-letters", "list", "--limit", "1", *flag).stdout.splitlines()[0].startswith(f"{raw.id}\t")

    shown = cli("dead-letters", "show", changeset.id, *flag)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["payload"] == changeset.payload

    replayed = cli("dead-letters", "replay", changeset.id, *flag)
    assert (replayed.exit_code, replayed.stdout.strip()) == (0, f"replayed {changeset.id}")

    failed = cli("dead-letters", "replay", raw.id, *flag)
    assert failed.exit_code == 1
    assert "replay_failed" in failed.stderr and "no change set" in failed.stderr
    assert json.loads(cli("dead-letters", "show", raw.id, *flag).stdout)["attempts"] == 2

    # As a real process, finding the server by SHEETSTREAM_SERVER.
    by_env = run_cli("dead-letters", "replay", hint.id, env=clean_env(SHEETSTREAM_SERVER=server.http))
    assert (by_env.returncode, by_env.stdout.strip()) == (0, f"replayed {hint.id}"), by_env.stderr

    removed = cli("dead-letters", "rm", raw.id, *flag)
    assert (removed.exit_code, removed.stdout.strip()) == (0, f"deleted {raw.id}")
    assert cli("dead-letters", "list", *flag).stdout == ""
    assert await store.count_dead_letters() == 0

    missing = cli("dead-letters", "show", raw.id, *flag)
    assert missing.exit_code == 1 and "not_found" in missing.stderr
