"""Fixtures for the google_sheets source: an emulator per test module, a service account, and helpers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sheetstream.emulator import RunningEmulator, run_emulator
from sheetstream.emulator.cells import Cell
from sheetstream.emulator.model import DriveFile, Sheet
from sheetstream.emulator.state import EmulatorState

ROBOT = "robot@sheetstream-google.iam.gserviceaccount.com"


class SimClock:
    """The emulator's clock: a fixed epoch plus whatever a test's timer says."""

    def __init__(self) -> None:
        self.epoch = time.time()
        self.now: Any = lambda: 0.0

    def __call__(self) -> float:
        return float(self.epoch + self.now())


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
def sim_emulator(sim_clock: SimClock) -> Iterator[RunningEmulator]:
    """An emulator (default mode) whose clock a test's ManualTimer drives."""
    with run_emulator(clock=sim_clock, push_delay_s=0.05) as emu:
        yield emu


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """A strict emulator on the wall clock."""
    with run_emulator(strict=True, push_delay_s=0.05) as emu:
        yield emu


@pytest.fixture
def robot(emulator: RunningEmulator) -> dict[str, Any]:
    """A registered service account's key JSON (its token_uri is the emulator)."""
    from sheetstream.emulator.clients import service_account_info

    return service_account_info(ROBOT, emulator.base_url, emulator.state)


def make_book(state: EmulatorState, rows: int, cols: int, *, owner: str | None = None, title: str = "Book") -> DriveFile:
    """A spreadsheet whose first tab holds rows x cols of text ("r1c0" …)."""
    data: list[list[Cell | None]] = [[Cell(f"r{r}c{c}") for c in range(cols)] for r in range(rows)]
    return state.create_spreadsheet(title, owner=owner, sheets=[Sheet(0, "Sheet1", rows=data)])


def edit_cell(state: EmulatorState, book: DriveFile, row: int, col: int, value: str, sheet_id: int = 0) -> None:
    """Write one cell as an edit in the Sheets UI would: the file's version goes up, the change log grows."""
    with state.lock:
        sheet = book.sheet_by_id(sheet_id)
        assert sheet is not None
        sheet.set(row, col, Cell(value))
        state.commit(book)
