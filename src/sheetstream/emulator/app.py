"""The emulator as an ASGI app: Sheets v4, Drive v3 and the OAuth2 token endpoint on one port, Google's paths.

`create_emulator_app(state, strict=..., clock=...)` builds it; `sheetstream.emulator.server.run_emulator` runs
it in-process on a free port for tests; `sheetstream emulator --port P` runs it from the command line.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sheetstream.emulator import admin, drive, sheets
from sheetstream.emulator.auth import token_endpoint
from sheetstream.emulator.guard import Emulator
from sheetstream.emulator.push import PushHub
from sheetstream.emulator.state import Clock, EmulatorState


def create_emulator_app(
    state: EmulatorState | None = None,
    *,
    strict: bool = False,
    clock: Clock | None = None,
    push_delay_s: float = 1.0,
) -> Starlette:
    """A new emulator app over `state` (a fresh one if None); `clock` replaces the state's clock when given."""
    if state is None:
        state = EmulatorState(clock=clock or time.time)
    elif clock is not None:
        state.clock = clock
    hub = PushHub(state, delay_s=push_delay_s, strict=strict)
    emulator = Emulator(state, strict, hub)

    async def token(request: Request) -> Response:
        return await token_endpoint(request, state, strict=strict)

    async def not_found(request: Request) -> Response:
        return JSONResponse(
            {
                "error": {
                    "code": 404,
                    "message": f"Method not found: {request.url.path}",
                    "status": "NOT_FOUND",
                }
            },
            status_code=404,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            await hub.aclose()

    routes = [
        Route("/token", token, methods=["POST"]),
        Route("/oauth2/v4/token", token, methods=["POST"]),
        Route("/v4/spreadsheets", sheets.route, methods=["GET", "POST", "PUT"]),
        Route("/v4/spreadsheets/{rest:path}", sheets.route, methods=["GET", "POST", "PUT"]),
        *drive.ROUTES,
        *admin.ROUTES,
        Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = emulator
    return app
