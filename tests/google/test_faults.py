"""Acceptance 4: with 20 % of Google's answers failing (429, 500, 503, timeouts), no change is lost, nothing
crashes, reads back off, and the sources' status shows the trouble and clears once it ends."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sheetstream.emulator import RunningEmulator
from sheetstream.emulator.clients import service_account_info
from tests.google.conftest import SimClock, edit_cell, make_book
from tests.google.simtime import ManualTimer, Simulation

SHEETS = 8


@pytest.mark.slow
async def test_faults_lose_nothing_and_status_recovers(sim_emulator: RunningEmulator, sim_clock: SimClock) -> None:
    timer = ManualTimer()
    sim_clock.now = timer.now
    state = sim_emulator.state
    info: dict[str, Any] = service_account_info("faulty@quota.iam.gserviceaccount.com", sim_emulator.base_url, state)
    books = [make_book(state, 20, 4, title=f"Book {i}") for i in range(SHEETS)]
    sim = Simulation(sim_emulator.base_url, {"service_account_json": info}, timer, sim_clock.epoch)
    # Timeouts are real: the emulator hangs 0.4 s, the client gives up after 0.25 s.
    ids = {book.id: await sim.add(book.id, timeout_s=0.25) for book in books}
    await sim.start()
    rng = random.Random(7)
    edits: list[str] = []
    cells = {book.id: [(r, c) for r in range(1, 20) for c in range(4)] for book in books}

    def schedule(start: float, count: int, span_s: float) -> list[tuple[float, Any]]:
        out = []
        for _ in range(count):
            book = rng.choice(books)
            row, col = cells[book.id].pop(rng.randrange(len(cells[book.id])))
            value = f"edit-{len(edits) + len(out)}"

            def apply(book: Any = book, row: int = row, col: int = col, value: str = value) -> None:
                edit_cell(state, book, row, col, value)
                edits.append(value)

            out.append((start + rng.uniform(0, span_s), apply))
        return out

    try:
        await sim.run_until(timer.t + 60)
        assert not await sim.unread(ids.values())
        state.faults.configure(error_rate=0.15, error_codes=[429, 500, 503], hang_rate=0.05, hang_s=0.4)
        await sim.run_until(timer.t + 300, schedule(timer.t, 40, 300))
        during = list(sim.store.statuses)
        state.faults.reset()
        await sim.run_until(timer.t + 300, schedule(timer.t, 10, 120))

        troubles = [message for _, status, message in during if status == "error"]
        assert troubles, "no source ever showed an error status"
        assert any("429" in m or "quota" in m for m in troubles)
        assert any("did not answer" in m for m in troubles), "no timeout was reported"
        assert sim.scheduler.backoffs and max(sim.scheduler.backoffs) > 1.0
        assert sim.scheduler.rate_limits > 0
        assert all(not task.done() for task in sim.monitor._tasks.values()), "a watch crashed"
        for source_id in ids.values():
            record = await sim.store.get_source(source_id)
            assert record.status is not None and record.status.state == "ok", record.status
        delivered = {
            op.new
            for source_id in ids.values()
            for changeset in await sim.changes(source_id)
            for op in changeset.ops
            if op.op == "set"
        }
        assert set(edits) <= delivered, sorted(set(edits) - delivered)[:5]
        print(f"\n{len(troubles)} error statuses, {len(sim.scheduler.backoffs)} backoffs "
              f"(max {max(sim.scheduler.backoffs):.1f} s), {sim.scheduler.rate_limits} rate limits, {len(edits)} edits")
    finally:
        await sim.stop()
