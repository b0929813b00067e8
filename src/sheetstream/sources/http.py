"""The `http_csv` and `http_json` sources: a document fetched over HTTP(S) with conditional GETs.

Config: ``{"url": "https://example.com/prices.csv", "headers"?: {"Authorization": "..."}, "key_column"?,
"timeout_s"?: 10, "format"?: "csv" | "tsv"}`` (``format`` for `http_csv` only; `http_json` is always JSON, see
`parse.py` for the accepted shapes).

Each fetch sends If-None-Match / If-Modified-Since from the last successfully parsed 200, so an unchanged
document costs a 304 and answers Fetched(None). Every failure is a retryable SourceError whose message says what
to fix: a 4xx usually means a wrong URL or credentials, which users correct while the monitor keeps retrying.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import httpx

from sheetstream.core.model import Snapshot
from sheetstream.errors import ConfigError, SourceError
from sheetstream.sources.base import Fetched, Source
from sheetstream.sources.parse import Format, build_snapshot, parse

CONFIG_KEYS = frozenset({"url", "headers", "key_column", "timeout_s", "format", "poll_interval_s"})
DEFAULT_TIMEOUT_S = 10.0
MAX_BODY_BYTES = 64 * 1024 * 1024
_EXCERPT_CHARS = 200
_ADVICE = {
    401: "check the credentials in the source's headers",
    403: "check the credentials in the source's headers and that the document is shared",
    404: "check the URL",
    410: "check the URL",
}


def validate_http_config(kind: str, config: dict[str, Any]) -> None:
    """Raise ConfigError unless `config` is a valid config for `kind` (http_csv or http_json)."""
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(
            f"{kind} source: unknown config field(s) {unknown}; known: {', '.join(sorted(CONFIG_KEYS))}"
        )
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f'{kind} source: config field "url" is required (an http:// or https:// URL)')
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{kind} source: url must be an absolute http:// or https:// URL, got {url!r}")
    headers = config.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(f'{kind} source: "headers" must be an object of header name -> string value')
    timeout = config.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f'{kind} source: "timeout_s" must be a number > 0, got {timeout!r}')
    allowed = ("csv", "tsv") if kind == "http_csv" else ("json",)
    fmt = config.get("format", allowed[0])
    if fmt not in allowed:
        raise ConfigError(f'{kind} source: "format" must be one of {", ".join(allowed)}, got {fmt!r}')


class HttpSource(Source):
    """A document at a URL, parsed as `format`; one httpx.AsyncClient per source."""

    kind = "http"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Raise ConfigError unless `config` is a valid config for this kind."""
        validate_http_config(cls.kind, config)

    def __init__(self, config: dict[str, Any], *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        validate_http_config(self.kind, config)
        super().__init__(config)
        self.url: str = config["url"]
        self.timeout_s = float(config.get("timeout_s", DEFAULT_TIMEOUT_S))
        self.format: Format = config.get("format", self._default_format())
        self._client = httpx.AsyncClient(
            transport=transport,
            headers=config.get("headers") or {},
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=True,
        )
        self._validators: dict[str, str] = {}

    def _default_format(self) -> Format:
        return "json"

    async def fetch(self, previous: Snapshot | None) -> Fetched:
        """GET the URL (conditionally after a first success); Fetched(None) on 304."""
        try:
            # httpx's timeout bounds each phase; the user's timeout is for the whole fetch, a slow trickle included.
            async with asyncio.timeout(self.timeout_s):
                status, reason, headers, body = await self._get()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise SourceError(f"timed out after {self.timeout_s:g} s fetching {self.url}") from exc
        except httpx.ConnectError as exc:
            raise SourceError(f"cannot connect to {self.url}: {exc or 'connection failed'}") from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"fetching {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if status == 304:
            if not self._validators:
                raise SourceError(f"{self.url} answered 304 Not Modified to an unconditional request")
            return Fetched(None, self._revision())
        if not 200 <= status < 300:
            raise SourceError(self._status_message(status, reason, headers, body))
        tabs = parse(
            body,
            self.format,
            origin=f"{self.format.upper()} from {self.url}",
            encoding=_charset(headers) if self.format != "json" else None,
        )
        snapshot = build_snapshot(previous, tabs)
        # Remember validators only once the body parsed: a 304 must never stand for garbage.
        self._validators = {
            name: headers[source]
            for name, source in (("If-None-Match", "etag"), ("If-Modified-Since", "last-modified"))
            if source in headers
        }
        return Fetched(snapshot, self._revision())

    async def _get(self) -> tuple[int, str, httpx.Headers, bytes]:
        async with self._client.stream("GET", self.url, headers=self._validators) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise SourceError(f"{self.url}: document larger than {MAX_BODY_BYTES // 2**20} MiB")
                chunks.append(chunk)
            return response.status_code, response.reason_phrase, response.headers, b"".join(chunks)

    def _status_message(self, status: int, reason: str, headers: httpx.Headers, body: bytes) -> str:
        text = body.decode(_charset(headers) or "utf-8", errors="replace")
        excerpt = " ".join(text.split())[:_EXCERPT_CHARS]
        advice = _ADVICE.get(
            status, "the server failed; retrying" if status >= 500 else "check the URL and headers"
        )
        quoted = f": {excerpt!r}" if excerpt else ""
        return f"{self.url} answered {status} {reason} ({advice}){quoted}"

    def _revision(self) -> str | None:
        return self._validators.get("If-None-Match") or self._validators.get("If-Modified-Since")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _charset(headers: httpx.Headers) -> str | None:
    content_type: str = headers.get("content-type", "")
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            return str(value.strip('"'))
    return None


class HttpCsvSource(HttpSource):
    """A CSV (or TSV, with ``"format": "tsv"``) document at a URL."""

    kind = "http_csv"

    def _default_format(self) -> Format:
        return "csv"


class HttpJsonSource(HttpSource):
    """A JSON document at a URL, in one of the shapes `parse.py` accepts."""

    kind = "http_json"
