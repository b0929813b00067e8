"""The data model: snapshots of a source's tabs, the ops between two snapshots, and versioned change sets.

Everything here is immutable and JSON-shaped. Rows are ragged, as Google's values API returns them: trailing
empty cells of a row and trailing empty rows of a tab are trimmed (see `normalize_rows`). An empty cell is "".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

Cell: TypeAlias = str | int | float | bool
"""A cell value. Empty cells are "" (``None`` from a parser is normalized to "")."""

Row: TypeAlias = tuple[Cell, ...]
Rows: TypeAlias = tuple[Row, ...]

EMPTY: Cell = ""


def normalize_cell(value: object) -> Cell:
    """Return `value` as a Cell: None becomes "", scalars stay, anything else becomes its string form."""
    if value is None:
        return EMPTY
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def trim_row(row: tuple[Cell, ...] | list[Cell]) -> Row:
    """Drop trailing empty cells."""
    end = len(row)
    while end and row[end - 1] == EMPTY:
        end -= 1
    return tuple(row[:end])


_CELL_TYPES = frozenset({str, int, float, bool})


def _normalize_row(row: Iterable[object]) -> Row:
    # Fast paths: rows from the parsers, `apply` and `diff` are already tuples (or lists) of plain cells.
    cells: tuple[Any, ...] = row if type(row) is tuple else tuple(row)
    if None not in cells and set(map(type, cells)) <= _CELL_TYPES:
        return cells if not cells or cells[-1] != EMPTY else trim_row(cells)
    return trim_row([normalize_cell(c) for c in cells])


def normalize_rows(rows: Iterable[Iterable[object]]) -> Rows:
    """Return rows as tuples of Cells with trailing empty cells and trailing empty rows trimmed."""
    out = [_normalize_row(row) for row in rows]
    while out and not out[-1]:
        out.pop()
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Tab:
    """One tab (sheet) of a source. `id` is stable across renames (Google's sheetId)."""

    id: int
    title: str
    rows: Rows = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", normalize_rows(self.rows))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The content of a source at one moment: its tabs in display order."""

    tabs: tuple[Tab, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tabs", tuple(self.tabs))
        ids = [t.id for t in self.tabs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate tab ids in snapshot: {ids}")

    def tab(self, tab_id: int) -> Tab:
        """The tab with this id (KeyError if absent)."""
        for t in self.tabs:
            if t.id == tab_id:
                return t
        raise KeyError(tab_id)


EMPTY_SNAPSHOT = Snapshot()


# --- ops -----------------------------------------------------------------------------------------------------
# Wire form: each op is a JSON object with "op" naming its kind (see `codec.py`). Indexes are 0-based into the
# tab's rows *as they are when the op is applied*: ops apply in order.


@dataclass(frozen=True, slots=True)
class SetCell:
    """Cell (row, col) of a tab changes from `old` to `new`; `a1` names it in A1 notation ("" = cleared)."""

    tab: int
    row: int
    col: int
    a1: str
    old: Cell
    new: Cell
    op: Literal["set"] = field(default="set", init=False)


@dataclass(frozen=True, slots=True)
class InsertRows:
    """`rows` are inserted before index `at` (at == len(rows) appends)."""

    tab: int
    at: int
    rows: Rows
    op: Literal["insert_rows"] = field(default="insert_rows", init=False)


@dataclass(frozen=True, slots=True)
class DeleteRows:
    """`count` rows starting at index `at` are removed."""

    tab: int
    at: int
    count: int
    op: Literal["delete_rows"] = field(default="delete_rows", init=False)


@dataclass(frozen=True, slots=True)
class AddTab:
    """A tab is added at position `index` among the tabs, with its rows."""

    tab: int
    title: str
    index: int
    rows: Rows
    op: Literal["add_tab"] = field(default="add_tab", init=False)


@dataclass(frozen=True, slots=True)
class RemoveTab:
    """The tab is removed."""

    tab: int
    op: Literal["remove_tab"] = field(default="remove_tab", init=False)


@dataclass(frozen=True, slots=True)
class RenameTab:
    """The tab's title changes from `old` to `new`."""

    tab: int
    old: str
    new: str
    op: Literal["rename_tab"] = field(default="rename_tab", init=False)


@dataclass(frozen=True, slots=True)
class MoveTab:
    """The tab moves to position `index` among the tabs."""

    tab: int
    index: int
    op: Literal["move_tab"] = field(default="move_tab", init=False)


@dataclass(frozen=True, slots=True)
class Resize:
    """The tab's extent becomes `rows` x `cols`: rows past `rows` and cells past `cols` are dropped.

    Emitted when a tab's extent changes, after the tab's other ops; growing needs no cells dropped, so it is
    informational for clients that render a fixed grid.
    """

    tab: int
    rows: int
    cols: int
    op: Literal["resize"] = field(default="resize", init=False)


Op: TypeAlias = SetCell | InsertRows | DeleteRows | AddTab | RemoveTab | RenameTab | MoveTab | Resize


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """One committed change of a source: `version` is the previous version + 1 within `epoch`."""

    source: str
    epoch: str
    version: int
    at: datetime
    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class VersionedSnapshot:
    """A source's snapshot with the (epoch, version) it reflects. Version 0 is the empty snapshot before any read."""

    source: str
    epoch: str
    version: int
    snapshot: Snapshot
