"""Acceptance: three real subscribers see 100 versions of a file source exactly once, in order, and faithfully."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from sheetstream.core.apply import apply
from sheetstream.core.codec import op_from_json, tabs_from_json
from sheetstream.core.model import Snapshot, Tab
from tests.e2e.harness import ServerProcess, Subscriber, wait_for, write_tabs

pytestmark = pytest.mark.slow


def _edit(tabs: list[dict[str, Any]], step: int, rng: random.Random) -> None:
    """One change of the kinds users make: cell edits, row inserts and deletes, a tab rename."""
    rows = tabs[0]["rows"]
    kind = step % 5
    if step == 50:
        tabs[1]["title"] = "Renamed tab"
    elif kind == 0:
        rows.insert(rng.randrange(1, len(rows) + 1), [f"new{step}", str(step), rng.choice("xyz")])
    elif kind == 1 and len(rows) > 3:
        del rows[rng.randrange(1, len(rows))]
    elif kind == 2:
        tabs[1]["rows"].append([f"log {step}"])
    else:
        row = rows[rng.randrange(1, len(rows))]
        row[rng.randrange(len(row))] = f"edit{step}"


def _expected(tabs: list[dict[str, Any]]) -> Snapshot:
    return Snapshot(tuple(Tab(t["id"], t["title"], t["rows"]) for t in tabs))


async def test_three_subscribers_get_every_version_once_in_order(server: ServerProcess, tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "book.json"
    tabs: list[dict[str, Any]] = [
        {"id": 0, "title": "People", "rows": [["name", "n", "tag"], *[[f"p{i}", str(i), "a"] for i in range(20)]]},
        {"id": 7, "title": "Log", "rows": [["entry"]]},
    ]
    write_tabs(path, tabs)
    source = server.add_source("file", {"path": str(path)}, poll_interval_s=30)["id"]
    await asyncio.to_thread(server.refresh, source)
    await asyncio.to_thread(wait_for, lambda: server.source(source)["version"] >= 1, what="the first read")

    subscribers = [await Subscriber(server.ws, source).subscribe() for _ in range(3)]
    for sub in subscribers:
        await sub.wait_version(1)
    first = subscribers[0].of_type("snapshot")[0]
    start_version = first["version"]

    for step in range(100):
        _edit(tabs, step, rng)
        write_tabs(path, tabs)
        await asyncio.to_thread(server.refresh, source)
        await subscribers[0].wait_version(start_version + step + 1)

    final_version = start_version + 100
    for sub in subscribers:
        await sub.wait_version(final_version)
    await asyncio.sleep(0.2)  # let anything extra (a duplicate) arrive before checking there is none
    for sub in subscribers:
        await sub.close()

    for sub in subscribers:
        snapshot = sub.of_type("snapshot")
        assert len(snapshot) == 1
        base_version = snapshot[0]["version"]
        assert sub.versions() == list(range(base_version + 1, final_version + 1))
        state = tabs_from_json(snapshot[0]["tabs"])
        for change in sub.of_type("change"):
            state = apply(state, [op_from_json(op) for op in change["ops"]])
        assert state == _expected(tabs)
        assert not sub.of_type("error")

    # The rename reached every subscriber as a rename_tab op on the same tab id, not a remove + add.
    ops = [op for change in subscribers[0].of_type("change") for op in change["ops"]]
    renames = [op for op in ops if op["op"] == "rename_tab"]
    assert renames == [{"op": "rename_tab", "tab": 7, "old": "Log", "new": "Renamed tab"}]
    inserts = [op for op in ops if op["op"] == "insert_rows" and op["tab"] == 0]
    assert len(inserts) == 19 and all(len(op["rows"]) == 1 for op in inserts)
    assert any(op["op"] == "delete_rows" for op in ops)
