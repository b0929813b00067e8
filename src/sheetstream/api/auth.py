"""REST API keys at the door: `require_scope("read" | "write")`, a FastAPI dependency for every protected route.

    @router.get("/things", dependencies=[require_scope("read")], responses=AUTH_RESPONSES)

The key comes in `Authorization: Bearer <key>` or `X-API-Key: <key>` (auth/keys.py says what a key looks like)
and is looked up in the store on every request, so a revoked key is refused from the next request on, on every
node. Answers, with the usual error body:

- 401 `unauthorized` (and `WWW-Authenticate: Bearer`): no key, a malformed one, an unknown or revoked key, or a
  wrong secret. All read the same to the client; the log says which, naming the key by its id only.
- 403 `forbidden`: the key lacks the route's scope.
- 429 `rate_limited` (and `Retry-After`): more than `rest_requests_per_min` requests in a minute from one key, or
  from one client IP for requests without a valid key (0: no limit). Each node counts its own requests.

With `settings.anonymous`, a request without any key passes (limited per IP); a presented key is still checked.
The key itself is never logged nor echoed. The key is checked before parameters and body are validated; only a
body that is not JSON at all is refused first (FastAPI decodes it before running dependencies).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, NoReturn

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from sheetstream.api.context import services_of
from sheetstream.api.errors import ApiError
from sheetstream.api.schemas import ErrorOut
from sheetstream.auth.keys import PREFIX, accepts, parse_key
from sheetstream.core.ratelimit import KeyedBuckets, per_minute
from sheetstream.errors import ApiKeyNotFound
from sheetstream.runtime import metrics
from sheetstream.runtime.services import Services
from sheetstream.stores.base import ApiKeyRecord

Scope = Literal["read", "write"]

API_KEY_HEADER = "X-API-Key"

log = structlog.get_logger("sheetstream.api")

_KEY_FORMAT = f"{PREFIX}<key_id>_<secret>"
_HOW = f"send it as `Authorization: Bearer <key>` or `{API_KEY_HEADER}: <key>`"

# Declared for the OpenAPI document (and the interactive docs' Authorize button); the headers are read below.
_BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat=_KEY_FORMAT,
    description=f"An API key (`sheetstream keys create`) as a bearer token: `Authorization: Bearer {_KEY_FORMAT}`.",
    auto_error=False,
)
_API_KEY = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKey",
    description=f"An API key (`sheetstream keys create`) in the `{API_KEY_HEADER}` header.",
    auto_error=False,
)

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorOut,
        "description": "No API key, or a malformed, unknown or revoked one.",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}},
    },
    403: {
        "model": ErrorOut,
        "description": "The API key lacks the scope this call needs (`read` or `write`).",
    },
    429: {
        "model": ErrorOut,
        "description": "Too many requests from this API key (or, without one, from this address).",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    },
}
"""The error answers of a route guarded by `require_scope`, for its `responses=`."""


class RestLimiter:
    """REST requests per minute per caller (an API key's id, or a client IP), as token buckets on `clock`."""

    def __init__(self, requests_per_min: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: KeyedBuckets[str] | None = None
        if requests_per_min > 0:
            self._buckets = KeyedBuckets(*per_minute(requests_per_min))

    def take(self, caller: str) -> float | None:
        """Count one request of `caller`: None if it may go on, else the seconds until it may try again."""
        if self._buckets is None:
            return None
        now = self.clock()
        if self._buckets.take(caller, now):
            return None
        return self._buckets.retry_after(caller, now)


def rest_limiter(request: Request) -> RestLimiter:
    """The app's limiter (`app.state.rest_limiter`), made from the settings at the first request."""
    limiter: RestLimiter | None = getattr(request.app.state, "rest_limiter", None)
    if limiter is None:
        limiter = RestLimiter(services_of(request).settings.rest_requests_per_min)
        request.app.state.rest_limiter = limiter
    return limiter


class _Refused(Exception):
    """Why a request is refused: the answer for the client and the reason for the log."""

    def __init__(self, error: ApiError, reason: str, key_id: str | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.key_id = key_id


def _unauthorized(reason: str, key_id: str | None = None, message: str | None = None) -> _Refused:
    text = message or f"unknown or revoked API key; {_HOW}"
    error = ApiError(401, "unauthorized", text, headers={"WWW-Authenticate": "Bearer"})
    return _Refused(error, reason, key_id)


def _presented_key(request: Request) -> str | None:
    """The key text the request carries (None: none at all); _Refused if the headers are not usable."""
    authorization = request.headers.getlist("authorization")
    api_key = request.headers.getlist(API_KEY_HEADER)
    if len(authorization) > 1 or len(api_key) > 1:
        raise _unauthorized("several key headers", message=f"send one API key in one header; {_HOW}")
    bearer: str | None = None
    if authorization:
        scheme, _, value = authorization[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            message = f"the Authorization header must read `Bearer <key>`; {_HOW}"
            raise _unauthorized("an Authorization header that is not Bearer", message=message)
        bearer = value.strip()
    header = api_key[0].strip() if api_key else None
    if bearer is not None and header is not None and bearer != header:
        raise _unauthorized("two different keys", message=f"two different API keys were sent; {_HOW}")
    return bearer if bearer is not None else header


async def _verified(services: Services, text: str) -> ApiKeyRecord:
    """The record of the presented key `text`; _Refused unless it is well-formed, known, not revoked and right."""
    presented = parse_key(text)
    if presented is None:
        raise _unauthorized("a malformed key", message=f"malformed API key: keys read {_KEY_FORMAT}; {_HOW}")
    try:
        record = await services.store.get_api_key(presented.key_id)
    except ApiKeyNotFound:
        raise _unauthorized("an unknown key id", presented.key_id) from None
    if not accepts(record, presented):
        raise _unauthorized("a revoked key" if record.revoked_at is not None else "a wrong secret", record.id)
    return record


async def _check(request: Request, scope: Scope) -> ApiKeyRecord | None:
    """The request's key, checked for `scope` and counted by the limiter; None for an anonymous request."""
    services = services_of(request)
    limiter = rest_limiter(request)
    client = request.client.host if request.client is not None else "unknown"
    record: ApiKeyRecord | None = None
    try:
        text = _presented_key(request)
        if text is not None:
            record = await _verified(services, text)
        elif not services.settings.anonymous:
            raise _unauthorized("no key", message=f"this call needs an API key; {_HOW}")
    except _Refused as refused:
        # Requests without a valid key count against their address, so a flood of bad keys is slowed too.
        retry_after = limiter.take(f"ip:{client}")
        if retry_after is not None:
            _refuse(request, _rate_limited(retry_after, refused.reason, refused.key_id), client)
        _refuse(request, refused, client)
    try:
        if record is None:  # anonymous
            _limit(limiter, f"ip:{client}")
            return None
        _limit(limiter, f"key:{record.id}", record.id)
        if scope not in record.scopes:
            scopes = ", ".join(sorted(record.scopes))
            message = f"this API key may not {scope}: its scopes are {scopes}"
            raise _Refused(ApiError(403, "forbidden", message), f"no {scope} scope", record.id)
    except _Refused as refused:
        _refuse(request, refused, client)
    request.state.api_key_id = record.id
    return record


def _rate_limited(retry_after: float, reason: str, key_id: str | None = None) -> _Refused:
    seconds = max(1, math.ceil(retry_after))
    message = f"too many requests: try again in {seconds} s"
    error = ApiError(429, "rate_limited", message, headers={"Retry-After": str(seconds)})
    return _Refused(error, f"rate limited ({reason})", key_id)


def _limit(limiter: RestLimiter, caller: str, key_id: str | None = None) -> None:
    retry_after = limiter.take(caller)
    if retry_after is not None:
        raise _rate_limited(retry_after, "key" if key_id else "address", key_id)


def _refuse(request: Request, refused: _Refused, client: str) -> NoReturn:
    """Count and log the refusal (with the key's id, never the key) and raise its answer."""
    code = refused.error.code
    metrics.REST_REJECTIONS.labels(code=code).inc()
    log.info(
        "rest request refused",
        code=code,
        reason=refused.reason,
        key_id=refused.key_id,
        client=client,
        method=request.method,
        path=request.url.path,
    )
    raise refused.error


def _dependency(scope: Scope) -> Callable[..., Any]:
    # The security schemes are sub-dependencies only so that the OpenAPI document lists them on the route.
    async def check(
        request: Request,
        _bearer: Annotated[Any, Depends(_BEARER)],
        _api_key: Annotated[Any, Depends(_API_KEY)],
    ) -> ApiKeyRecord | None:
        return await _check(request, scope)

    check.__name__ = f"require_{scope}_scope"
    return check


# One dependency per scope, made once: FastAPI then runs it once per request even if a route names it twice.
_DEPENDENCIES: dict[Scope, Callable[..., Any]] = {"read": _dependency("read"), "write": _dependency("write")}


def require_scope(scope: Scope) -> Any:
    """A dependency refusing requests without a valid API key holding `scope`; its value is the key's record.

    Use it as `dependencies=[require_scope("read")]` on a route (or a router), with `responses=AUTH_RESPONSES`;
    its value is None for an anonymous request.
    """
    if scope not in _DEPENDENCIES:
        raise ValueError(f"unknown scope {scope!r}: use 'read' or 'write'")
    return Depends(_DEPENDENCIES[scope])
