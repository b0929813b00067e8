"""The soak test of the resume promise: its checker and client catch a broken stream, and a short soak holds.

The soak itself (`benchmarks/soak.py`, `make soak` for the full two minutes) runs here in its short form:
1,000 clients dropping and resuming at random for 25 s of changes, judged from the run's JSON summary.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from benchmarks.soak_check import Event, check_timeline
from benchmarks.soak_client import Fleet, SoakClient

from sheetstream.core.codec import tabs_from_json

REPO = Path(__file__).resolve().parents[2]


def _changes(*versions: int) -> list[Event]:
    return [("change", v) for v in versions]


def test_checker_passes_every_version_once_in_order() -> None:
    verdict = check_timeline([("snapshot", 3), *_changes(4, 5, 6)], final=6)
    assert verdict.ok
    assert (verdict.first, verdict.last, verdict.changes) == (3, 6, 3)


@pytest.mark.parametrize(
    ("timeline", "final", "flagged"),
    [
        pytest.param([("snapshot", 3), *_changes(4, 5, 5, 6)], 6, {"duplicates": 1}, id="duplicate"),
        pytest.param(
            [("snapshot", 3), *_changes(3, 4)], 4, {"duplicates": 1}, id="change-the-snapshot-holds"
        ),
        pytest.param([("snapshot", 3), *_changes(4, 6)], 6, {"gaps": 1, "missing": 1}, id="gap"),
        pytest.param(
            [("snapshot", 3), *_changes(5, 4, 6)], 6, {"gaps": 1, "out_of_order": 1}, id="out-of-order"
        ),
        pytest.param([("snapshot", 3), *_changes(4)], 6, {"missing": 2}, id="missing-tail"),
        pytest.param([("snapshot", 3), *_changes(4, 5)], 4, {"beyond_final": 1}, id="beyond-final"),
        pytest.param([("snapshot", 3), *_changes(4), ("snapshot", 6)], 6, {"resyncs": 1}, id="resync"),
        pytest.param([("change", 2), ("snapshot", 3), *_changes(4)], 4, {"early_changes": 1}, id="early"),
        pytest.param(_changes(1, 2), 2, {"early_changes": 2}, id="no-snapshot"),
    ],
)
def test_checker_flags_each_way_to_break_the_promise(
    timeline: list[Event], final: int, flagged: dict[str, int]
) -> None:
    verdict = check_timeline(timeline, final)
    assert not verdict.ok
    counted = {
        name: getattr(verdict, name)
        for name in (
            "duplicates",
            "gaps",
            "out_of_order",
            "missing",
            "beyond_final",
            "resyncs",
            "early_changes",
        )
        if getattr(verdict, name)
    }
    assert counted == flagged


class _Transport:
    """Records what a client sends; stands in for a picows transport."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.disconnected = False

    def send(self, _kind: Any, data: bytes) -> None:
        self.sent.append(orjson.loads(data))

    def disconnect(self) -> None:
        self.disconnected = True


def _frame(**message: Any) -> bytes:
    return orjson.dumps(message)


def _change(version: int, old: str, new: str) -> bytes:
    op = {"op": "set", "tab": 0, "row": 1, "col": 1, "a1": "B2", "old": old, "new": new}
    return _frame(
        type="change", source="s", epoch="e", version=version, at="2025-01-31T12:00:00.000Z", ops=[op]
    )


def test_client_records_a_duplicate_and_resubscribes_on_a_gap_keeping_its_copy_exact() -> None:
    fleet = Fleet("s", "ws://asgi", None, 0.0, 1.0, 0.1, 0.0)
    client = SoakClient(0, fleet, random.Random(0))
    transport = _Transport()
    client._subscribe(transport)
    tabs = [{"id": 0, "title": "t", "rows": [["k", "v"], ["a", "0"]]}]
    for frame in (
        _frame(type="subscribed", id="1", source="s", epoch="e", version=1, recovered=False),
        _frame(type="snapshot", source="s", epoch="e", version=1, tabs=tabs),
        _change(2, "0", "2"),
        _change(2, "0", "2"),  # a duplicate: counted, not applied twice
        _change(4, "3", "4"),  # a gap: resubscribe from version 2 on this connection
        _change(5, "4", "5"),  # the old subscription, before `unsubscribed`: dropped
        _frame(type="unsubscribed", id="2", source="s"),
        _frame(type="subscribed", id="3", source="s", epoch="e", version=2, recovered=True),
        _change(3, "2", "3"),
        _change(4, "3", "4"),
    ):
        client.on_message(transport, frame)

    assert [m["type"] for m in transport.sent] == ["subscribe", "unsubscribe", "subscribe"]
    assert transport.sent[2]["since"] == {"epoch": "e", "version": 2}
    assert client.position == ("e", 4)
    assert client.copy is not None
    assert fleet.replicas.states[client.copy] == tabs_from_json(
        [{"id": 0, "title": "t", "rows": [["k", "v"], ["a", "4"]]}]
    )
    verdict = check_timeline(client.timeline, final=4)
    # 2 twice, then 4 early (a gap), 3 late (out of order) and 4 again in the replay (a duplicate)
    assert (verdict.duplicates, verdict.gaps, verdict.out_of_order, verdict.missing) == (2, 1, 1, 0)
    assert client.counts["resumes_recovered"] == 1
    assert client.counts["gap_resubscribes"] == 1


def test_client_counts_a_resume_the_server_could_not_recover() -> None:
    fleet = Fleet("s", "ws://asgi", None, 0.0, 1.0, 0.1, 0.0)
    client = SoakClient(0, fleet, random.Random(0))
    client.position = ("e", 7)
    transport = _Transport()
    client._subscribe(transport)
    client.on_message(
        transport, _frame(type="subscribed", id="1", source="s", epoch="e", version=9, recovered=False)
    )
    assert transport.sent[0]["since"] == {"epoch": "e", "version": 7}
    assert client.counts["resumes_unrecovered"] == 1


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_1000_clients_dropping_and_resuming_get_every_version_once_in_order(tmp_path: Path) -> None:
    summary_path = tmp_path / "soak.json"
    argv = [
        sys.executable, "-m", "benchmarks.soak", "--clients", "1000", "--duration-s", "25", "--seed", "7",
        "--json", str(summary_path),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=190)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = json.loads(summary_path.read_text())

    assert summary["ok"], summary["violations"]
    streamed = summary["versions"]["streamed"]
    assert streamed >= 20, "too few versions streamed to show anything"
    for name in ("duplicates", "gaps", "out_of_order", "missing", "resyncs", "beyond_final", "early_changes"):
        assert summary[name] == 0, name
    assert summary["deliveries"] == 1000 * streamed  # every client got every version once
    assert summary["state_checked"] == 1000
    assert summary["state_mismatches"] == summary["clients_behind"] == summary["clients_failed"] == 0
    # The run did what it claims: both kinds of drops, resumes on both listeners, all recovered from the log.
    assert summary["drops"]["abrupt"] > 500 and summary["drops"]["clean"] > 100
    assert summary["subscribes"]["resumed_recovered_true"] > 1000
    assert summary["subscribes"]["resumed_recovered_false"] == 0
    assert summary["connects"]["asgi"] > 1000 and summary["connects"]["fast"] > 1000
