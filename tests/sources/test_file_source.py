"""The file source against real files: every format, unchanged files, half-written files, and file-system hints."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
import time
from pathlib import Path

import openpyxl
import pytest

from sheetstream.core.model import Snapshot
from sheetstream.errors import ConfigError, SourceError
from sheetstream.sources.base import Fetched
from sheetstream.sources.file import FileSource


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def table(snapshot: Snapshot | None) -> list[tuple[int, str, list[list[object]]]]:
    assert snapshot is not None
    return [(t.id, t.title, [list(r) for r in t.rows]) for t in snapshot.tabs]


async def fetch_changed(
    source: FileSource, previous: Snapshot | None = None, deadline_s: float = 5.0
) -> Snapshot:
    """Fetch until a snapshot comes back (a just-written file is first left to settle)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            result = await source.fetch(previous)
        except SourceError:
            if time.monotonic() > end:
                raise
            continue
        if result.snapshot is not None:
            return result.snapshot
        assert time.monotonic() < end, "the file never read as changed"


async def fetch_settled(
    source: FileSource, previous: Snapshot | None, deadline_s: float = 5.0
) -> Snapshot | None:
    """Fetch until the file reads without error; None if it is unchanged since the last successful fetch."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return (await source.fetch(previous)).snapshot
        except SourceError:
            if time.monotonic() > end:
                raise


@pytest.fixture
async def closing():
    sources: list[FileSource] = []
    yield sources.append
    for s in sources:
        await s.aclose()


async def test_csv_file(tmp_path: Path, closing) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("item,price\ntea,2\n")
    source = FileSource({"path": str(path)})
    closing(source)
    result = await source.fetch(None)
    assert table(result.snapshot) == [(0, "prices", [["item", "price"], ["tea", "2"]])]
    assert result.revision


async def test_tsv_file_and_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("a\tb\n")
    source = FileSource({"path": str(path), "format": "tsv", "key_column": "a"})
    assert table((await source.fetch(None)).snapshot) == [(0, "data", [["a", "b"]])]
    assert source.config["key_column"] == "a"  # passed through for the diff, not used by the source


async def test_xlsx_file(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(xlsx_bytes({"One": [["x", 1]], "Two": [[None, 2.5]]}))
    snapshot = (await FileSource({"path": str(path)}).fetch(None)).snapshot
    assert table(snapshot) == [(0, "One", [["x", 1]]), (1, "Two", [["", 2.5]])]


async def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "people.json"
    path.write_text(json.dumps([{"name": "Ann", "tags": ["a", "b"]}, {"name": "Bo", "age": 3}]))
    snapshot = (await FileSource({"path": str(path)}).fetch(None)).snapshot
    assert table(snapshot) == [(0, "people", [["name", "tags", "age"], ["Ann", '["a","b"]'], ["Bo", "", 3]])]


async def test_unchanged_file_is_fetched_none_and_a_change_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("1\n")
    source = FileSource({"path": str(path), "settle_s": 0})
    first = await source.fetch(None)
    assert first.snapshot is not None
    assert await source.fetch(first.snapshot) == Fetched(None, first.revision)
    write_atomically(path, b"2\n")
    assert table(await fetch_changed(source, first.snapshot)) == [(0, "a", [["2"]])]


async def test_renaming_an_xlsx_tab_keeps_its_id(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(xlsx_bytes({"Jan": [["a"]], "Feb": [["b"]]}))
    source = FileSource({"path": str(path), "settle_s": 0})
    first = await fetch_changed(source)
    write_atomically(path, xlsx_bytes({"January": [["a"]], "Feb": [["b"]], "Mar": [["c"]]}))
    second = await fetch_changed(source, first)
    assert [(t.id, t.title) for t in second.tabs] == [(0, "January"), (1, "Feb"), (2, "Mar")]


async def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(SourceError) as info:
        await FileSource({"path": str(path)}).fetch(None)
    assert str(info.value) == f"file {path}: cannot read: No such file or directory"
    assert info.value.retryable


async def test_unreadable_path(tmp_path: Path) -> None:
    path = tmp_path / "dir.csv"
    path.mkdir()
    with pytest.raises(SourceError, match="cannot read: Is a directory"):
        await FileSource({"path": str(path), "settle_s": 0}).fetch(None)


@pytest.mark.parametrize(
    ("name", "final"),
    [("t.xlsx", xlsx_bytes({"S": [["v", 1]] * 200})), ("t.json", json.dumps([["v", 1]] * 200).encode())],
)
async def test_truncated_file_is_an_error_not_a_snapshot(tmp_path: Path, name: str, final: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(final[: len(final) // 2])
    source = FileSource({"path": str(path), "settle_s": 0}, attempts=3, retry_delay_s=0.01)
    with pytest.raises(SourceError, match=r"(XLSX|JSON).*\(after 3 attempts\)") as info:
        await source.fetch(None)
    assert info.value.retryable
    write_atomically(path, final)
    assert len((await fetch_changed(source)).tabs[0].rows) == 200


async def test_file_changing_during_every_read_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "busy.csv"
    path.write_text("a\n")
    source = FileSource({"path": str(path), "settle_s": 60}, attempts=2, retry_delay_s=0.01)
    with pytest.raises(SourceError, match=r"still being written .*\(after 2 attempts\)"):
        await source.fetch(None)


def chunked_writer(path: Path, data: bytes, done: threading.Event) -> threading.Thread:
    """Rewrite `path` in place, a small chunk at a time, as a slow exporter would."""

    def run() -> None:
        with open(path, "wb") as f:
            for i in range(0, len(data), 64):
                f.write(data[i : i + 64])
                f.flush()
                done.wait(0.001)  # pace the writer (done is never set before the end)
        done.set()

    return threading.Thread(target=run, daemon=True)


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
async def test_file_written_while_fetching_gives_old_or_final_content(tmp_path: Path, fmt: str) -> None:
    rows = [[f"r{i}", str(i)] for i in range(300)]
    encode = {
        "csv": lambda rs: "".join(",".join(r) + "\n" for r in rs).encode(),
        "json": lambda rs: json.dumps(rs).encode(),
        "xlsx": lambda rs: xlsx_bytes({"data": rs}),
    }[fmt]
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(encode(rows[:3]))
    # A generous settle window: the writer thread pauses ~1 ms between chunks, even on a loaded machine.
    source = FileSource({"path": str(path), "settle_s": 0.2}, retry_delay_s=0.01)
    old = await fetch_changed(source)
    done = threading.Event()
    writer = chunked_writer(path, encode(rows), done)
    final = Snapshot(tuple(t.__class__(t.id, t.title, rows) for t in old.tabs))
    seen = []
    writer.start()
    while not done.is_set():
        try:
            result = await source.fetch(old)
        except SourceError:
            continue
        if result.snapshot is not None:
            seen.append(result.snapshot)
    writer.join()
    last = await fetch_settled(source, old)  # None: the last snapshot seen is already the current content
    if last is not None:
        seen.append(last)
    assert all(s in (old, final) for s in seen), [table(s)[0][2][-1:] for s in seen if s not in (old, final)]
    assert seen and seen[-1] == final


def test_format_from_extension_or_config_error(tmp_path: Path) -> None:
    assert FileSource({"path": "x.CSV"}).format == "csv"
    assert FileSource({"path": "x.json"}).format == "json"
    with pytest.raises(ConfigError, match=r"cannot tell the format of 'x\.txt'"):
        FileSource({"path": "x.txt"})
    with pytest.raises(ConfigError, match="format must be one of csv, tsv, xlsx, json"):
        FileSource({"path": "x.csv", "format": "ods"})


async def wait_for_hint(hinted: asyncio.Event, poke, deadline_s: float = 10.0) -> None:
    """Poke the file until the watcher reports it (the watcher may not be running yet at the first poke)."""
    end = time.monotonic() + deadline_s
    while not hinted.is_set():
        assert time.monotonic() < end, "no hint before the deadline"
        poke()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hinted.wait(), 0.2)
    hinted.clear()


async def test_hints_fire_on_write_and_on_atomic_replace_and_stop_on_aclose(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_text("0\n")
    source = FileSource({"path": str(path)})
    hinted = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in source.hints():
            count += 1
            hinted.set()

    task = asyncio.create_task(consume())
    try:
        await wait_for_hint(hinted, lambda: path.write_text(f"{time.monotonic()}\n"))
        await wait_for_hint(hinted, lambda: write_atomically(path, b"replaced\n"))
        await wait_for_hint(hinted, lambda: (path.unlink(missing_ok=True), path.write_text("again\n")))
    finally:
        await source.aclose()
        await asyncio.wait_for(task, 5)
    assert count >= 3
    assert task.done() and task.exception() is None


async def test_hints_after_aclose_end_at_once(tmp_path: Path) -> None:
    source = FileSource({"path": str(tmp_path / "missing-dir" / "x.csv")})
    await source.aclose()
    assert [h async for h in source.hints()] == []
