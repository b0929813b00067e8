"""The diff engine: the ops that turn one snapshot into another (ARCHITECTURE.md, "Data model").

Tabs are matched by id. Ops come in this order: `remove_tab` for vanished tabs, `add_tab` for new ones (at their
index in the new order), `rename_tab`, `move_tab` (the fewest moves: tabs outside a longest run already in order),
then for each surviving tab, in the new order, its row and cell ops top-down and a `resize` if its extent changed.

Rows are aligned so that a row inserted in the middle is ONE `insert_rows` op, not every row below it changed:

- by sequence alignment of whole rows: the common prefix and suffix are skipped and the middle is aligned with
  Myers' O(ND) algorithm, comparing rows a slice at a time; when they differ too much for that to be cheap, rows
  unique on both sides anchor the alignment (patience diff) and the gaps between anchors are aligned the same
  way. Old rows replaced by new ones are paired in order and become cell `set` ops; the excess is inserted or
  deleted.
- by a key column, when one is given (a column index, or a header name looked up in row 0 of the new tab; a name
  that is not there means alignment by content): rows are first aligned by content as above, then between equal
  rows, rows with the same key pair up (row 0, the header, pairs with row 0), so an edited row is `set` ops in
  place and a deleted row never turns into its neighbour. Rows whose key is empty or repeated pair in order, as
  without a key. A keyed row that moved is deleted and inserted again.

Every index refers to the tab as it is when that op applies; rows are not trimmed between ops (`apply.apply` is
the inverse). Cells are compared with Python's `==`, as Snapshot equality does, so 1, 1.0 and True are one value.
Rows are always compared exactly, never by hash alone: hash(-1) == hash(-2).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from operator import itemgetter

from sheetstream.core.a1 import a1
from sheetstream.core.align import Block, align, increasing_subsequence, match_len
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
    Resize,
    Row,
    Rows,
    SetCell,
    Snapshot,
    Tab,
)

Run = tuple[int, int, int, bool]
"""A Block plus whether its rows are known to be equal (so their cells need no comparing)."""

_HEADER = object()  # the alignment token of row 0 in keyed alignment



def diff(old: Snapshot, new: Snapshot, *, key_column: int | str | None = None) -> tuple[Op, ...]:
    """The ops that turn `old` into `new`, aligning rows by `key_column` (index or header name) when given."""
    if isinstance(key_column, int) and key_column < 0:
        raise ValueError(f"key_column must be a column index >= 0 or a header name, got {key_column}")
    if old == new:
        return ()
    old_tabs = {t.id: t for t in old.tabs}
    new_ids = {t.id for t in new.tabs}
    ops: list[Op] = [RemoveTab(t.id) for t in old.tabs if t.id not in new_ids]
    order = [t.id for t in old.tabs if t.id in new_ids]
    for index, tab in enumerate(new.tabs):
        if tab.id not in old_tabs:
            ops.append(AddTab(tab.id, tab.title, index, tab.rows))
            order.insert(index, tab.id)
    for tab in new.tabs:
        if tab.id in old_tabs and old_tabs[tab.id].title != tab.title:
            ops.append(RenameTab(tab.id, old_tabs[tab.id].title, tab.title))
    ops.extend(_tab_moves(order, [t.id for t in new.tabs]))
    for tab in new.tabs:
        if tab.id in old_tabs:
            ops.extend(_tab_ops(old_tabs[tab.id], tab, key_column))
    return tuple(ops)


def extent(rows: Rows) -> tuple[int, int]:
    """A tab's extent: (number of rows, length of the longest row)."""
    return len(rows), max(map(len, rows), default=0)


# --- tabs ----------------------------------------------------------------------------------------------------


def _tab_moves(current: list[int], target: list[int]) -> list[MoveTab]:
    """Moves that reorder `current` into `target`: tabs off a longest in-order subsequence move, one op each."""
    position = {tab_id: p for p, tab_id in enumerate(target)}
    keep = {current[i] for i in increasing_subsequence([position[t] for t in current])}
    work = list(current)
    moves: list[MoveTab] = []
    for p, tab_id in enumerate(target):
        if tab_id in keep:
            continue
        # Place each moved tab right after its final predecessor; processed in final order, every tab ends up
        # directly after the tab that precedes it in `target`.
        work.remove(tab_id)
        index = work.index(target[p - 1]) + 1 if p else 0
        work.insert(index, tab_id)
        moves.append(MoveTab(tab_id, index))
    return moves


def _tab_ops(old: Tab, new: Tab, key_column: int | str | None) -> list[Op]:
    """Row, cell and resize ops of a tab that exists in both snapshots."""
    if old.rows == new.rows:
        return []
    runs = _row_runs(old.rows, new.rows, _key_index(new, key_column))
    ops = _row_ops(new.id, old.rows, new.rows, runs)
    new_extent = extent(new.rows)
    if extent(old.rows) != new_extent:
        ops.append(Resize(new.id, *new_extent))
    return ops


def _key_index(tab: Tab, key_column: int | str | None) -> int | None:
    """The key column's index: given, or the header name's position in row 0 (None: align by content)."""
    if key_column is None:
        return None
    if isinstance(key_column, int):
        return key_column
    header = tab.rows[0] if tab.rows else ()
    return header.index(key_column) if key_column in header else None


# --- from row alignment to ops -------------------------------------------------------------------------------


def _row_ops(tab: int, old: Rows, new: Rows, runs: list[Run]) -> list[Op]:
    """Walk the paired runs top-down: delete and insert the unpaired rows between them, set the changed cells."""
    ops: list[Op] = []
    delta = 0  # where old row i sits now: i + delta
    pi = pj = 0
    for i, j, n, same in [*runs, (len(old), len(new), 0, True)]:
        if i > pi:
            ops.append(DeleteRows(tab, pi + delta, i - pi))
            delta -= i - pi
        if j > pj:
            ops.append(InsertRows(tab, i + delta, new[pj:j]))
            delta += j - pj
        if not same:  # replaced rows, or rows paired by key: short stretches, compared cell by cell
            for t in range(n):
                ops.extend(_cell_ops(tab, i + t + delta, old[i + t], new[j + t]))
        pi, pj = i + n, j + n
    return ops


def _cell_ops(tab: int, row: int, old: Row, new: Row) -> list[Op]:
    """A `set` op for every cell that differs between two versions of a row ("" for a missing cell)."""
    ops: list[Op] = []
    for col in range(max(len(old), len(new))):
        before: Cell = old[col] if col < len(old) else EMPTY
        after: Cell = new[col] if col < len(new) else EMPTY
        if before != after:
            ops.append(SetCell(tab, row, col, a1(row, col), before, after))
    return ops


def _runs(
    blocks: list[Block], len_old: int, len_new: int, same: bool, pairable: Callable[[int, int], bool]
) -> list[Run]:
    """The matched blocks plus, in each gap where rows were replaced, the rows paired in order (if pairable)."""
    runs: list[Run] = []
    pi = pj = 0
    for i, j, n in [*blocks, (len_old, len_new, 0)]:
        for t in range(min(i - pi, j - pj)):
            if pairable(pi + t, pj + t):
                runs.append((pi + t, pj + t, 1, False))
        if n:
            runs.append((i, j, n, same))
        pi, pj = i + n, j + n
    return _merge(runs)


def _merge(runs: list[Run]) -> list[Run]:
    """Join runs that continue each other, so long replaced blocks stay one run."""
    out: list[Run] = []
    for run in runs:
        if out:
            i, j, n, same = out[-1]
            if i + n == run[0] and j + n == run[1] and same == run[3]:
                out[-1] = (i, j, n + run[2], same)
                continue
        out.append(run)
    return out


def _any_pair(i: int, j: int) -> bool:
    return True


# --- row alignment -------------------------------------------------------------------------------------------


def _row_runs(old: Rows, new: Rows, key_col: int | None) -> list[Run]:
    """Pair old rows with new ones: equal rows by sequence alignment, then the rest in order or by key."""
    limit = min(len(old), len(new))
    top = match_len(old, new, 0, 0, limit, True)
    bottom = match_len(old, new, len(old), len(new), limit - top, False)
    mid_old, mid_new = old[top : len(old) - bottom], new[top : len(new) - bottom]
    # Rows are compared as they are (tuples, in C, mostly a slice at a time): numbering them first would cost a
    # hash of every row, more than the whole alignment when few rows changed.
    blocks = align(mid_old, mid_new)
    if key_col is None:
        middle = _runs(blocks, len(mid_old), len(mid_new), True, _any_pair)
    else:
        middle = _keyed_runs(mid_old, mid_new, blocks, key_col, top == 0)
    runs = [(top + i, top + j, n, same) for i, j, n, same in middle]
    if top:
        runs.insert(0, (0, 0, top, True))
    if bottom:
        runs.append((len(old) - bottom, len(new) - bottom, bottom, True))
    return runs


def _keyed_runs(old: Rows, new: Rows, blocks: list[Block], col: int, header: bool) -> list[Run]:
    """The equal blocks, and in each gap between them the rows aligned by key (`header`: row 0 is the header).

    Equal rows have equal keys, so the rows a key column can still pair are those left between equal blocks; a
    keyed row that moved past equal rows is deleted and inserted, as it would be by a key-only alignment.
    """
    runs: list[Run] = []
    pi = pj = 0
    for i, j, n in [*blocks, (len(old), len(new), 0)]:
        if i > pi and j > pj:
            gap_old, gap_new = old[pi:i], new[pj:j]
            old_tokens, new_tokens, pairable = _key_tokens(gap_old, gap_new, col, header and pi == pj == 0)
            inner = _runs(align(old_tokens, new_tokens), len(gap_old), len(gap_new), False, pairable)
            runs.extend((pi + a, pj + b, k, same) for a, b, k, same in inner)
        if n:
            runs.append((i, j, n, True))
        pi, pj = i + n, j + n
    return runs


def _key_tokens(
    old: Rows, new: Rows, col: int, header: bool
) -> tuple[list[Hashable], list[Hashable], Callable[[int, int], bool]]:
    """Alignment tokens for a stretch of keyed rows: the key where it is unique on both sides, else the row.

    Both sides are non-empty; `header` says their row 0 is the header, which always pairs with the other header.
    """
    old_keys, new_keys = _column(old, col), _column(new, col)
    skip = 1 if header else 0
    old_count, new_count = Counter(old_keys[skip:]), Counter(new_keys[skip:])
    unique = (old_count.keys() | new_count.keys()) - _repeated(old_count) - _repeated(new_count) - {EMPTY}
    # A key token (a cell) never equals a row token (a tuple), so the two kinds cannot pair by mistake.
    old_tokens, new_tokens = _tokens(old, old_keys, unique, skip), _tokens(new, new_keys, unique, skip)
    if header:
        old_tokens[0] = new_tokens[0] = _HEADER

    def pairable(i: int, j: int) -> bool:
        # Replaced rows pair up only when neither has a key of its own: a deleted row never becomes another.
        return old_keys[i] not in unique and new_keys[j] not in unique

    return old_tokens, new_tokens, pairable


def _column(rows: Rows, col: int) -> list[Cell]:
    """The cells of one column, "" where a row is too short."""
    if min(map(len, rows), default=0) > col:
        return list(map(itemgetter(col), rows))  # the common case, without a Python-level loop
    return [r[col] if col < len(r) else EMPTY for r in rows]


def _repeated(counts: Counter[Cell]) -> set[Cell]:
    """The keys seen more than once."""
    if len(counts) == counts.total():
        return set()
    return {k for k, c in counts.items() if c > 1}


def _tokens(rows: Rows, keys: list[Cell], unique: set[Cell], skip: int) -> list[Hashable]:
    """Each row's key if it is unique, else the row itself (the first `skip` rows are replaced by the caller)."""
    if unique.issuperset(keys[skip:]):
        return list(keys)
    return [k if k in unique else r for r, k in zip(rows, keys, strict=True)]
