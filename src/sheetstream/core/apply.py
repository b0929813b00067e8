"""Applying ops to a snapshot: the inverse of the diff, `apply(old, diff(old, new)) == new`.

Ops apply in order, each to the tabs as the previous ops left them. Rows are not trimmed between ops (a row
cleared by `set` ops keeps its place until the ops are done); the result is normalized once, at the end, by `Tab`.
An op that does not fit (unknown tab, index out of range, a cell or title that no longer holds the op's `old`
value) raises `ApplyError`: the snapshot is not the one the ops were computed from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sheetstream.core.model import (
    EMPTY,
    AddTab,
    Cell,
    DeleteRows,
    InsertRows,
    MoveTab,
    Op,
    RemoveTab,
    RenameTab,
    Row,
    SetCell,
    Snapshot,
    Tab,
)


class ApplyError(ValueError):
    """An op does not fit the snapshot it is applied to."""

    def __init__(self, op: Op, message: str) -> None:
        super().__init__(f"cannot apply {op.op} to tab {op.tab}: {message}")
        self.op = op


@dataclass(slots=True)
class _Draft:
    """A tab being edited. `rows` stays None until a row op touches it, so untouched tabs are not copied."""

    tab: Tab
    title: str
    rows: list[Row | list[Cell]] | None = None

    def grid(self) -> list[Row | list[Cell]]:
        if self.rows is None:
            self.rows = list(self.tab.rows)
        return self.rows

    def result(self) -> Tab:
        if self.rows is None and self.title == self.tab.title:
            return self.tab
        rows = self.tab.rows if self.rows is None else self.rows
        return Tab(self.tab.id, self.title, tuple(tuple(r) for r in rows))


def apply(snapshot: Snapshot, ops: Iterable[Op]) -> Snapshot:
    """The snapshot after `ops`, applied in order; ApplyError if one does not fit."""
    drafts = [_Draft(t, t.title) for t in snapshot.tabs]
    for op in ops:
        _apply_op(drafts, op)
    return Snapshot(tuple(d.result() for d in drafts))


def _apply_op(drafts: list[_Draft], op: Op) -> None:
    """Apply one op to the drafts in place."""
    if isinstance(op, AddTab):
        if any(d.tab.id == op.tab for d in drafts):
            raise ApplyError(op, "a tab with this id already exists")
        _check(op, 0 <= op.index <= len(drafts), f"index {op.index} out of range 0..{len(drafts)}")
        tab = Tab(op.tab, op.title, op.rows)
        drafts.insert(op.index, _Draft(tab, tab.title))
        return
    position = _find(drafts, op)
    draft = drafts[position]
    match op:
        case RemoveTab():
            del drafts[position]
        case RenameTab():
            _check(op, draft.title == op.old, f"its title is {draft.title!r}, not {op.old!r}")
            draft.title = op.new
        case MoveTab():
            _check(op, 0 <= op.index < len(drafts), f"index {op.index} out of range 0..{len(drafts) - 1}")
            drafts.insert(op.index, drafts.pop(position))
        case SetCell():
            _set_cell(draft.grid(), op)
        case InsertRows():
            rows = draft.grid()
            _check(op, 0 <= op.at <= len(rows), f"row {op.at} out of range 0..{len(rows)}")
            rows[op.at : op.at] = op.rows
        case DeleteRows():
            rows = draft.grid()
            _check(
                op,
                op.at >= 0 and op.count >= 0 and op.at + op.count <= len(rows),
                f"rows {op.at}..{op.at + op.count - 1} out of range (the tab has {len(rows)} rows)",
            )
            del rows[op.at : op.at + op.count]
        case _:  # Resize, the last kind left
            _check(op, op.rows >= 0 and op.cols >= 0, f"negative extent {op.rows} x {op.cols}")
            rows = draft.grid()
            del rows[op.rows :]
            for index, row in enumerate(rows):
                if len(row) > op.cols:
                    rows[index] = row[: op.cols]


def _set_cell(rows: list[Row | list[Cell]], op: SetCell) -> None:
    """Set one cell, padding the row with empty cells if it is shorter."""
    _check(op, 0 <= op.row < len(rows), f"row {op.row} out of range (the tab has {len(rows)} rows)")
    _check(op, op.col >= 0, f"negative column {op.col}")
    row = rows[op.row]
    current = row[op.col] if op.col < len(row) else EMPTY
    _check(op, current == op.old, f"cell {op.a1} holds {current!r}, not {op.old!r}")
    cells = row if isinstance(row, list) else list(row)
    if op.col >= len(cells):
        cells.extend([EMPTY] * (op.col + 1 - len(cells)))
    cells[op.col] = op.new
    rows[op.row] = cells


def _find(drafts: list[_Draft], op: Op) -> int:
    """The position of the op's tab among the drafts."""
    for position, draft in enumerate(drafts):
        if draft.tab.id == op.tab:
            return position
    raise ApplyError(op, "no such tab")


def _check(op: Op, ok: bool, message: str) -> None:
    if not ok:
        raise ApplyError(op, message)
