"""Acceptance 3: 100 spreadsheets at default quotas for 10 simulated minutes of random edits.

One service account watches them all (the hardest case: its 60 reads/min is the binding quota). Reads go over
HTTP to an emulator whose quotas count on the same simulated clock; the scheduler must keep every one-minute
window under the limit (no 429), and every edit must reach the change log. The detection latency (edit to commit,
simulated seconds) is printed; docs/google.md quotes these figures.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from sheetstream.emulator import RunningEmulator
from sheetstream.emulator.clients import service_account_info
from tests.google.conftest import SimClock, edit_cell, make_book
from tests.google.simtime import ManualTimer, Simulation

SHEETS = 100
MINUTES = 10
EDITS = 300
ROWS, COLS = 40, 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.slow
async def test_100_spreadsheets_for_10_minutes_within_quota(sim_emulator: RunningEmulator, sim_clock: SimClock) -> None:
    timer = ManualTimer()
    sim_clock.now = timer.now
    state = sim_emulator.state
    info: dict[str, Any] = service_account_info("sim@quota.iam.gserviceaccount.com", sim_emulator.base_url, state)
    books = [make_book(state, ROWS, COLS, title=f"Book {i}") for i in range(SHEETS)]
    sim = Simulation(sim_emulator.base_url, {"service_account_json": info}, timer, sim_clock.epoch)
    ids = {book.id: await sim.add(book.id) for book in books}
    await sim.start()
    try:
        # Warm-up: the first read of each spreadsheet (tab list + values: 200 requests at 48 a minute).
        warm_until = timer.t + 600
        while timer.t < warm_until and await sim.unread(ids.values()):
            await sim.run_until(timer.t + 10)
        assert not await sim.unread(ids.values()), "warm-up incomplete"
        warm_up_s = timer.t - 1000.0

        rng = random.Random(4)
        start = timer.t
        free_cells = {book.id: [(r, c) for r in range(1, ROWS) for c in range(COLS)] for book in books}
        edits: list[tuple[float, str, str]] = []  # (time, spreadsheet id, value)
        schedule = []
        for n in range(EDITS):
            book = rng.choice(books)
            row, col = free_cells[book.id].pop(rng.randrange(len(free_cells[book.id])))
            at = start + rng.uniform(0, MINUTES * 60)
            value = f"edit-{n}"

            def apply(book: Any = book, row: int = row, col: int = col, value: str = value) -> None:
                edit_cell(state, book, row, col, value)
                edits.append((timer.t, book.id, value))

            schedule.append((at, apply))
        await sim.run_until(start + MINUTES * 60, schedule)
        await sim.run_until(timer.t + 120)  # let the last edits be found

        assert len(edits) == EDITS
        assert state.quotas.refused == 0, f"{state.quotas.refused} requests answered 429"
        seen: dict[str, float] = {}
        for book in books:
            for changeset in await sim.changes(ids[book.id]):
                at = changeset.at.timestamp() - sim_clock.epoch
                for op in changeset.ops:
                    if op.op == "set" and isinstance(op.new, str):
                        seen.setdefault(op.new, at)
        missing = [value for _, _, value in edits if value not in seen]
        assert not missing, f"{len(missing)} edits never delivered: {missing[:5]}"
        latencies = [seen[value] - t for t, _, value in edits]
        assert min(latencies) >= 0
        reads = sum(source.spent[0] for source in sim.sources.values())
        drive = sum(source.spent[1] for source in sim.sources.values())
        print(
            f"\n{SHEETS} spreadsheets, {EDITS} edits over {MINUTES} simulated minutes, one service account:"
            f"\n  warm-up (first read of all): {warm_up_s:.0f} s"
            f"\n  detection latency (s): p50 {statistics.median(latencies):.1f}, p90 {percentile(latencies, 0.9):.1f},"
            f" p99 {percentile(latencies, 0.99):.1f}, max {max(latencies):.1f}, mean {statistics.mean(latencies):.1f}"
            f"\n  Sheets requests: {reads} total ({reads / ((timer.t - 1000.0) / 60):.1f}/min incl. warm-up),"
            f" Drive requests: {drive}, 429s: {state.quotas.refused}"
        )
        assert percentile(latencies, 0.5) < 10
        assert percentile(latencies, 0.99) < 60
    finally:
        await sim.stop()
