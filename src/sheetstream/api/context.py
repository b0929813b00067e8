"""What every endpoint reads from its request: the running `Services`, the clock, and the shared page parameters.

The app factory sets `app.state.services` (None is allowed: the routes then answer 503, which is enough to build
the OpenAPI document) and, in tests, `app.state.clock`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from sheetstream.api.errors import ApiError
from sheetstream.runtime.services import Services


def services_of(request: Request) -> Services:
    """The process's Services, set by the app factory as `app.state.services`; 503 while there are none."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise ApiError(503, "unavailable", "the server is not ready: no store is attached")
    return services


def now_of(request: Request, services: Services) -> datetime:
    """The current time from `app.state.clock` or `services.clock` when set (tests), else the wall clock."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None) or getattr(
        services, "clock", None
    )
    return clock() if clock is not None else datetime.now(UTC)


async def _services_dependency(request: Request) -> Services:
    """`services_of` as a dependency: a coroutine, so FastAPI does not hand it to a worker thread every request."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]
PageLimit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
PageCursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
