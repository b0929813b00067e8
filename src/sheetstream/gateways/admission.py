"""Who may open a WebSocket on `/v1/ws`: the checks of a new connection, the same for every transport.

Every connection is accepted first and then, if refused, closed with an application code, so clients see why
(a refused HTTP upgrade shows a browser nothing). The checks, in order:

1. the rate of new connections from its IP address (`connections_per_ip_per_min`): over it, 4029;
2. its `Origin` header, when it has one: listed in `allowed_origins`, or `*` listed, or (the list empty) the
   same host and port as its `Host` header; else 4003 "origin not allowed";
3. its token, from `?token=` or `Authorization: Bearer`: verified whenever one is given; none is needed only
   when `anonymous` is on. A missing or invalid token closes with 4001 and the reason.

    admission = Admission(settings)
    result = await admission.admit(read_handshake(ip, headers, query))  # a Grant, or a Refusal to close with

Refusals are counted in `sheetstream_ws_rejections_total` and logged with their reason, never with the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import structlog

from sheetstream.auth.tokens import ANONYMOUS, NO_KEY, Grant, TokenRejected, TokenVerifier
from sheetstream.core.messages import (
    CLOSE_FORBIDDEN,
    CLOSE_RATE_LIMITED,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORIZED,
)
from sheetstream.core.ratelimit import KeyedBuckets, per_minute
from sheetstream.runtime import metrics
from sheetstream.runtime.settings import Settings

log = structlog.get_logger("sheetstream.gateway")

RejectionReason = Literal[
    "unauthorized", "forbidden_origin", "rate_limited", "forbidden_source", "token_expired"
]
"""Why a connection, a message or a subscription was refused (the label of `sheetstream_ws_rejections_total`)."""

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_MAX_REASON_BYTES = 123
"""A close frame's reason fits in 123 bytes (RFC 6455, 5.5: 125 bytes of payload, two of them the code)."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the checks need of an opening handshake."""

    ip: str | None
    origin: str | None
    host: str | None
    token: str | None = field(default=None, repr=False)  # never in a log line


def read_handshake(ip: str | None, headers: Mapping[str, str], query: str) -> Handshake:
    """The Handshake of a request: `headers` looked up case-insensitively, `query` the URL's query string."""
    token = None
    authorization = headers.get("authorization") or ""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        token = credentials.strip()
    elif query:
        token = next((value for name, value in parse_qsl(query) if name == "token" and value), None)
    return Handshake(ip=ip, origin=headers.get("origin"), host=headers.get("host"), token=token)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Close the connection with `code` and `reason`; `rejection` is the metric's label."""

    code: int
    reason: str
    rejection: RejectionReason


class Admission:
    """The checks of new connections (`screen`: rate and origin; `grant`: the token) and what they remember."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier or TokenVerifier(settings)
        self.anonymous = settings.anonymous
        self.clock = clock
        self.any_origin = "*" in settings.allowed_origins
        self.origins = frozenset(_origin(o) for o in settings.allowed_origins if o != "*")
        limit = settings.connections_per_ip_per_min
        self.per_ip: KeyedBuckets[str] | None = KeyedBuckets(*per_minute(limit)) if limit > 0 else None

    def admit_now(self, handshake: Handshake) -> Grant | Refusal | None:
        """Every check of a new connection, done now; None when its token needs keys fetched: then await `admit`."""
        refusal = self.screen(handshake)
        if refusal is None and self.needs_fetch(handshake.token):
            return None
        return self._counted(handshake, refusal or self.grant_now(handshake.token))

    async def admit(self, handshake: Handshake) -> Grant | Refusal:
        """Every check of a new connection: its grant, or the code and reason to close it with."""
        refusal = self.screen(handshake)
        return self._counted(handshake, refusal or await self.grant(handshake.token))

    def _counted(self, handshake: Handshake, result: Grant | Refusal) -> Grant | Refusal:
        if isinstance(result, Refusal):
            metrics.WS_REJECTIONS.labels(reason=result.rejection).inc()
            log.info("websocket refused", code=result.code, reason=result.reason, ip=handshake.ip)
        return result

    def screen(self, handshake: Handshake) -> Refusal | None:
        """The rate and origin checks (taking one of the IP's connections); None if both pass."""
        if self.per_ip is not None and handshake.ip and not self.per_ip.take(handshake.ip, self.clock()):
            return Refusal(CLOSE_RATE_LIMITED, "rate limited: too many new connections", "rate_limited")
        if handshake.origin is not None and not self.origin_allowed(handshake.origin, handshake.host):
            return Refusal(CLOSE_FORBIDDEN, "origin not allowed", "forbidden_origin")
        return None

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page of `origin` may connect to the server it reached as `host`."""
        if self.any_origin:
            return True
        if self.origins:
            return _origin(origin) in self.origins
        parts = _split(origin)
        if parts is None or host is None:
            return False
        scheme, origin_host, origin_port = parts
        served = _split(f"{scheme}://{host.strip()}")
        return served is not None and served[1:] == (origin_host, origin_port)

    def needs_fetch(self, token: str | None) -> bool:
        """Whether checking `token` may fetch keys: then await `grant` (`grant_now` would block the loop)."""
        return token is not None and self.verifier.needs_fetch(token)

    def grant_now(self, token: str | None) -> Grant | Refusal:
        """The grant of a connection with `token` (None: it has none), or why it is refused."""
        if token is None:
            return self._no_token()
        try:
            return self.verifier.verify_now(token)
        except TokenRejected as exc:
            return _rejected(exc)
        except Exception as exc:  # a bug or an odd key set must not leave the client hanging
            return _failed(exc)

    async def grant(self, token: str | None) -> Grant | Refusal:
        """`grant_now`, fetching keys in a thread when needed."""
        if token is None:
            return self._no_token()
        try:
            return await self.verifier.verify(token)
        except TokenRejected as exc:
            return _rejected(exc)
        except Exception as exc:  # a bug or an odd key set must not leave the client hanging
            return _failed(exc)

    def _no_token(self) -> Grant | Refusal:
        if self.anonymous:
            return ANONYMOUS
        if not self.verifier.configured:
            return Refusal(CLOSE_UNAUTHORIZED, _fit(f"{NO_KEY}, or --anonymous"), "unauthorized")
        return Refusal(CLOSE_UNAUTHORIZED, "missing token", "unauthorized")


def _rejected(exc: TokenRejected) -> Refusal:
    if exc.retryable:
        return Refusal(CLOSE_TRY_AGAIN_LATER, _fit(f"try again later: {exc.reason}"), "unauthorized")
    if exc.reason.startswith("no token can be verified"):
        return Refusal(CLOSE_UNAUTHORIZED, _fit(exc.reason), "unauthorized")
    return Refusal(CLOSE_UNAUTHORIZED, _fit(f"invalid token: {exc.reason}"), "unauthorized")


def _failed(exc: Exception) -> Refusal:
    log.error("token check failed", error=type(exc).__name__)  # not repr(exc): it might quote the token
    return Refusal(CLOSE_UNAUTHORIZED, "invalid token: it could not be checked", "unauthorized")


def _fit(reason: str) -> str:
    """`reason` cut to what a close frame can carry."""
    data = reason.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return reason
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def _split(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an origin or URL, lowercased, the scheme's default port as None; None if malformed."""
    try:
        parts = urlsplit(url.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    if port == _DEFAULT_PORTS.get(parts.scheme):
        port = None
    return parts.scheme, parts.hostname, port


def _origin(origin: str) -> str:
    """An origin in one spelling: lowercase, no trailing slash, no default port (`null` stays `null`)."""
    parts = _split(origin)
    if parts is None:
        return origin.strip().lower().rstrip("/")
    scheme, host, port = parts
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")
