"""Stable tab ids for sources without native ones: same title, else same position, else a new id."""

from __future__ import annotations

from sheetstream.core.model import Snapshot, Tab
from sheetstream.core.tabs import assign_tab_ids

ROWS = (("a",),)


def ids(snapshot: Snapshot) -> list[tuple[int, str]]:
    return [(t.id, t.title) for t in snapshot.tabs]


def test_first_read_numbers_tabs_from_zero() -> None:
    snap = assign_tab_ids(None, [("one", ROWS), ("two", ())])
    assert ids(snap) == [(0, "one"), (1, "two")]
    assert snap.tabs[0].rows == ROWS


def test_empty_previous_snapshot_is_a_first_read() -> None:
    assert ids(assign_tab_ids(Snapshot(), [("one", ROWS)])) == [(0, "one")]


def test_same_title_keeps_its_id_when_tabs_are_reordered() -> None:
    prev = Snapshot((Tab(4, "a"), Tab(7, "b")))
    assert ids(assign_tab_ids(prev, [("b", ()), ("a", ())])) == [(7, "b"), (4, "a")]


def test_renamed_tab_keeps_the_id_of_its_position() -> None:
    prev = Snapshot((Tab(4, "a"), Tab(7, "b")))
    assert ids(assign_tab_ids(prev, [("a", ()), ("renamed", ())])) == [(4, "a"), (7, "renamed")]


def test_title_match_wins_over_position() -> None:
    prev = Snapshot((Tab(1, "a"), Tab(2, "b")))
    # "b" moved to position 0 and a new tab took position 1: "b" keeps 2, the new one may not take 1
    # because "a" (id 1, position 0) is unmatched only at position 0, which "b" already holds.
    assert ids(assign_tab_ids(prev, [("b", ()), ("c", ())])) == [(2, "b"), (3, "c")]


def test_new_tabs_get_ids_after_the_largest_previous_one() -> None:
    prev = Snapshot((Tab(9, "a"), Tab(3, "b")))
    assert ids(assign_tab_ids(prev, [("a", ()), ("b", ()), ("c", ()), ("d", ())])) == [
        (9, "a"),
        (3, "b"),
        (10, "c"),
        (11, "d"),
    ]


def test_removed_tab_ids_are_not_given_to_tabs_at_other_positions() -> None:
    prev = Snapshot((Tab(0, "a"), Tab(1, "b"), Tab(2, "c")))
    assert ids(assign_tab_ids(prev, [("c", ())])) == [(2, "c")]


def test_repeated_titles_match_in_order() -> None:
    prev = Snapshot((Tab(5, "x"), Tab(6, "x")))
    assert ids(assign_tab_ids(prev, [("x", ()), ("x", ()), ("x", ())])) == [(5, "x"), (6, "x"), (7, "x")]


def test_ids_are_stable_over_repeated_reads() -> None:
    first = assign_tab_ids(None, [("a", ROWS), ("b", ROWS)])
    second = assign_tab_ids(first, [("a", ()), ("b", ROWS)])
    assert ids(second) == ids(first)
