"""Probes for orchestrators: `/healthz` (the process answers) and `/readyz` (the store and the bus answer too)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sheetstream.api.schemas import HealthOut, UnavailableOut
from sheetstream.runtime.services import Services

READY_TIMEOUT_S = 2.0
"""How long `/readyz` waits for the store, then for the bus, before calling it unreachable."""


def health_router() -> APIRouter:
    """The `/healthz` and `/readyz` routes."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthOut, summary="Liveness")
    async def healthz() -> HealthOut:
        """200 while the process can answer requests."""
        return HealthOut(status="ok")

    @router.get(
        "/readyz",
        response_model=HealthOut,
        summary="Readiness",
        responses={503: {"model": UnavailableOut, "description": "The store or the bus cannot be reached."}},
    )
    async def readyz(request: Request) -> HealthOut | JSONResponse:
        """200 when the store and the bus answer a cheap check within a short deadline, else 503 with the reason."""
        services: Services | None = getattr(request.app.state, "services", None)
        if services is None:
            return _unavailable("no store is attached yet")
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await services.store.list_sources(limit=1)
        except TimeoutError:
            return _unavailable(f"the store did not answer within {READY_TIMEOUT_S:g} s")
        except Exception as exc:
            return _unavailable(f"the store failed: {type(exc).__name__}: {exc}")
        return await _bus_ready(services)

    return router


async def _bus_ready(services: Services) -> HealthOut | JSONResponse:
    bus = services.bus
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            healthy = bus is None or await bus.healthy()  # None: an API without a bus (tests, tools)
    except TimeoutError:
        return _unavailable(f"the bus did not answer within {READY_TIMEOUT_S:g} s")
    except Exception as exc:
        return _unavailable(f"the bus failed: {type(exc).__name__}: {exc}")
    return HealthOut(status="ok") if healthy else _unavailable("the bus is not connected")


def _unavailable(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
