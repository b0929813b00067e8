"""A real HTTP server standing in for the origin of an `http_csv` source: it answers well, fails, or talks garbage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import pytest

Mode = Literal["good", "500", "garbage"]


class Upstream:
    """Serves `body` as CSV in mode "good", a 500 in mode "500", binary junk in mode "garbage".

    It remembers the Authorization header of every request, so tests can see what reached the origin.
    """

    def __init__(self, mode: Mode = "good", body: bytes = b"a,b\n1,2\n") -> None:
        self.mode: Mode = mode
        self.body = body
        self.authorizations: list[str | None] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.authorizations.append(self.headers.get("Authorization"))
                if upstream.mode == "500":
                    status, body = 500, b"upstream broke"
                else:
                    status, body = 200, b"\x00\xff\xfe garbage \x00" if upstream.mode == "garbage" else upstream.body
                self.send_response(status)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.csv"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()
