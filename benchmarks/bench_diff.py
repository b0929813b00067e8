"""Benchmark of the diff engine on a 100,000 x 10 grid with 10 cell edits and 1 row inserted in the middle.

Compared, in the same run, with `daff` (the table diff library of the coopy tools) on the same two grids, checking
that both describe the same change (the same 10 cell edits, old and new values, and the same inserted row), and
with the naive positional cell-by-cell comparison that simple tools do, which reports every cell below the
inserted row as changed. Also times the same diff aligned by a key column (column 0) and the no-change fast path.

Run: `python -m benchmarks.bench_diff` (prints a JSON report).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sheetstream.core.apply import apply
from sheetstream.core.diff import diff
from sheetstream.core.model import EMPTY, Cell, Row, Rows, Snapshot, Tab


def naive_diff(old: Rows, new: Rows) -> list[tuple[int, int, Cell, Cell]]:
    """Positional cell-by-cell comparison: (row, col, old, new) for every cell that differs at the same place."""
    changes: list[tuple[int, int, Cell, Cell]] = []
    for r in range(max(len(old), len(new))):
        a: Row = old[r] if r < len(old) else ()
        b: Row = new[r] if r < len(new) else ()
        for c in range(max(len(a), len(b))):
            before = a[c] if c < len(a) else EMPTY
            after = b[c] if c < len(b) else EMPTY
            if before != after:
                changes.append((r, c, before, after))
    return changes


def daff_diff(old: Rows, new: Rows) -> Any:
    """daff's highlighter diff of two grids (a header row of column names put on top of each, as daff expects)."""
    import daff

    header = [f"c{c}" for c in range(max(len(r) for r in old))]
    local = daff.PythonTableView([header, *(list(r) for r in old)])
    remote = daff.PythonTableView([header, *(list(r) for r in new)])
    return daff.Coopy.diff(local, remote)


def daff_change(table: Any) -> tuple[set[tuple[str, str]], list[tuple[str, ...]]]:
    """(old, new) of every modified cell and every inserted row, read from a daff highlighter table."""
    edits: set[tuple[str, str]] = set()
    inserted: list[tuple[str, ...]] = []
    for y in range(table.height):
        action = str(table.getCell(0, y))
        cells = [table.getCell(x, y) for x in range(1, table.width)]
        if action == "+++":
            inserted.append(tuple(str(c) for c in cells))
        elif "->" in action:
            edits.update(tuple(str(c).split("->", 1)) for c in cells if isinstance(c, str) and "->" in c)  # type: ignore[misc]
    return edits, inserted


def our_change(ops: tuple[Any, ...]) -> tuple[set[tuple[str, str]], list[tuple[str, ...]]]:
    """The same two things, read from our ops."""
    edits = {(str(op.old), str(op.new)) for op in ops if op.op == "set"}
    inserted = [tuple(str(c) for c in row) for op in ops if op.op == "insert_rows" for row in op.rows]
    return edits, inserted


def _timed(fn: Callable[[], object], repeats: int) -> tuple[dict[str, float], object]:
    """Median, min and max wall time of `repeats` calls, and the last result."""
    times: list[float] = []
    result: object = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}, result


def run(
    rows: int = 100_000, cols: int = 10, edits: int = 10, repeats: int = 5, seed: int = 1, daff_repeats: int = 1
) -> dict[str, Any]:
    """Build the grids, time `diff` against daff, the naive comparison and the no-change path; return the report."""
    rng = random.Random(seed)
    grid = [tuple(f"r{r}c{c}" for c in range(cols)) for r in range(rows)]
    changed = list(grid)
    for r in rng.sample(range(rows), edits):
        row = list(changed[r])
        row[rng.randrange(1, cols)] = f"edited {r}"  # not column 0, the key column of the keyed run
        changed[r] = tuple(row)
    changed.insert(rows // 2, tuple(f"inserted c{c}" for c in range(cols)))
    old = Snapshot((Tab(0, "Sheet1", tuple(grid)),))
    new = Snapshot((Tab(0, "Sheet1", tuple(changed)),))
    # An equal snapshot made of other objects, as a fresh read of an unchanged source is.
    same = Snapshot((Tab(0, "Sheet1", tuple(tuple(str(c) for c in r) for r in grid)),))

    diff_times, ops = _timed(lambda: diff(old, new), repeats)
    keyed_times, keyed_ops = _timed(lambda: diff(old, new, key_column=0), repeats)
    naive_times, changes = _timed(lambda: naive_diff(old.tabs[0].rows, new.tabs[0].rows), repeats)
    same_times, same_ops = _timed(lambda: diff(old, same), repeats)
    daff_times, daff_table = _timed(lambda: daff_diff(old.tabs[0].rows, new.tabs[0].rows), daff_repeats)
    assert isinstance(ops, tuple) and isinstance(keyed_ops, tuple)
    assert isinstance(changes, list) and isinstance(same_ops, tuple)
    ours, theirs = our_change(ops), daff_change(daff_table)
    return {
        "grid": {"rows": rows, "cols": cols, "cell_edits": edits, "inserted_rows": 1, "repeats": repeats},
        "diff": {**diff_times, "ops": len(ops), "op_kinds": dict(Counter(op.op for op in ops))},
        "daff": {**daff_times, "cell_edits": len(theirs[0]), "inserted_rows": len(theirs[1])},
        "daff_over_diff_time": daff_times["median_s"] / diff_times["median_s"],
        "same_change_as_daff": ours == theirs,
        "diff_keyed": {**keyed_times, "ops": len(keyed_ops)},
        "naive": {**naive_times, "ops": len(changes)},
        "naive_over_diff_time": naive_times["median_s"] / diff_times["median_s"],
        "naive_over_diff_ops": len(changes) / len(ops),
        "no_change": {**same_times, "ops": len(same_ops)},
        "diff_is_exact": apply(old, ops) == new and apply(old, keyed_ops) == new,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
