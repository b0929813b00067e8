"""`sheetstream watch SOURCE` as a process: live changes, and exactly the next version after a server restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.harness import LineReader, run_cli
from tests.e2e.harness import ServerProcess, free_port, wait_for, write_atomically

pytestmark = pytest.mark.slow


def _csv(grace: str) -> str:
    return f"id,name\n1,Ada\n2,{grace}\n3,Edsger\n"


def _messages(lines: list[str]) -> list[dict[str, Any]]:
    """The printed lines as JSON documents (each line must be one)."""
    return [json.loads(line) for line in lines]


def _of_type(lines: list[str], kind: str) -> list[dict[str, Any]]:
    return [m for m in _messages(lines) if m["type"] == kind]


def _change_versions(lines: list[str]) -> list[int]:
    return [m["version"] for m in _of_type(lines, "change")]


def _file_source(server: ServerProcess, path: Path) -> str:
    write_atomically(path, _csv("Grace"))
    source = str(server.add_source("file", {"path": str(path), "key_column": "id"}, poll_interval_s=0.2)["id"])
    wait_for(lambda: server.source(source)["version"] >= 1, what="the first read of the file")
    return source


def test_watch_json_follows_changes_across_a_server_restart(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    server = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    watch: LineReader | None = None
    try:
        source = _file_source(server, path)
        watch = LineReader("watch", source, "--json", "--server", server.http)
        watch.wait_until(lambda lines: bool(_of_type(lines, "snapshot")), what="the snapshot line")
        (snapshot,) = _of_type(watch.lines(), "snapshot")
        assert snapshot["version"] == 1 and snapshot["tabs"][0]["rows"][2] == ["2", "Grace"]
        assert _of_type(watch.lines(), "subscribed")[0]["version"] == 1

        write_atomically(path, _csv("Grace Hopper"))
        watch.wait_until(lambda lines: 2 in _change_versions(lines), what="change v2")
        (change,) = _of_type(watch.lines(), "change")
        assert [(op["op"], op["a1"], op["new"]) for op in change["ops"]] == [("set", "B3", "Grace Hopper")]

        server.stop()  # SIGTERM: the server closes its WebSockets as it goes away
        watch.wait_until(lambda lines: bool(_of_type(lines, "disconnected")), what="the disconnected line")
        server.start()  # same port, same SQLite file
        write_atomically(path, _csv("Grace B. Hopper"))
        watch.wait_until(lambda lines: 3 in _change_versions(lines), 30.0, "change v3 after the restart")
        write_atomically(path, _csv("Rear Admiral Grace Hopper"))
        watch.wait_until(lambda lines: 4 in _change_versions(lines), what="change v4")

        assert watch.proc.poll() is None, "watch exited instead of resuming"
        lines = watch.lines()
        assert _change_versions(lines) == [2, 3, 4], "a gap or a repeat in what watch printed"
        assert len(_of_type(lines, "snapshot")) == 1, "watch was sent a new snapshot instead of the missed changes"
        resubscribed = _of_type(lines, "subscribed")[-1]
        assert resubscribed["recovered"] is True and resubscribed["version"] >= 2
        assert {m["epoch"] for m in _of_type(lines, "change")} == {snapshot["epoch"]}
        assert _of_type(lines, "change")[-1]["ops"][0]["new"] == "Rear Admiral Grace Hopper"
    finally:
        if watch is not None:
            watch.stop()
        server.stop()
    assert watch.proc.returncode == 0, watch.errors()  # Ctrl-C ends it cleanly


def test_watch_prints_readable_lines_by_default(shared_server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    source = _file_source(shared_server, path)
    watch = LineReader("watch", source, "--server", shared_server.http)
    try:
        watch.wait_until(lambda lines: any(line.startswith("snapshot v1") for line in lines), what="the snapshot")
        write_atomically(path, _csv("Grace Hopper"))
        watch.wait_until(lambda lines: "change v2: 1 op(s)" in lines, what="change v2")
    finally:
        watch.stop()
    lines = watch.lines()
    assert lines[0].startswith("subscribed at v1 (epoch ") and lines[0].endswith("recovered=False)")
    assert lines[1] == "snapshot v1: 1 tab(s), 4 row(s)"
    op = json.loads(lines[lines.index("change v2: 1 op(s)") + 1])
    assert (op["a1"], op["old"], op["new"]) == ("B3", "Grace", "Grace Hopper")


def test_watch_of_an_unknown_source_exits_1_with_a_clear_message(shared_server: ServerProcess) -> None:
    result = run_cli("watch", "no-such-source", "--server", shared_server.http)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: unknown_source: no source with id 'no-such-source'"
    assert result.stdout == ""


def test_watch_keeps_retrying_while_no_server_answers() -> None:
    watch = LineReader("watch", "any", "--server", f"http://127.0.0.1:{free_port()}")
    try:
        wait_for(lambda: any("reconnecting" in line for line in watch.errors()), 15.0, "a reconnecting notice")
        assert watch.proc.poll() is None, "watch gave up instead of waiting for the server"
    finally:
        watch.stop()
    assert watch.errors()[0].startswith("disconnected (") and "Traceback" not in "\n".join(watch.errors())
