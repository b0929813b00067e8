"""The HTTP sources against a real local HTTP server: conditional GETs, errors, garbage, timeouts, refusals."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from sheetstream.core.model import Snapshot, Tab
from sheetstream.errors import ConfigError, SourceError
from sheetstream.sources.base import Fetched
from sheetstream.sources.http import HttpCsvSource, HttpJsonSource


@dataclass
class Document:
    body: bytes
    content_type: str = "text/csv; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200


@dataclass
class Site:
    """What the test server serves, and what it was asked."""

    base: str
    docs: dict[str, Document] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path


def make_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            if self.path == "/slow":
                site.release.wait(10)  # answers only once the test is over
            doc = site.docs.get(self.path)
            try:
                if doc is None:
                    self._send(404, b"no such document", "text/plain", {})
                    return
                validators = {"ETag": doc.etag, "Last-Modified": doc.last_modified}
                headers = {k: v for k, v in validators.items() if v}
                if (doc.etag and self.headers.get("If-None-Match") == doc.etag) or (
                    doc.last_modified and self.headers.get("If-Modified-Since") == doc.last_modified
                ):
                    self._send(304, b"", doc.content_type, headers)
                    return
                self._send(doc.status, doc.body, doc.content_type, headers)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for k, v in headers.items():
                self.send_header(k, v)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Site("")))
    host, port = server.server_address[:2]
    site = Site(f"http://{host}:{port}")
    server.RequestHandlerClass = make_handler(site)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield site
    site.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
async def opened():
    sources: list[HttpCsvSource | HttpJsonSource] = []

    def track(source):
        sources.append(source)
        return source

    yield track
    for s in sources:
        await s.aclose()


def rows(fetched: Fetched) -> list[tuple[int, str, list[list[object]]]]:
    assert fetched.snapshot is not None
    return [(t.id, t.title, [list(r) for r in t.rows]) for t in fetched.snapshot.tabs]


async def test_csv_with_etag_conditional_get(site: Site, opened) -> None:
    site.docs["/prices.csv"] = Document(b"item,price\ntea,2\n", etag='"v1"')
    source = opened(HttpCsvSource({"url": site.url("/prices.csv"), "key_column": "item"}))
    first = await source.fetch(None)
    assert rows(first) == [(0, "Sheet1", [["item", "price"], ["tea", "2"]])]
    assert first.revision == '"v1"'
    assert await source.fetch(first.snapshot) == Fetched(None, '"v1"')
    assert site.requests[1][1]["if-none-match"] == '"v1"'
    site.docs["/prices.csv"] = Document(b"item,price\ntea,3\n", etag='"v2"')
    assert rows(await source.fetch(first.snapshot)) == [(0, "Sheet1", [["item", "price"], ["tea", "3"]])]


async def test_json_with_last_modified_conditional_get(site: Site, opened) -> None:
    stamp = "Wed, 21 Oct 2015 07:28:00 GMT"
    body = b'{"tabs": [{"title": "A", "id": 4, "rows": [{"k": 1}]}, {"title": "B", "rows": [[1, [2]]]}]}'
    site.docs["/d.json"] = Document(body, "application/json", last_modified=stamp)
    source = opened(HttpJsonSource({"url": site.url("/d.json")}))
    first = await source.fetch(None)
    assert first.snapshot == Snapshot((Tab(4, "A", (("k",), (1,))), Tab(0, "B", ((1, "[2]"),))))
    assert (await source.fetch(first.snapshot)).snapshot is None
    assert site.requests[1][1]["if-modified-since"] == stamp
    assert "if-none-match" not in site.requests[1][1]


async def test_tsv_and_declared_charset(site: Site, opened) -> None:
    site.docs["/t.tsv"] = Document(
        "caf\u00e9\t1\n".encode("latin-1"), "text/tab-separated-values; charset=ISO-8859-1"
    )
    source = opened(HttpCsvSource({"url": site.url("/t.tsv"), "format": "tsv"}))
    assert rows(await source.fetch(None)) == [(0, "Sheet1", [["caf\u00e9", "1"]])]


async def test_server_error_names_status_and_body(site: Site, opened) -> None:
    site.docs["/e.csv"] = Document(b"database is down\n  please wait", "text/plain", status=500)
    source = opened(HttpCsvSource({"url": site.url("/e.csv")}))
    with pytest.raises(SourceError) as info:
        await source.fetch(None)
    assert str(info.value) == (
        f"{site.url('/e.csv')} answered 500 Internal Server Error (the server failed; retrying):"
        " 'database is down please wait'"
    )
    assert info.value.retryable


async def test_not_found_says_to_check_the_url(site: Site, opened) -> None:
    source = opened(HttpJsonSource({"url": site.url("/nothing.json")}))
    with pytest.raises(
        SourceError, match=r"answered 404 Not Found \(check the URL\): 'no such document'"
    ) as info:
        await source.fetch(None)
    assert info.value.retryable  # users fix the URL while the monitor keeps trying


async def test_garbage_body_is_a_parse_error_and_leaves_no_validators(site: Site, opened) -> None:
    site.docs["/g.json"] = Document(b"<html>oops</html>", "text/html", etag='"g"')
    source = opened(HttpJsonSource({"url": site.url("/g.json")}))
    with pytest.raises(SourceError, match=r"^JSON from http://.*/g.json: invalid JSON: ") as info:
        await source.fetch(None)
    assert info.value.retryable
    site.docs["/g.json"] = Document(b"[[1]]", "application/json", etag='"g"')
    assert rows(await source.fetch(None)) == [(0, "Sheet1", [[1]])]
    assert "if-none-match" not in site.requests[1][1]  # a 304 must never stand for the garbage


async def test_slow_server_times_out(site: Site, opened) -> None:
    source = opened(HttpJsonSource({"url": site.url("/slow"), "timeout_s": 0.2}))
    with pytest.raises(SourceError) as info:
        await source.fetch(None)
    assert str(info.value) == f"timed out after 0.2 s fetching {site.url('/slow')}"


async def test_connection_refused(opened) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.csv"
    source = opened(HttpCsvSource({"url": url}))
    with pytest.raises(SourceError, match=rf"^cannot connect to {url}: ") as info:
        await source.fetch(None)
    assert info.value.retryable


async def test_unconditional_304_is_an_error(site: Site, opened) -> None:
    site.docs["/odd.csv"] = Document(b"", status=304)
    source = opened(HttpCsvSource({"url": site.url("/odd.csv")}))
    with pytest.raises(SourceError, match="answered 304 Not Modified to an unconditional request"):
        await source.fetch(None)


async def test_injected_transport_and_configured_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, text="bad token")

    source = HttpJsonSource(
        {"url": "https://example.test/d.json", "headers": {"Authorization": "Bearer x"}},
        transport=httpx.MockTransport(handler),
    )
    try:
        with pytest.raises(SourceError, match=r"answered 401 Unauthorized \(check the credentials"):
            await source.fetch(None)
    finally:
        await source.aclose()
    assert seen[0].headers["authorization"] == "Bearer x"


@pytest.mark.parametrize(
    ("cls", "config", "message"),
    [
        (HttpCsvSource, {}, 'http_csv source: config field "url" is required'),
        (
            HttpJsonSource,
            {"url": "ftp://x/y"},
            "http_json source: url must be an absolute http:// or https:// URL",
        ),
        (HttpJsonSource, {"url": "http://x", "timeout_s": 0}, '"timeout_s" must be a number > 0'),
        (HttpCsvSource, {"url": "http://x", "headers": {"a": 1}}, '"headers" must be an object'),
        (HttpCsvSource, {"url": "http://x", "format": "json"}, '"format" must be one of csv, tsv'),
        (HttpJsonSource, {"url": "http://x", "ulr": "y"}, r"unknown config field\(s\) \['ulr'\]"),
    ],
)
def test_bad_config(cls: type, config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cls(config)
