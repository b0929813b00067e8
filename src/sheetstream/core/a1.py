"""A1 notation: the spreadsheet name of a cell ("A1", "AA10") from 0-based (row, col) indexes, and back."""

from __future__ import annotations

import re

_A1 = re.compile(r"\$?([A-Za-z]+)\$?([1-9][0-9]*)")


def column_name(col: int) -> str:
    """The letters of a 0-based column index: 0 -> "A", 25 -> "Z", 26 -> "AA"."""
    if col < 0:
        raise ValueError(f"column index must be >= 0, got {col}")
    letters = ""
    n = col + 1
    while n:
        # Bijective base 26: there is no zero digit, so shift by one before each division.
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def a1(row: int, col: int) -> str:
    """The A1 name of the cell at 0-based (row, col): a1(0, 0) == "A1", a1(9, 26) == "AA10"."""
    if row < 0:
        raise ValueError(f"row index must be >= 0, got {row}")
    return f"{column_name(col)}{row + 1}"


def parse_a1(s: str) -> tuple[int, int]:
    """The 0-based (row, col) of an A1 name such as "B3", "aa10" or "$C$7"; ValueError if it is not one."""
    match = _A1.fullmatch(s)
    if match is None:
        raise ValueError(f"not an A1 cell name: {s!r}")
    letters, digits = match.groups()
    col = 0
    for ch in letters.upper():
        col = col * 26 + (ord(ch) - ord("A") + 1)
    return int(digits) - 1, col - 1
