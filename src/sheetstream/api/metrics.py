"""`GET /metrics`: this process's Prometheus metrics (runtime/metrics.py) in the text exposition format.

Left out of the OpenAPI document: it is for the scraper, not for API clients, and its format is Prometheus's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sheetstream.runtime.metrics import REGISTRY, count_dead_letters


def metrics_router() -> APIRouter:
    """The `/metrics` route."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        services = getattr(request.app.state, "services", None)
        if services is not None:  # the dead-letter depth is the store's: read at each scrape, never stale
            await count_dead_letters(services.store)
        # On the event loop, not in a worker thread: the gauges read the hubs' tables, which only it changes.
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
