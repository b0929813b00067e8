"""The `file` source: a local CSV, TSV, XLSX or JSON file, re-read when it changes.

Config: ``{"path": "/data/prices.xlsx", "format"?: "csv" | "tsv" | "xlsx" | "json", "key_column"?,
"settle_s"?: 0.05}``. The format comes from the extension unless given.

A file caught mid-write must never produce a bogus change, so a read only counts when
- the file's (inode, mtime, size) is the same before and after the read,
- its mtime is at least `settle_s` old (a CSV being appended parses fine while partial), and
- its content parses (a truncated XLSX zip or JSON document does not).
Otherwise the read is retried a few times after a short delay, then SourceError (retryable) is raised and the
monitor tries again later. A writer that pauses longer than `settle_s` between writes can still be read half-way;
writers should write a temporary file and rename it over the target (atomic replace), which is always safe.

Hints come from watching the parent directory (not recursively) for events on the file's name, so atomic replace
and delete-then-recreate are seen as well as in-place writes; one watch serves every file source of the process
(`sources.file_watch`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sheetstream.core.model import Snapshot
from sheetstream.errors import ConfigError, SourceError
from sheetstream.sources.base import Fetched, Source
from sheetstream.sources.file_watch import file_watcher
from sheetstream.sources.parse import FORMATS, Format, build_snapshot, parse

CONFIG_KEYS = frozenset({"path", "format", "key_column", "settle_s", "poll_interval_s"})
DEFAULT_SETTLE_S = 0.05
RETRY_DELAY_S = 0.075
ATTEMPTS = 5
MAX_SETTLE_WAIT_S = 0.25  # a fetch waits this long at most per attempt; the monitor retries a busy file later
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".json": "json",
}

_Signature = tuple[int, int, int, int]  # (st_dev, st_ino, st_mtime_ns, st_size)


class _Unsettled(Exception):
    """This read cannot be trusted yet; retry after `wait_s`."""

    def __init__(self, message: str, wait_s: float = RETRY_DELAY_S) -> None:
        super().__init__(message)
        self.wait_s = wait_s


def file_format(config: dict[str, Any]) -> Format:
    """The format of a file source: config["format"], else from the path's extension; ConfigError if neither."""
    fmt = config.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ConfigError(f"file source: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt  # type: ignore[no-any-return]
    suffix = Path(config["path"]).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise ConfigError(
            f"file source: cannot tell the format of {config['path']!r} from its extension;"
            f' set "format" to one of {", ".join(FORMATS)}'
        )
    return _EXTENSIONS[suffix]


def validate_file_config(config: dict[str, Any]) -> None:
    """Raise ConfigError unless `config` is a valid file source config."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(
            f"file source: unknown config field(s) {unknown}; known: {', '.join(sorted(CONFIG_KEYS))}"
        )
    path = config.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError('file source: config field "path" is required (the file to watch)')
    file_format(config)
    settle = config.get("settle_s", DEFAULT_SETTLE_S)
    if isinstance(settle, bool) or not isinstance(settle, int | float) or settle < 0:
        raise ConfigError(f'file source: "settle_s" must be a number >= 0, got {settle!r}')


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class FileSource(Source):
    """A local file read whole on every change; unchanged (inode, mtime, size) answers Fetched(None)."""

    kind = "file"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Raise ConfigError unless `config` is a valid file source config."""
        validate_file_config(config)

    def __init__(
        self, config: dict[str, Any], *, attempts: int = ATTEMPTS, retry_delay_s: float = RETRY_DELAY_S
    ):
        validate_file_config(config)
        super().__init__(config)
        self.path = Path(config["path"]).expanduser().absolute()
        self.format: Format = file_format(config)
        self.settle_s = float(config.get("settle_s", DEFAULT_SETTLE_S))
        self._attempts = max(1, attempts)
        self._retry_delay_s = retry_delay_s
        self._last: _Signature | None = None
        self._stop = asyncio.Event()
        self._origin = f"file {self.path}"

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        """Read and parse the file, or Fetched(None) if it is unchanged since the last successful fetch."""
        problem = ""
        for attempt in range(self._attempts):
            try:
                result = await asyncio.to_thread(self._read_once, previous)
            except _Unsettled as exc:
                problem = str(exc)
                if attempt + 1 < self._attempts:
                    await asyncio.sleep(exc.wait_s)
                continue
            return result
        raise SourceError(f"{problem} (after {self._attempts} attempts)", retryable=True)

    def _stat(self) -> os.stat_result:
        try:
            return os.stat(self.path)
        except OSError as exc:
            raise SourceError(f"{self._origin}: cannot read: {exc.strerror or exc}") from exc

    def _read_once(self, previous: Snapshot | None) -> Fetched:
        before = self._stat()
        sig = _signature(before)
        if sig == self._last:
            return Fetched(None, self._revision(sig))
        age_s = (time.time_ns() - before.st_mtime_ns) / 1e9
        # A negative age beyond the window is clock skew (e.g. a copied mtime), not a write in progress.
        if -self.settle_s < age_s < self.settle_s:
            wait = min(max(self.settle_s - age_s, 0.01), MAX_SETTLE_WAIT_S)
            raise _Unsettled(
                f"{self._origin}: still being written (modified {age_s * 1000:.0f} ms ago)", wait
            )
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{self._origin}: cannot read: {exc.strerror or exc}") from exc
        try:
            after = os.stat(self.path)
        except OSError as exc:  # deleted or replaced while we read it: the next attempt tells which
            raise _Unsettled(f"{self._origin}: changed while being read ({exc.strerror})") from exc
        if _signature(after) != sig or len(data) != before.st_size:
            raise _Unsettled(f"{self._origin}: changed while being read")
        try:
            tabs = parse(data, self.format, origin=self._origin, default_title=self.path.stem or "Sheet1")
        except SourceError as exc:  # perhaps a half-written file: retry before believing it is garbage
            raise _Unsettled(str(exc)) from exc
        snapshot = build_snapshot(previous, tabs)
        self._last = sig
        return Fetched(snapshot, self._revision(sig))

    @staticmethod
    def _revision(sig: _Signature) -> str:
        return f"{sig[2]}-{sig[3]}"

    async def hints(self) -> AsyncIterator[None]:
        """Yield after each batch of file-system events on the file's name (write, replace, delete, create)."""
        async for _ in file_watcher().hints(self.path, self._stop):
            yield None

    async def aclose(self) -> None:
        """Stop every `hints()` iterator of this source."""
        self._stop.set()
