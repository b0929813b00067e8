"""The diff engine: each op kind, row alignment with and without a key column, and the edge cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sheetstream.core.apply import apply
from sheetstream.core.diff import diff, extent
from sheetstream.core.model import (
    EMPTY_SNAPSHOT,
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


def snap(*tabs: tuple[int, str, Sequence[Sequence[Cell]]]) -> Snapshot:
    return Snapshot(tuple(Tab(i, title, tuple(tuple(r) for r in rows)) for i, title, rows in tabs))


def grid(*rows: Sequence[Cell]) -> Snapshot:
    return snap((0, "S", rows))


def check(old: Snapshot, new: Snapshot, key: int | str | None = None) -> list[Op]:
    """The diff, after checking that it turns old into new."""
    ops = diff(old, new, key_column=key)
    assert apply(old, ops) == new
    return list(ops)


def row_ops(ops: list[Op]) -> list[Op]:
    return [op for op in ops if not isinstance(op, Resize)]


def numbered(n: int, width: int = 3) -> list[tuple[str, ...]]:
    return [tuple(f"r{r}c{c}" for c in range(width)) for r in range(n)]


# --- whole snapshots and tabs --------------------------------------------------------------------------------


def test_equal_snapshots_give_no_ops() -> None:
    old = grid(("a", 1), ("b", 2))
    assert diff(old, grid(("a", 1), ("b", 2))) == ()
    assert diff(EMPTY_SNAPSHOT, EMPTY_SNAPSHOT) == ()


def test_from_the_empty_snapshot_every_tab_is_added_in_order() -> None:
    new = snap((3, "a", [("x",)]), (1, "b", []))
    assert check(EMPTY_SNAPSHOT, new) == [AddTab(3, "a", 0, (("x",),)), AddTab(1, "b", 1, ())]


def test_to_the_empty_snapshot_every_tab_is_removed() -> None:
    old = snap((3, "a", [("x",)]), (1, "b", []))
    assert check(old, EMPTY_SNAPSHOT) == [RemoveTab(3), RemoveTab(1)]


def test_tab_rename_and_edit_in_the_same_diff() -> None:
    old = snap((0, "old name", [("a", "b")]))
    new = snap((0, "new name", [("a", "c")]))
    assert check(old, new) == [RenameTab(0, "old name", "new name"), SetCell(0, 0, 1, "B1", "b", "c")]


def test_tab_reorder_uses_the_fewest_moves() -> None:
    old = snap((0, "a", []), (1, "b", []), (2, "c", []), (3, "d", []))
    assert check(old, snap((3, "d", []), (0, "a", []), (1, "b", []), (2, "c", []))) == [MoveTab(3, 0)]
    assert check(old, snap((1, "b", []), (2, "c", []), (3, "d", []), (0, "a", []))) == [MoveTab(0, 3)]
    reversed_ops = check(old, snap((3, "d", []), (2, "c", []), (1, "b", []), (0, "a", [])))
    assert len(reversed_ops) == 3
    assert all(isinstance(op, MoveTab) for op in reversed_ops)


def test_tab_ops_come_in_order_remove_add_rename_move_then_cells() -> None:
    old = snap((0, "gone", []), (1, "a", [("x",)]), (2, "b", []))
    new = snap((2, "b", []), (5, "new", [("n",)]), (1, "A", [("y",)]))
    ops = check(old, new)
    kinds = [op.op for op in ops]
    assert sorted(set(kinds), key=kinds.index) == ["remove_tab", "add_tab", "rename_tab", "move_tab", "set"]
    assert ops[1] == AddTab(5, "new", 1, (("n",),))


def test_added_tab_between_reordered_tabs() -> None:
    old = snap((0, "a", []), (1, "b", []))
    new = snap((1, "b", []), (7, "n", []), (0, "a", []))
    ops = check(old, new)
    assert ops[0] == AddTab(7, "n", 1, ())
    # The new tab goes straight to its final index, between "a" and "b": two of the three tabs must then move.
    assert sum(isinstance(op, MoveTab) for op in ops) == 2


def test_unchanged_tabs_get_no_ops() -> None:
    old = snap((0, "a", [("x",)]), (1, "b", [("y",)]))
    new = snap((0, "a", [("x",)]), (1, "b", [("z",)]))
    assert check(old, new) == [SetCell(1, 0, 0, "A1", "y", "z")]


# --- cells -----------------------------------------------------------------------------------------------------


def test_cell_edit_is_one_set_with_its_a1_name_and_values() -> None:
    old = grid(("h1", "h2"), ("a", 1), ("b", 2))
    assert check(old, grid(("h1", "h2"), ("a", 1), ("b", 3))) == [SetCell(0, 2, 1, "B3", 2, 3)]


def test_cell_type_change_is_an_edit() -> None:
    assert check(grid(("1",)), grid((1,))) == [SetCell(0, 0, 0, "A1", "1", 1)]


def test_numbers_whose_hashes_collide_are_still_told_apart() -> None:
    assert hash(-1) == hash(-2)
    assert check(grid((-1,), ("x",)), grid((-2,), ("x",))) == [SetCell(0, 0, 0, "A1", -1, -2)]


def test_ragged_row_grows_and_shrinks() -> None:
    old = grid(("a",), ("b", "c", "d"))
    new = grid(("a", "", "e"), ("b",))
    assert check(old, new) == [
        SetCell(0, 0, 2, "C1", "", "e"),
        SetCell(0, 1, 1, "B2", "c", ""),
        SetCell(0, 1, 2, "C2", "d", ""),
    ]


def test_cleared_cell_in_the_middle_of_a_row() -> None:
    assert check(grid(("a", "b", "c")), grid(("a", "", "c"))) == [SetCell(0, 0, 1, "B1", "b", "")]


def test_row_becoming_empty_in_the_middle_is_cleared_not_deleted() -> None:
    old = grid(("a",), ("b", "c"), ("d",))
    assert check(old, grid(("a",), (), ("d",))) == [
        SetCell(0, 1, 0, "A2", "b", ""),
        SetCell(0, 1, 1, "B2", "c", ""),
        Resize(0, 3, 1),
    ]


def test_trailing_rows_trimmed_are_deleted_and_resized() -> None:
    old = grid(("a",), ("b", "c"))
    assert check(old, grid(("a",), ("", ""))) == [DeleteRows(0, 1, 1), Resize(0, 1, 1)]


def test_resize_only_when_the_extent_changes() -> None:
    assert not any(isinstance(op, Resize) for op in check(grid(("a", "b")), grid(("c", "d"))))
    assert check(grid(("a",)), grid(("a", "b")))[-1] == Resize(0, 1, 2)
    assert extent((("a",), ("b", "c", "d"), ())) == (3, 3)
    assert extent(()) == (0, 0)


# --- rows, by sequence alignment -------------------------------------------------------------------------------


def test_row_inserted_in_the_middle_is_one_insert() -> None:
    rows = numbered(50)
    new = [*rows[:20], ("new",), *rows[20:]]
    assert row_ops(check(grid(*rows), grid(*new))) == [InsertRows(0, 20, (("new",),))]


def test_contiguous_inserted_rows_are_one_insert() -> None:
    rows = numbered(30)
    block = [("n1",), ("n2", "x"), ("n3",)]
    new = [*rows[:10], *block, *rows[10:]]
    assert row_ops(check(grid(*rows), grid(*new))) == [InsertRows(0, 10, tuple(block))]


def test_deleted_block_is_one_delete() -> None:
    rows = numbered(30)
    assert row_ops(check(grid(*rows), grid(*rows[:5], *rows[9:]))) == [DeleteRows(0, 5, 4)]


def test_rows_appended_and_prepended() -> None:
    rows = numbered(5)
    assert row_ops(check(grid(*rows), grid(*rows, ("z",)))) == [InsertRows(0, 5, (("z",),))]
    assert row_ops(check(grid(*rows), grid(("z",), *rows))) == [InsertRows(0, 0, (("z",),))]


def test_replaced_rows_pair_up_as_sets_and_the_excess_is_inserted() -> None:
    old = grid(("k",), ("a", 1), ("b", 2), ("z",))
    new = grid(("k",), ("a", 9), ("b", 8), ("c", 7), ("z",))
    assert check(old, new) == [
        SetCell(0, 1, 1, "B2", 1, 9),
        SetCell(0, 2, 1, "B3", 2, 8),
        InsertRows(0, 3, (("c", 7),)),
        Resize(0, 5, 2),
    ]


def test_replaced_rows_pair_up_as_sets_and_the_excess_is_deleted() -> None:
    old = grid(("k",), ("a", 1), ("b", 2), ("c", 3), ("z",))
    new = grid(("k",), ("a", 9), ("z",))
    assert check(old, new) == [SetCell(0, 1, 1, "B2", 1, 9), DeleteRows(0, 2, 2), Resize(0, 3, 2)]


def test_indexes_follow_earlier_inserts_and_deletes() -> None:
    rows = numbered(20)
    new = [*rows[:3], ("ins",), *rows[3:10], *rows[12:15], ("r14", "changed"), *rows[16:]]
    ops = check(grid(*rows), grid(*new))
    assert row_ops(ops) == [
        InsertRows(0, 3, (("ins",),)),
        DeleteRows(0, 11, 2),
        SetCell(0, 14, 0, "A15", "r15c0", "r14"),
        SetCell(0, 14, 1, "B15", "r15c1", "changed"),
        SetCell(0, 14, 2, "C15", "r15c2", ""),
    ]


def test_duplicate_rows() -> None:
    old = grid(("a",), ("a",), ("b",), ("a",))
    ops = row_ops(check(old, grid(("a",), ("a",), ("a",), ("b",), ("a",))))
    assert len(ops) == 1
    assert isinstance(ops[0], InsertRows)
    assert len(row_ops(check(old, grid(("a",), ("b",), ("a",))))) == 1
    check(old, grid(("b",), ("b",), ("a",), ("a",), ("a",), ("b",)))


def test_many_scattered_edits_in_a_large_grid() -> None:
    # 600 edited rows are too many for the O(ND) alignment; unique rows anchor the alignment instead.
    rows = numbered(3000)
    new = [(*r[:2], "edited") if i % 5 == 0 else r for i, r in enumerate(rows)]
    new.insert(1501, ("inserted",))
    ops = row_ops(check(grid(*rows), grid(*new)))
    assert [op for op in ops if not isinstance(op, SetCell)] == [InsertRows(0, 1501, (("inserted",),))]
    assert len(ops) == 601


def test_large_grids_with_nothing_in_common_are_replaced_row_by_row() -> None:
    old = [(i % 3, i % 7) for i in range(2000)]
    new = [(i % 5, "x") for i in range(1500)]
    ops = check(grid(*old), grid(*new))
    assert sum(isinstance(op, DeleteRows) for op in ops) == 1


def test_large_grid_with_one_insert_is_one_insert() -> None:
    rows = numbered(20_000, width=10)
    new = [*rows[:12_345], ("new",), *rows[12_345:]]
    new[100] = ("edited",)
    ops = row_ops(check(grid(*rows), grid(*new)))
    assert [op.op for op in ops].count("insert_rows") == 1
    assert len(ops) == 11


# --- rows, by key column ---------------------------------------------------------------------------------------

PEOPLE = [("id", "name", "age"), (1, "ann", 30), (2, "bob", 40), (3, "cid", 50), (4, "dee", 60)]


def test_key_column_deleted_row_and_edited_neighbour() -> None:
    new = [PEOPLE[0], PEOPLE[1], (3, "cid", 51), PEOPLE[4]]
    # By content, row 2 would turn into row 3; by key, row 2 is deleted and row 3 edited.
    assert row_ops(check(grid(*PEOPLE), grid(*new), key=0)) == [
        DeleteRows(0, 2, 1),
        SetCell(0, 2, 2, "C3", 50, 51),
    ]
    assert row_ops(check(grid(*PEOPLE), grid(*new))) == [
        SetCell(0, 2, 0, "A3", 2, 3),
        SetCell(0, 2, 1, "B3", "bob", "cid"),
        SetCell(0, 2, 2, "C3", 40, 51),
        DeleteRows(0, 3, 1),
    ]


def test_key_column_by_header_name() -> None:
    new = [PEOPLE[0], PEOPLE[1], (3, "cid", 51), PEOPLE[4]]
    assert row_ops(check(grid(*PEOPLE), grid(*new), key="id")) == [
        DeleteRows(0, 2, 1),
        SetCell(0, 2, 2, "C3", 50, 51),
    ]


def test_header_name_absent_falls_back_to_sequence_alignment() -> None:
    new = [PEOPLE[0], PEOPLE[1], (3, "cid", 51), PEOPLE[4]]
    assert check(grid(*PEOPLE), grid(*new), key="nope") == check(grid(*PEOPLE), grid(*new))
    assert check(EMPTY_SNAPSHOT, grid(*new), key="id") == [AddTab(0, "S", 0, tuple(new))]
    assert check(grid(*PEOPLE), grid(), key="id") == [DeleteRows(0, 0, 5), Resize(0, 0, 0)]


def test_key_column_header_change_is_a_set() -> None:
    new = [("ID", "name", "age"), *PEOPLE[1:3], (3, "cid", 99), PEOPLE[4]]
    assert row_ops(check(grid(*PEOPLE), grid(*new), key=0)) == [
        SetCell(0, 0, 0, "A1", "id", "ID"),
        SetCell(0, 3, 2, "C4", 50, 99),
    ]


def test_key_column_inserted_row_is_one_insert() -> None:
    new = [*PEOPLE[:3], (9, "new", 1), *PEOPLE[3:]]
    assert row_ops(check(grid(*PEOPLE), grid(*new), key="id")) == [InsertRows(0, 3, ((9, "new", 1),))]


def test_key_column_moved_row_with_an_edit() -> None:
    new = [PEOPLE[0], PEOPLE[2], PEOPLE[3], (1, "ann", 31), (4, "dee", 61)]
    ops = row_ops(check(grid(*PEOPLE), grid(*new), key="id"))
    assert SetCell(0, 4, 2, "C5", 60, 61) in ops
    assert not any(isinstance(op, SetCell) and op.col != 2 for op in ops)


def test_key_column_with_duplicate_and_empty_keys() -> None:
    old = [("k", "v"), ("a", 1), ("a", 2), ("", 3), ("", 4), ("b", 5)]
    new = [("k", "v"), ("a", 1), ("a", 20), ("", 3), ("", 40), ("c", 6), ("b", 5)]
    ops = row_ops(check(grid(*old), grid(*new), key=0))
    # Rows without a key of their own fall back to alignment by content: their edits are sets.
    assert ops == [
        SetCell(0, 2, 1, "B3", 2, 20),
        SetCell(0, 4, 1, "B5", 4, 40),
        InsertRows(0, 5, (("c", 6),)),
    ]


def test_key_unique_on_one_side_and_repeated_on_the_other() -> None:
    old = [("k",), ("x", 1), ("y",)]
    new = [("k",), ("x", 1), ("x", 2), ("y",)]
    assert row_ops(check(grid(*old), grid(*new), key=0)) == [InsertRows(0, 2, (("x", 2),))]


def test_key_column_rows_with_other_keys_are_not_turned_into_each_other() -> None:
    old = [("id", "v"), (1, "a"), (2, "b"), (5, "e")]
    new = [("id", "v"), (3, "c"), (4, "d"), (5, "e")]
    assert row_ops(check(grid(*old), grid(*new), key="id")) == [
        DeleteRows(0, 1, 2),
        InsertRows(0, 1, ((3, "c"), (4, "d"))),
    ]


def test_key_column_with_repeated_keys_pairs_rows_in_order() -> None:
    old = [("k", "v"), ("x", 1), ("x", 2), ("y", 0)]
    new = [("k", "v"), ("x", 3), ("x", 4), ("y", 0)]
    assert row_ops(check(grid(*old), grid(*new), key="k")) == [
        SetCell(0, 1, 1, "B2", 1, 3),
        SetCell(0, 2, 1, "B3", 2, 4),
    ]


def test_key_column_past_the_end_of_short_rows() -> None:
    old = [("k", "id"), ("a",), ("b", 1), ("c", 2)]
    new = [("k", "id"), ("a", "", "z"), ("c", 2), ("d",)]
    # Rows without a key cell have an empty key: they align by content.
    assert row_ops(check(grid(*old), grid(*new), key=1)) == [
        SetCell(0, 1, 2, "C2", "", "z"),
        DeleteRows(0, 2, 1),
        InsertRows(0, 3, (("d",),)),
    ]
    check(grid(*old), grid(*new), key=7)


def test_negative_key_column_is_refused() -> None:
    with pytest.raises(ValueError, match="key_column"):
        diff(grid(("a",)), grid(("b",)), key_column=-1)
