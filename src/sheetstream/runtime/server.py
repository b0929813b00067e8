"""The server: REST API, WebSocket gateway, web page, monitor and dispatcher in one process (`sheetstream serve`)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
import uvicorn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from sheetstream.gateways.local import Hub, websocket_route
from sheetstream.runtime.services import Services
from sheetstream.runtime.settings import Settings
from sheetstream.stores.base import NewSource

log = structlog.get_logger("sheetstream.server")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEMO_NAME = "demo"


def create_app(services: Services, hub: Hub | None) -> FastAPI:
    """The ASGI app: REST routes, `/v1/ws`, the web page at `/` and its files (and the JS client) at `/static`."""
    from sheetstream.api import create_api_app

    app = create_api_app(services)
    if hub is not None:  # None in the api role alone: the gateways serve /v1/ws
        app.router.routes.append(websocket_route(hub))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    # A mount is not an API route: it stays out of the OpenAPI document.
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    return app


async def ensure_demo_source(services: Services, path: Path) -> str:
    """Register the demo CSV as a source named "demo", or point the existing one at `path`; return its id."""
    from sheetstream.runtime.monitor import utc_now

    config = {"path": str(path)}  # the CLI resolves it
    cursor: str | None = None
    while True:
        records, cursor = await services.store.list_sources(limit=500, cursor=cursor)
        for record in records:
            if record.name == DEMO_NAME:
                if record.config != config:  # the checkout moved, or another demo file was given
                    await services.store.update_source(record.id, {"config": config}, now=utc_now())
                return record.id
        if cursor is None:
            break
    record = await services.store.create_source(
        NewSource(kind="file", config=config, name=DEMO_NAME, poll_interval_s=2.0), now=utc_now()
    )
    return record.id


@contextlib.asynccontextmanager
async def running(settings: Settings, *, demo_path: Path | None = None) -> AsyncIterator[tuple[FastAPI, Services]]:
    """Open the store and bus, start monitor and dispatcher, and yield the app; stop everything on exit."""
    # The wiring of each role lives in runtime.roles (imported here, not at the top: it builds on this module).
    from sheetstream.runtime.roles import running_roles

    async with running_roles(settings, demo_path=demo_path) as (app, services):
        yield app, services


class _Server(uvicorn.Server):
    """uvicorn's server, closing WebSocket clients with 1001 (going away) before it stops."""

    def __init__(self, config: uvicorn.Config, hub: Hub | None) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.hub is not None:
            await self.hub.close()
        await super().shutdown(sockets)


def uvicorn_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """uvicorn settings carrying the frame limit, keepalive pings and TLS certificate of `settings`."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        # Compression would be done per connection for every message: the shared frame is sent as it is.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_timeout_s,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through configure_logging's handler: JSON like ours
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
        lifespan="off",
    )


async def serve(settings: Settings, *, demo_path: Path | None = None) -> None:
    """Run every role in this process until interrupted."""
    from sheetstream.runtime.roles import serve_roles

    await serve_roles(settings, demo_path=demo_path)
