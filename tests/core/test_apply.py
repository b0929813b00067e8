"""Applying ops to snapshots: each op kind, in order, and the errors for ops that do not fit."""

from __future__ import annotations

import pytest

from sheetstream.core.apply import ApplyError, apply
from sheetstream.core.model import (
    EMPTY_SNAPSHOT,
    AddTab,
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

GRID = (("h1", "h2"), ("a", 1), ("b", 2))
SNAP = Snapshot((Tab(1, "one", GRID), Tab(2, "two", (("x",),))))


def rows(snapshot: Snapshot, tab_id: int = 1) -> tuple[tuple[object, ...], ...]:
    return snapshot.tab(tab_id).rows


def test_no_ops_returns_an_equal_snapshot_reusing_its_tabs() -> None:
    out = apply(SNAP, [])
    assert out == SNAP
    assert out.tabs[0] is SNAP.tabs[0]


def test_set_changes_one_cell() -> None:
    out = apply(SNAP, [SetCell(1, 1, 1, "B2", 1, 10)])
    assert rows(out) == (("h1", "h2"), ("a", 10), ("b", 2))
    assert out.tabs[1] is SNAP.tabs[1]


def test_set_past_the_end_of_a_ragged_row_pads_with_empty_cells() -> None:
    out = apply(SNAP, [SetCell(1, 2, 4, "E3", "", "far")])
    assert rows(out)[2] == ("b", 2, "", "", "far")


def test_set_to_empty_clears_and_the_result_is_trimmed() -> None:
    out = apply(SNAP, [SetCell(1, 2, 1, "B3", 2, ""), SetCell(1, 2, 0, "A3", "b", "")])
    assert rows(out) == (("h1", "h2"), ("a", 1))


def test_rows_are_not_trimmed_between_ops() -> None:
    # Row 2 is empty after the sets, but the insert after it still counts it.
    ops: list[Op] = [
        SetCell(1, 2, 0, "A3", "b", ""),
        SetCell(1, 2, 1, "B3", 2, ""),
        InsertRows(1, 3, (("c",),)),
    ]
    assert rows(apply(SNAP, ops)) == (("h1", "h2"), ("a", 1), (), ("c",))


def test_insert_rows_in_the_middle_and_at_the_end() -> None:
    out = apply(SNAP, [InsertRows(1, 1, (("new",), ("new2",))), InsertRows(1, 5, (("last",),))])
    assert rows(out) == (("h1", "h2"), ("new",), ("new2",), ("a", 1), ("b", 2), ("last",))


def test_inserted_rows_are_normalized() -> None:
    out = apply(SNAP, [InsertRows(1, 3, (("c", "", ""), ("", "")))])
    assert rows(out)[-1] == ("c",)


def test_delete_rows() -> None:
    assert rows(apply(SNAP, [DeleteRows(1, 1, 2)])) == (("h1", "h2"),)


def test_resize_drops_rows_and_cells_past_the_extent() -> None:
    assert rows(apply(SNAP, [Resize(1, 2, 1)])) == (("h1",), ("a",))


def test_resize_that_grows_changes_nothing() -> None:
    assert apply(SNAP, [Resize(1, 10, 10)]) == SNAP


def test_add_tab_at_its_index() -> None:
    out = apply(SNAP, [AddTab(9, "nine", 1, (("z", ""),))])
    assert [t.id for t in out.tabs] == [1, 9, 2]
    assert out.tab(9) == Tab(9, "nine", (("z",),))


def test_added_tab_can_be_edited_by_later_ops() -> None:
    out = apply(EMPTY_SNAPSHOT, [AddTab(0, "t", 0, (("a",),)), SetCell(0, 0, 1, "B1", "", "b")])
    assert out == Snapshot((Tab(0, "t", (("a", "b"),)),))


def test_remove_rename_and_move_tabs() -> None:
    assert [t.id for t in apply(SNAP, [RemoveTab(1)]).tabs] == [2]
    assert apply(SNAP, [RenameTab(2, "two", "deux")]).tab(2).title == "deux"
    assert [t.id for t in apply(SNAP, [MoveTab(1, 1)]).tabs] == [2, 1]
    assert [t.id for t in apply(SNAP, [MoveTab(2, 0)]).tabs] == [2, 1]


def test_rename_keeps_the_rows() -> None:
    out = apply(SNAP, [RenameTab(1, "one", "uno")])
    assert out.tab(1) == Tab(1, "uno", GRID)


def test_ops_apply_in_order() -> None:
    ops: list[Op] = [InsertRows(1, 1, (("new",),)), SetCell(1, 2, 0, "A3", "a", "A"), DeleteRows(1, 3, 1)]
    assert rows(apply(SNAP, ops)) == (("h1", "h2"), ("new",), ("A", 1))


def test_apply_does_not_change_its_input() -> None:
    apply(SNAP, [SetCell(1, 1, 0, "A2", "a", "z"), DeleteRows(1, 0, 1)])
    assert rows(SNAP) == GRID


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (SetCell(5, 0, 0, "A1", "", "x"), "no such tab"),
        (SetCell(1, 3, 0, "A4", "", "x"), "row 3 out of range"),
        (SetCell(1, -1, 0, "A0", "", "x"), "row -1 out of range"),
        (SetCell(1, 0, -1, "?", "", "x"), "negative column"),
        (SetCell(1, 1, 0, "A2", "stale", "x"), "cell A2 holds 'a', not 'stale'"),
        (InsertRows(1, 4, (("x",),)), "row 4 out of range 0..3"),
        (InsertRows(1, -1, (("x",),)), "out of range"),
        (DeleteRows(1, 2, 2), "rows 2..3 out of range"),
        (DeleteRows(1, -1, 1), "out of range"),
        (DeleteRows(1, 0, -1), "out of range"),
        (AddTab(2, "dup", 0, ()), "already exists"),
        (AddTab(3, "far", 3, ()), "index 3 out of range 0..2"),
        (RemoveTab(3), "no such tab"),
        (RenameTab(1, "uno", "one"), "its title is 'one', not 'uno'"),
        (MoveTab(1, 2), "index 2 out of range 0..1"),
        (MoveTab(1, -1), "out of range"),
        (Resize(1, -1, 2), "negative extent"),
    ],
)
def test_ops_that_do_not_fit_raise_apply_error(op: Op, message: str) -> None:
    with pytest.raises(ApplyError, match=message) as info:
        apply(SNAP, [op])
    assert info.value.op == op
    assert f"cannot apply {op.op} to tab {op.tab}" in str(info.value)


def test_apply_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no such tab"):
        apply(EMPTY_SNAPSHOT, [RemoveTab(0)])
