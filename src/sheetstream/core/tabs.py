"""Stable tab ids for sources that have none of their own (CSV, TSV, XLSX and JSON files, HTTP documents).

A tab id must survive edits and renames so that clients can follow a tab. The rule, applied to each new read
against the previous snapshot of the same source:

1. Same title: a tab whose title matches a previous tab's title keeps that tab's id (with repeated titles, the
   first new tab of a title takes the first previous tab of that title, and so on).
2. Same position: a tab left unmatched that sits at the same position as an unmatched previous tab keeps that
   tab's id; this is how a renamed tab keeps its id.
3. Otherwise a tab gets a new id: the largest previous id + 1, then + 2, and so on (0, 1, ... on a first read).

Ids are never reused within one call, so a snapshot built here always has distinct ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from sheetstream.core.model import Rows, Snapshot, Tab


def assign_tab_ids(previous: Snapshot | None, titles_and_rows: Sequence[tuple[str, Rows]]) -> Snapshot:
    """A snapshot of these tabs whose ids follow `previous`: same title keeps the id, else same position, else new."""
    old = previous.tabs if previous is not None else ()
    by_title: dict[str, list[int]] = {}
    for position, tab in enumerate(old):
        by_title.setdefault(tab.title, []).append(position)
    taken: set[int] = set()  # positions in `old` whose id is already given
    ids: list[int | None] = [None] * len(titles_and_rows)
    for index, (title, _rows) in enumerate(titles_and_rows):
        candidates = by_title.get(title)
        if candidates:
            position = candidates.pop(0)
            ids[index] = old[position].id
            taken.add(position)
    for index in range(len(titles_and_rows)):
        if ids[index] is None and index < len(old) and index not in taken:
            ids[index] = old[index].id
            taken.add(index)
    next_id = max((t.id for t in old), default=-1) + 1
    tabs: list[Tab] = []
    for index, (title, rows) in enumerate(titles_and_rows):
        tab_id = ids[index]
        if tab_id is None:
            tab_id, next_id = next_id, next_id + 1
        tabs.append(Tab(tab_id, title, rows))
    return Snapshot(tuple(tabs))
