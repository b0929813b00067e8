"""The REST API: `/v1/sources`, `/v1/hooks/...`, `/v1/dead-letters`, `/healthz`, `/readyz`, `/docs` and `/openapi.json`.

One entry point builds it: `create_api_app(services)` returns a FastAPI app with the error handlers and every
REST route; the server then adds the WebSocket route, the web page and its lifecycle onto that app. Endpoints
find the running `Services` at `app.state.services` (None is allowed: the routes then answer 503, which is
enough to build the OpenAPI document). Set `app.state.clock` to a `() -> datetime` to control timestamps.

`openapi_document()` is the OpenAPI schema built exactly as the server builds it; `openapi_text()` is its
checked-in form, `docs/openapi.json` (`make openapi` rewrites that file).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from sheetstream import __version__
from sheetstream.api.dead_letters import dead_letters_router
from sheetstream.api.errors import install_error_handlers
from sheetstream.api.health import health_router
from sheetstream.api.hooks import hooks_router
from sheetstream.api.metrics import metrics_router
from sheetstream.api.sources import sources_router
from sheetstream.runtime.services import Services

__all__ = ["create_api_app", "install_api", "openapi_document", "openapi_text"]

DESCRIPTION = (
    "Watch spreadsheets and files and read their cell-level changes. Live changes stream over the WebSocket "
    "at `/v1/ws`; this API manages the data sources and serves snapshots and the change log. Errors are "
    '`{"error": {"code", "message", "details"?}}`. Calls under `/v1/sources` need an API key '
    "(`sheetstream keys create`) in `Authorization: Bearer <key>` or `X-API-Key`: GET needs the `read` scope, "
    "other methods `write`."
)


def _operation_id(route: APIRoute) -> str:
    # Generated clients name their methods after operation ids: "list_sources" rather than FastAPI's
    # default "list_sources_v1_sources_get".
    return route.name


def install_api(app: FastAPI) -> None:
    """Add the error handlers and every REST route to `app`."""
    install_error_handlers(app)
    app.include_router(sources_router())
    app.include_router(health_router())
    app.include_router(metrics_router())  # not in the OpenAPI document
    app.include_router(hooks_router())
    app.include_router(dead_letters_router())


def create_api_app(services: Services | None = None) -> FastAPI:
    """A FastAPI app serving the REST API for `services`, with interactive docs at `/docs`."""
    app = FastAPI(
        title="sheetstream",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=_operation_id,
    )
    app.state.services = services
    install_api(app)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the REST API, as `/openapi.json` serves it."""
    return create_api_app(None).openapi()


def openapi_text() -> str:
    """`openapi_document()` pretty-printed with sorted keys: the content of `docs/openapi.json`."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
