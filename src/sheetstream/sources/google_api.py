"""Calling Google's REST APIs for a `google_sheets` source: one httpx client, credentials, counted requests, and
Google's errors translated into `GoogleApiError` (a SourceError carrying the retry information).

Base URLs are configurable, which is how the local emulator is used: it serves Sheets, Drive and the CSV export on
one port under Google's own paths. Every request is counted (`sheets_requests`, `drive_requests`) so the scheduler
can charge exactly what was spent against the quota buckets, whatever the outcome of the call.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sheetstream.errors import SourceError
from sheetstream.sources.google_auth import GoogleAuth

SHEETS_URL = "https://sheets.googleapis.com"
DRIVE_URL = "https://www.googleapis.com"
EXPORT_URL = "https://docs.google.com"
_EXCERPT_CHARS = 300


class GoogleApiError(SourceError):
    """A failed call to Google: HTTP status (None for timeouts and network errors), reason, and when to retry."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        reason: str = "",
        retry_after_s: float | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s

    @property
    def rate_limited(self) -> bool:
        """A 429: the quota (ours or someone else's on the same project) is spent."""
        return self.status == 429

    @property
    def bad_range(self) -> bool:
        """A 400 about a range: a tab was renamed or deleted since its title was learned."""
        return self.status == 400 and "range" in str(self).lower()


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _google_message(response: httpx.Response) -> tuple[str, str]:
    """(message, reason) from Google's error body, in either of its shapes; the raw text otherwise."""
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:_EXCERPT_CHARS], ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(body)[:_EXCERPT_CHARS], ""
    message = str(error.get("message", ""))
    reason = str(error.get("status", ""))
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            reason = str(detail["reason"])
    for item in error.get("errors") or []:
        if isinstance(item, dict) and item.get("reason"):
            reason = str(item["reason"])
    return message, reason


def error_from_response(response: httpx.Response, what: str, identity: str) -> GoogleApiError:
    """The GoogleApiError for a non-2xx answer to `what` (e.g. "reading spreadsheet X"), with advice."""
    status = response.status_code
    message, reason = _google_message(response)
    wait = retry_after(response.headers.get("retry-after"))
    said = f": {message}" if message else ""
    if status == 429:
        text = f"Google's quota is spent while {what} ({reason or 'RESOURCE_EXHAUSTED'}); backing off{said}"
    elif status >= 500:
        text = f"Google failed while {what} ({status}); retrying{said}"
    elif status == 401:
        text = f"Google rejected the credentials of {identity} while {what}{said}"
    elif status == 403:
        text = (
            f"{identity} may not read this while {what}: share the spreadsheet with {identity} (Viewer is enough), "
            f"or enable the Sheets/Drive API for the project{said}"
        )
    elif status == 404:
        text = f"not found while {what}: check spreadsheet_id, and that it is shared with {identity}{said}"
    else:
        text = f"Google answered {status} while {what}{said}"
    return GoogleApiError(text, status=status, reason=reason, retry_after_s=wait)


class GoogleApi:
    """An httpx client for Sheets, Drive and the CSV export, authenticated by `auth`, counting its requests."""

    def __init__(
        self,
        auth: GoogleAuth,
        *,
        sheets_url: str = SHEETS_URL,
        drive_url: str = DRIVE_URL,
        export_url: str = EXPORT_URL,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.auth = auth
        self.sheets_url = sheets_url.rstrip("/")
        self.drive_url = drive_url.rstrip("/")
        self.export_url = export_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s), follow_redirects=True)
        self.sheets_requests = 0
        self.drive_requests = 0

    async def sheets(self, path: str, params: list[tuple[str, str]], what: str) -> Any:
        """GET a Sheets v4 path (counted against the Sheets read quota); the decoded JSON."""
        response = await self._send("GET", f"{self.sheets_url}/v4/{path}", params, None, what, "sheets")
        return response.json()

    async def drive(self, method: str, path: str, what: str, *, params: Any = None, body: Any = None) -> Any:
        """Call a Drive v3 path (Drive's own quota, not the Sheets one); the decoded JSON, or None for 204."""
        response = await self._send(method, f"{self.drive_url}/drive/v3/{path}", params or [], body, what, "drive")
        return response.json() if response.content else None

    async def export_csv(self, spreadsheet_id: str, gid: int, what: str) -> bytes:
        """A tab of a link-shared spreadsheet as CSV (docs.google.com; no API quota, counted as a Sheets read)."""
        url = f"{self.export_url}/spreadsheets/d/{spreadsheet_id}/export"
        response = await self._send("GET", url, [("format", "csv"), ("gid", str(gid))], None, what, "sheets")
        if "text/html" in response.headers.get("content-type", ""):
            # Google answers a sign-in page, not an error, for a sheet that is not link-shared.
            raise GoogleApiError(
                f"{what}: Google answered a sign-in page; share the spreadsheet as 'Anyone with the link' or "
                "give the source credentials",
                status=403,
            )
        return response.content

    async def _send(
        self, method: str, url: str, params: list[tuple[str, str]], body: Any, what: str, quota: str
    ) -> httpx.Response:
        query: list[tuple[str, str | int | float | bool | None]] = [*params, *self.auth.params().items()]
        for attempt in (1, 2):
            headers = await self.auth.headers()
            if quota == "sheets":
                self.sheets_requests += 1
            else:
                self.drive_requests += 1
            try:
                response = await self._client.request(method, url, params=query, json=body, headers=headers)
            except httpx.TimeoutException as exc:
                raise GoogleApiError(
                    f"Google did not answer within {self.timeout_s:g} s while {what}", status=None
                ) from exc
            except httpx.HTTPError as exc:
                raise GoogleApiError(f"cannot reach Google while {what}: {exc!r}", status=None) from exc
            if response.status_code == 401 and attempt == 1 and self.auth.mode in ("adc", "service_account"):
                await self.auth.invalidate()  # an expired or revoked token: one more try with a fresh one
                continue
            if response.status_code >= 300:
                raise error_from_response(response, what, self.auth.identity)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the HTTP client and the token transport."""
        await self._client.aclose()
        await self.auth.aclose()
