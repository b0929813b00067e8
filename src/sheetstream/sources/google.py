"""The `google_sheets` source: a Google spreadsheet's values, read with ONE ``values:batchGet`` per read.

Config: ``{"spreadsheet_id": "1AbC…", "ranges"?: ["Sheet1", "Prices!A1:D", 123], "value_render"?: "FORMATTED",
"key_column"?, "credentials"?, "base_url"?, "timeout_s"?: 30, "drive_checks"?: true, "min_interval_s"?: 1,
"metadata_refresh_s"?: 600}`` (credentials: see `google_auth.py`; every field in docs/google.md).

A read: (1) a Drive ``files.get?fields=version`` check: an unchanged version answers Fetched(None) with no Sheets
request at all; (2) the tab list from ``spreadsheets.get?fields=sheets.properties`` when it is not cached or is
older than `metadata_refresh_s` (give or take a quarter, so that many sources do not all refresh at once); (3) one ``values:batchGet`` for every watched tab. Tabs are keyed by sheetId, so a
renamed tab keeps its id (the diff reports `rename_tab`). A tab renamed or deleted between (2) and (3) makes the
batch fail with 400: the tab list is reloaded and the batch sent once more.

``ranges`` items are tab titles, ``Title!A1:D`` ranges (rows then start at the range's first row) or sheetIds;
a title is resolved to its sheetId once and followed by id from then on. Without ``ranges``, every grid tab.
With ``"credentials": "none"`` the spreadsheet must be link-shared; each tab (``ranges`` as sheetIds, default
``[0]``) is read through the CSV export: formatted text only, no titles (tabs are called ``gid:N``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from sheetstream.core.model import Snapshot, Tab, normalize_rows
from sheetstream.errors import ConfigError
from sheetstream.sources.base import Fetched, Source
from sheetstream.sources.google_api import DRIVE_URL, EXPORT_URL, SHEETS_URL, GoogleApi, GoogleApiError
from sheetstream.sources.google_auth import GoogleAuth, credentials_mode
from sheetstream.sources.google_drive import Channel, file_version, list_changes, start_page_token
from sheetstream.sources.google_drive import stop_channel as drive_stop_channel
from sheetstream.sources.google_drive import watch_file as drive_watch_file
from sheetstream.sources.parse import parse

log = structlog.get_logger("sheetstream.google")

CONFIG_KEYS = frozenset(
    {
        "spreadsheet_id", "ranges", "value_render", "key_column", "credentials", "base_url", "sheets_url",
        "drive_url", "export_url", "timeout_s", "drive_checks", "min_interval_s", "metadata_refresh_s",
        "poll_interval_s",
    }
)
RENDER = {
    "FORMATTED": "FORMATTED_VALUE",
    "UNFORMATTED": "UNFORMATTED_VALUE",
    "FORMULA": "FORMULA",
    "FORMATTED_VALUE": "FORMATTED_VALUE",
    "UNFORMATTED_VALUE": "UNFORMATTED_VALUE",
}
_URL_KEYS = ("base_url", "sheets_url", "drive_url", "export_url")


def _positive(config: dict[str, Any], key: str) -> None:
    value = config.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
        raise ConfigError(f'google_sheets source: "{key}" must be a number > 0, got {value!r}')


def validate_google_config(config: dict[str, Any]) -> None:
    """Raise ConfigError unless `config` is a valid google_sheets config."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(
            f"google_sheets source: unknown config field(s) {unknown}; known: {', '.join(sorted(CONFIG_KEYS))}"
        )
    spreadsheet_id = config.get("spreadsheet_id")
    if not isinstance(spreadsheet_id, str) or not spreadsheet_id.strip() or "/" in spreadsheet_id:
        raise ConfigError(
            'google_sheets source: "spreadsheet_id" is required: the id in the sheet\'s URL, '
            "https://docs.google.com/spreadsheets/d/<spreadsheet_id>/edit"
        )
    mode = credentials_mode(config.get("credentials"))
    ranges = config.get("ranges")
    if ranges is not None:
        if not isinstance(ranges, list) or not ranges or not all(
            isinstance(r, int | str) and not isinstance(r, bool) and r != "" for r in ranges
        ):
            raise ConfigError('google_sheets source: "ranges" must be a non-empty list of tab titles, A1 ranges or sheetIds')
        if mode == "none" and not all(isinstance(r, int) for r in ranges):
            raise ConfigError(
                'google_sheets source: with "credentials": "none", "ranges" lists sheetIds (the gid in the URL)'
            )
    render = config.get("value_render", "FORMATTED")
    if render not in RENDER:
        raise ConfigError(f'google_sheets source: "value_render" must be FORMATTED, UNFORMATTED or FORMULA, got {render!r}')
    for key in _URL_KEYS:
        url = config.get(key)
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise ConfigError(f'google_sheets source: "{key}" must be an http(s) URL, got {url!r}')
    if not isinstance(config.get("drive_checks", True), bool):
        raise ConfigError('google_sheets source: "drive_checks" must be true or false')
    for key in ("timeout_s", "min_interval_s", "metadata_refresh_s"):
        _positive(config, key)


def quote_title(title: str) -> str:
    """A tab title as an A1 range prefix: always quoted, quotes doubled."""
    return "'" + title.replace("'", "''") + "'"


def split_range(text: str) -> tuple[str, str]:
    """("Tab title", "A1:C") from "Tab title!A1:C" or "'It''s'!A1"; ("title", "") for a bare title."""
    if text.startswith("'"):
        end = 1
        while end < len(text):
            if text[end] == "'":
                if text[end + 1 : end + 2] == "'":
                    end += 2
                    continue
                break
            end += 1
        title = text[1:end].replace("''", "'")
        rest = text[end + 1 :]
        return title, rest[1:] if rest.startswith("!") else ""
    title, _, cells = text.partition("!")
    return title, cells


@dataclass(frozen=True)
class TabInfo:
    """A tab as `spreadsheets.get` describes it."""

    sheet_id: int
    title: str
    index: int


class GoogleSheetsSource(Source):
    """A Google spreadsheet (every grid tab, or the configured ranges)."""

    kind = "google_sheets"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Raise ConfigError unless `config` is a valid config for this kind."""
        validate_google_config(config)

    def __init__(
        self,
        config: dict[str, Any],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        validate_google_config(config)
        super().__init__(config)
        self.spreadsheet_id: str = config["spreadsheet_id"].strip()
        base = config.get("base_url")
        self.auth = GoogleAuth(config.get("credentials"), token_uri=f"{base.rstrip('/')}/token" if base else None)
        self.api = GoogleApi(
            self.auth,
            sheets_url=config.get("sheets_url") or base or SHEETS_URL,
            drive_url=config.get("drive_url") or base or DRIVE_URL,
            export_url=config.get("export_url") or base or EXPORT_URL,
            timeout_s=float(config.get("timeout_s", 30.0)),
            transport=transport,
        )
        self.render = RENDER[config.get("value_render", "FORMATTED")]
        self.drive_checks = bool(config.get("drive_checks", True)) and self.auth.can_use_drive
        self.min_interval_s = float(config.get("min_interval_s", 1.0))
        self.metadata_refresh_s = float(config.get("metadata_refresh_s", 600.0))
        self._clock = clock
        self._ranges: list[int | str] = list(config.get("ranges") or [])
        self._resolved: dict[int, int] = {}  # position in `ranges` -> sheetId, once a title was found
        self._tabs: list[TabInfo] | None = None
        self._tabs_until = 0.0
        self._version: int | None = None

    # What the scheduler needs -----------------------------------------------------------------------------

    @property
    def quota_key(self) -> tuple[str, str]:
        """(identity, project) whose Sheets read quota this source spends."""
        return self.auth.identity, self.auth.project

    @property
    def resource_id(self) -> str:
        """The spreadsheet id: how Drive hints name this source."""
        return self.spreadsheet_id

    def planned_cost(self) -> int:
        """Sheets requests the next read makes if the spreadsheet changed (the Drive check is not counted)."""
        if not self.auth.uses_api:
            return len(self._gids())
        return 1 if self._tabs is not None and not self._tabs_stale() else 2

    @property
    def spent(self) -> tuple[int, int]:
        """(Sheets requests, Drive requests) made so far."""
        return self.api.sheets_requests, self.api.drive_requests

    # Reading ---------------------------------------------------------------------------------------------

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        """Read the watched tabs; Fetched(None) when Drive says the file has not changed since the last read."""
        if not self.auth.uses_api:
            return Fetched(await self._read_exports(), None)
        version = await self._check_version() if self.drive_checks else None
        if version is not None and version == self._version and previous is not None and self._tabs is not None:
            return Fetched(None, str(version))
        if self._tabs is None or self._tabs_stale():
            await self._load_tabs()
        try:
            snapshot = await self._read_values()
        except GoogleApiError as exc:
            if not exc.bad_range:
                raise
            log.info("tab list changed under a read; reloading it", spreadsheet=self.spreadsheet_id)
            await self._load_tabs()
            snapshot = await self._read_values()
        self._version = version
        return Fetched(snapshot, None if version is None else str(version))

    def _tabs_stale(self) -> bool:
        return self._clock() >= self._tabs_until

    async def _check_version(self) -> int | None:
        try:
            return await file_version(self.api, self.spreadsheet_id)
        except GoogleApiError as exc:
            if exc.status in (400, 401, 403, 404):
                # No Drive access (API not enabled, scope, a file Drive hides): read values every time instead.
                log.warning("Drive version checks off for this source", spreadsheet=self.spreadsheet_id, error=str(exc))
                self.drive_checks = False
            return None

    async def _load_tabs(self) -> None:
        body = await self.api.sheets(
            f"spreadsheets/{quote(self.spreadsheet_id, safe='')}",
            [("fields", "sheets.properties(sheetId,title,index,sheetType)")],
            f"listing the tabs of spreadsheet {self.spreadsheet_id}",
        )
        tabs = []
        for sheet in body.get("sheets", []):
            props = sheet.get("properties", {})
            if props.get("sheetType", "GRID") == "GRID":  # charts and data-source tabs have no values
                tabs.append(TabInfo(int(props.get("sheetId", 0)), str(props.get("title", "")), int(props.get("index", 0))))
        tabs.sort(key=lambda t: t.index)
        self._tabs = tabs
        self._tabs_until = self._clock() + self.metadata_refresh_s * random.uniform(0.75, 1.25)

    def _watched(self) -> list[tuple[TabInfo, str]]:
        """(tab, cells) for each watched tab that exists now, in tab order; cells "" means the whole tab."""
        tabs = self._tabs or []
        if not self._ranges:
            return [(t, "") for t in tabs]
        by_id = {t.sheet_id: t for t in tabs}
        by_title = {t.title.casefold(): t for t in tabs}
        chosen: dict[int, str] = {}
        for position, item in enumerate(self._ranges):
            if isinstance(item, int):
                tab, cells = by_id.get(item), ""
            elif position in self._resolved:
                tab, cells = by_id.get(self._resolved[position]), split_range(item)[1]
            else:
                title, cells = split_range(item)
                tab = by_title.get(title.casefold())
                if tab is not None:
                    self._resolved[position] = tab.sheet_id
            if tab is None:
                log.warning("watched tab not found", spreadsheet=self.spreadsheet_id, range=item)
            elif tab.sheet_id not in chosen:
                chosen[tab.sheet_id] = cells
        return [(t, chosen[t.sheet_id]) for t in tabs if t.sheet_id in chosen]

    async def _read_values(self) -> Snapshot:
        watched = self._watched()
        if not watched:
            return Snapshot()
        ranges = [quote_title(t.title) + (f"!{cells}" if cells else "") for t, cells in watched]
        body = await self.api.sheets(
            f"spreadsheets/{quote(self.spreadsheet_id, safe='')}/values:batchGet",
            [*(("ranges", r) for r in ranges), ("valueRenderOption", self.render), ("majorDimension", "ROWS")],
            f"reading spreadsheet {self.spreadsheet_id}",
        )
        value_ranges = body.get("valueRanges", [])
        if len(value_ranges) != len(watched):
            raise GoogleApiError(
                f"reading spreadsheet {self.spreadsheet_id}: asked for {len(watched)} ranges, got {len(value_ranges)}",
                status=None,
            )
        return Snapshot(
            tuple(
                Tab(tab.sheet_id, tab.title, normalize_rows(vr.get("values", [])))
                for (tab, _), vr in zip(watched, value_ranges, strict=True)
            )
        )

    def _gids(self) -> list[int]:
        return [int(r) for r in self._ranges] or [0]

    async def _read_exports(self) -> Snapshot:
        tabs = []
        for gid in self._gids():
            what = f"exporting tab gid={gid} of spreadsheet {self.spreadsheet_id} as CSV"
            body = await self.api.export_csv(self.spreadsheet_id, gid, what)
            parsed = parse(body, "csv", origin=f"CSV export of {self.spreadsheet_id} gid={gid}")
            tabs.append(Tab(gid, f"gid:{gid}", normalize_rows(parsed[0].rows) if parsed else ()))
        return Snapshot(tuple(tabs))

    # Hints (used by runtime.hints) --------------------------------------------------------------------------

    @property
    def feed_key(self) -> str | None:
        """The identity whose Drive change log covers this spreadsheet; None without Drive access."""
        return self.auth.identity if self.drive_checks else None

    async def start_changes(self) -> str:
        """A Drive change-log page token from now on."""
        return await start_page_token(self.api)

    async def changes_since(self, page_token: str) -> tuple[set[str], str]:
        """Spreadsheet ids changed since `page_token`, and the next token."""
        return await list_changes(self.api, page_token)

    async def open_channel(self, address: str, channel_id: str, token: str, expires_at: float) -> Channel:
        """A Drive push channel on this spreadsheet."""
        return await drive_watch_file(
            self.api, self.spreadsheet_id, address=address, channel_id=channel_id, token=token, expires_at=expires_at
        )

    async def close_channel(self, channel: Channel) -> None:
        """Stop a push channel opened by `open_channel`."""
        await drive_stop_channel(self.api, channel)

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.api.aclose()
