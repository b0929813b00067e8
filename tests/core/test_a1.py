"""A1 names of cells and columns, both ways."""

from __future__ import annotations

import pytest

from sheetstream.core.a1 import a1, column_name, parse_a1


@pytest.mark.parametrize(
    ("row", "col", "name"),
    [
        (0, 0, "A1"),
        (1, 1, "B2"),
        (9, 25, "Z10"),
        (0, 26, "AA1"),
        (0, 51, "AZ1"),
        (0, 52, "BA1"),
        (0, 701, "ZZ1"),
        (0, 702, "AAA1"),
        (99_999, 16_383, "XFD100000"),
    ],
)
def test_a1_names_and_parses_back(row: int, col: int, name: str) -> None:
    assert a1(row, col) == name
    assert parse_a1(name) == (row, col)


def test_column_names_are_a_bijection_over_the_first_thousands() -> None:
    names = [column_name(c) for c in range(20_000)]
    assert len(set(names)) == len(names)
    assert all(parse_a1(f"{n}1") == (0, c) for c, n in enumerate(names))


@pytest.mark.parametrize("name", ["aa10", "$AA$10", "Aa10"])
def test_parse_accepts_lower_case_and_absolute_markers(name: str) -> None:
    assert parse_a1(name) == (9, 26)


@pytest.mark.parametrize("name", ["", "A", "1", "A0", "A01", "1A", "A-1", "A1:B2", "Sheet1!A1", " A1"])
def test_parse_rejects_what_is_not_a_cell_name(name: str) -> None:
    with pytest.raises(ValueError, match="not an A1 cell name"):
        parse_a1(name)


@pytest.mark.parametrize(("row", "col"), [(-1, 0), (0, -1)])
def test_negative_indexes_are_refused(row: int, col: int) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        a1(row, col)
