"""The REST API's error answers: `{"error": {"code", "message", "details"?}}` with the matching HTTP status.

`install_error_handlers(app)` maps request validation errors (422, also for a body that is not JSON), the
project's exceptions (ConfigError 422, SecretKeyRequired 400, SourceNotFound 404, VersionConflict 409),
Starlette's HTTP errors (unknown route 404, wrong method 405 ...) and anything unexpected (500 `internal`, logged
with its traceback, which never reaches the client) to that shape.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sheetstream.errors import ConfigError, SecretKeyRequired, SourceNotFound, VersionConflict

log = structlog.get_logger("sheetstream.api")

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer raised from an endpoint: `status`, a stable `code`, a `message`, `details`?, `headers`?."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON error answer; `details` is left out when None."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic/FastAPI errors as `[{"field": "body.config.path", "message": ...}]`."""
    out = []
    for err in errors:
        field = ".".join(str(part) for part in err.get("loc", ()))
        out.append({"field": field or "body", "message": str(err.get("msg", "invalid"))})
    return out


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = field_errors(errors)
    if any(err.get("type") == "json_invalid" for err in errors):
        message = "the request body is not valid JSON: " + "; ".join(d["message"] for d in details)
        return error_response(422, "invalid_json", message, [{"field": "body", "message": "invalid JSON"}])
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body_not_json = any(err.get("loc") == ("body",) and err.get("type") != "missing" for err in errors)
    if body_not_json and media != "application/json" and not media.endswith("+json"):
        # FastAPI ignores a body sent as a form or text (`curl -d` without -H): say what to send instead.
        got = f"not {media!r}" if media else "and no Content-Type was sent"
        message = f"send the request body as JSON with Content-Type: application/json, {got}"
        return error_response(422, "invalid_json", message, [{"field": "body", "message": message}])
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    return error_response(422, "validation_error", f"invalid request: {summary}", details)


async def _on_config_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "invalid_config", str(exc))


async def _on_secret_key_required(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "secret_key_required", str(exc))


async def _on_source_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SourceNotFound)
    return error_response(404, "source_not_found", str(exc), {"source": exc.source_id})


async def _on_version_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VersionConflict)
    details = {"source": exc.source_id, "version": exc.version, "head": exc.head}
    return error_response(409, "version_conflict", str(exc), details)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI answers a body that is not UTF-8 with a bare 400: it is invalid JSON like any other (422).
        message = f"the request body is not valid JSON: it is not UTF-8 text ({exc.__cause__.reason})"
        return error_response(422, "invalid_json", message, [{"field": "body", "message": "invalid JSON"}])
    code = _CODES_BY_STATUS.get(status, "internal" if status >= 500 else "bad_request")
    phrase = HTTPStatus(status).phrase
    if isinstance(exc.detail, str) and exc.detail and exc.detail != phrase:
        message = exc.detail
    elif status == 404:
        message = f"no route {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = phrase
    headers = dict(exc.headers) if exc.headers else {}
    if status == 405:
        # Starlette's Allow names only the first route matching the path; list every route's methods.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request))) or headers.get("Allow", "")
    return error_response(status, code, message, headers=headers or None)


def _allowed_methods(request: Request) -> set[str]:
    # Probe each method against the app's routes with a fresh scope (the request's own scope carries
    # routing state that would short-circuit the match).
    allowed = set()
    for method in _METHODS:
        scope = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
        }
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    return allowed


class InternalErrorMiddleware:
    """Answers an unexpected exception with a 500 `internal` error and logs it once, with its traceback.

    A plain ASGI middleware rather than an `Exception` handler: Starlette re-raises after such a handler,
    which makes the server log every failure twice and test clients raise. WebSocket scopes pass through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            # The traceback goes in as text: renderers that pretty-print live exceptions (rich, with every
            # frame's locals) take seconds on a FastAPI stack.
            log.error(
                "request failed", method=scope.get("method"), path=scope.get("path"), exception=traceback.format_exc()
            )
            if started:
                raise  # Part of the answer is out: the server can only drop the connection.
            response = error_response(500, "internal", "internal error; the server log has the details")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of `app` follow `{"error": {"code", "message", "details"?}}`."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ConfigError, _on_config_error)
    app.add_exception_handler(SecretKeyRequired, _on_secret_key_required)  # a ConfigError, answered with 400
    app.add_exception_handler(SourceNotFound, _on_source_not_found)
    app.add_exception_handler(VersionConflict, _on_version_conflict)
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(InternalErrorMiddleware)
