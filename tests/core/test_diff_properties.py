"""Properties of the diff: `apply(old, diff(old, new)) == new` for random snapshots and edits, single inserted or
deleted rows are single ops, and ops survive the wire codec."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.core.apply import apply
from sheetstream.core.codec import op_from_json, op_to_json
from sheetstream.core.diff import diff
from sheetstream.core.model import (
    AddTab,
    Cell,
    DeleteRows,
    InsertRows,
    MoveTab,
    Op,
    RemoveTab,
    RenameTab,
    Resize,
    SetCell,
    Snapshot,
    Tab,
)

# No deadline: timing on a busy machine says nothing about these properties.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Small alphabets, so that equal cells, rows and titles happen often.
CELLS: st.SearchStrategy[Cell] = st.sampled_from(["", "a", "b", "c", 0, 1, 2.5])
ROWS = st.lists(CELLS, max_size=4).map(tuple)
GRIDS = st.lists(ROWS, max_size=8)
TITLES = st.sampled_from(["one", "two", "three"])
KEYS = st.sampled_from([None, 0, 1, "a", "absent"])


@st.composite
def snapshots(draw: st.DrawFn, grids: st.SearchStrategy[list[tuple[Cell, ...]]] = GRIDS) -> Snapshot:
    ids = draw(st.lists(st.integers(0, 6), unique=True, max_size=3))
    return Snapshot(tuple(Tab(i, draw(TITLES), tuple(draw(grids))) for i in ids))


@st.composite
def edited(draw: st.DrawFn, old: Snapshot) -> Snapshot:
    """`old` after a few random edits: cells, row inserts and deletes, tab adds, removes, renames and moves."""
    tabs: list[list[Any]] = [[t.id, t.title, [list(r) for r in t.rows]] for t in old.tabs]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["cell", "cell", "insert", "delete", "add", "remove", "rename", "move"]))
        if not tabs or kind == "add":
            new_id = max((t[0] for t in tabs), default=-1) + 1
            tabs.insert(
                draw(st.integers(0, len(tabs))), [new_id, draw(TITLES), [list(r) for r in draw(GRIDS)]]
            )
            continue
        tab = draw(st.sampled_from(tabs))
        rows = tab[2]
        if kind == "cell":
            r, c = draw(st.integers(0, len(rows))), draw(st.integers(0, 4))
            if r == len(rows):
                rows.append([])
            rows[r].extend([""] * (c + 1 - len(rows[r])))
            rows[r][c] = draw(CELLS)
        elif kind == "insert":
            rows.insert(draw(st.integers(0, len(rows))), list(draw(ROWS)))
        elif kind == "delete" and rows:
            at = draw(st.integers(0, len(rows) - 1))
            del rows[at : at + draw(st.integers(1, 3))]
        elif kind == "remove":
            tabs.remove(tab)
        elif kind == "rename":
            tab[1] = draw(TITLES)
        elif kind == "move":
            tabs.remove(tab)
            tabs.insert(draw(st.integers(0, len(tabs))), tab)
    return Snapshot(tuple(Tab(i, title, tuple(tuple(r) for r in rows)) for i, title, rows in tabs))


def wire(op: Op) -> Op:
    return op_from_json(orjson.loads(orjson.dumps(op_to_json(op))))


@RELAXED
@given(st.data(), snapshots(), KEYS)
def test_apply_inverts_diff_after_random_edits(
    data: st.DataObject, old: Snapshot, key: int | str | None
) -> None:
    new = data.draw(edited(old))
    ops = diff(old, new, key_column=key)
    assert apply(old, ops) == new
    assert apply(old, [wire(op) for op in ops]) == new


@RELAXED
@given(snapshots(), snapshots(), KEYS)
def test_apply_inverts_diff_between_unrelated_snapshots(
    old: Snapshot, new: Snapshot, key: int | str | None
) -> None:
    assert apply(old, diff(old, new, key_column=key)) == new


# Taller grids of few distinct rows: many differences, so alignment leaves Myers for anchors and replaced blocks.
TALL = st.lists(
    st.sampled_from([("a",), ("b", 1), ("c", "", 2), ("a", "b"), (), (0,)]), min_size=20, max_size=60
)


@settings(RELAXED, max_examples=40)
@given(snapshots(TALL), snapshots(TALL), KEYS)
def test_apply_inverts_diff_between_tall_grids(old: Snapshot, new: Snapshot, key: int | str | None) -> None:
    assert apply(old, diff(old, new, key_column=key)) == new


@settings(RELAXED, max_examples=40)
@given(snapshots(TALL), st.data())
def test_apply_inverts_diff_of_a_shuffled_tall_grid(old: Snapshot, data: st.DataObject) -> None:
    new = Snapshot(tuple(Tab(t.id, t.title, tuple(data.draw(st.permutations(t.rows)))) for t in old.tabs))
    assert apply(old, diff(old, new)) == new


@RELAXED
@given(snapshots(), KEYS)
def test_diff_of_equal_snapshots_is_empty(snapshot: Snapshot, key: int | str | None) -> None:
    copy = Snapshot(tuple(Tab(t.id, t.title, tuple(tuple(r) for r in t.rows)) for t in snapshot.tabs))
    assert diff(snapshot, copy, key_column=key) == ()


# Distinct, non-empty rows whose first cell is a distinct key.
DISTINCT_ROWS = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(["x", "y", ""]), st.sampled_from(["", "p", 3])),
    unique_by=lambda r: r[0],
    max_size=30,
).map(lambda rows: [tuple(r) for r in rows])


@RELAXED
@given(DISTINCT_ROWS, st.data(), st.sampled_from([None, 0]))
def test_single_inserted_row_is_one_insert(
    rows: list[tuple[Cell, ...]], data: st.DataObject, key: int | None
) -> None:
    at = data.draw(st.integers(0, len(rows)))
    row = ("new", data.draw(CELLS), "z")
    old = Snapshot((Tab(0, "t", tuple(rows)),))
    new = Snapshot((Tab(0, "t", (*rows[:at], row, *rows[at:])),))
    ops = [op for op in diff(old, new, key_column=key) if not isinstance(op, Resize)]
    assert ops == [InsertRows(0, at, (row,))]


@RELAXED
@given(DISTINCT_ROWS.filter(bool), st.data(), st.sampled_from([None, 0]))
def test_single_deleted_row_is_one_delete(
    rows: list[tuple[Cell, ...]], data: st.DataObject, key: int | None
) -> None:
    at = data.draw(st.integers(0, len(rows) - 1))
    old = Snapshot((Tab(0, "t", tuple(rows)),))
    new = Snapshot((Tab(0, "t", (*rows[:at], *rows[at + 1 :])),))
    ops = [op for op in diff(old, new, key_column=key) if not isinstance(op, Resize)]
    assert ops == [DeleteRows(0, at, 1)]


# --- the wire codec ----------------------------------------------------------------------------------------------

WIRE_CELLS: st.SearchStrategy[Cell] = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=5),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
WIRE_ROWS = st.lists(st.lists(WIRE_CELLS, max_size=3).map(tuple), max_size=3).map(tuple)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
N = st.integers(0, 10**6)
OPS: st.SearchStrategy[Op] = st.one_of(
    st.builds(SetCell, tab=N, row=N, col=N, a1=TEXT, old=WIRE_CELLS, new=WIRE_CELLS),
    st.builds(InsertRows, tab=N, at=N, rows=WIRE_ROWS),
    st.builds(DeleteRows, tab=N, at=N, count=N),
    st.builds(AddTab, tab=N, title=TEXT, index=N, rows=WIRE_ROWS),
    st.builds(RemoveTab, tab=N),
    st.builds(RenameTab, tab=N, old=TEXT, new=TEXT),
    st.builds(MoveTab, tab=N, index=N),
    st.builds(Resize, tab=N, rows=N, cols=N),
)


@RELAXED
@given(OPS)
def test_ops_survive_the_wire_codec(op: Op) -> None:
    assert op_from_json(op_to_json(op)) == op
    assert wire(op) == op
