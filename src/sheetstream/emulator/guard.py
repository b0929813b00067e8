"""What every emulated API call goes through before its handler: faults, authentication, scopes, quota.

`api(surface, access)` wraps a handler `async (ctx) -> dict | Response | None` into a Starlette endpoint and turns
any ApiError into the body of the right API. A handler reaches files through `ctx.file(...)`, which answers 404
or 403 as Google does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sheetstream.emulator.auth import Identity, check_scope, identify
from sheetstream.emulator.errors import (
    ApiError,
    Surface,
    error_response,
    file_not_found,
    invalid_argument,
    not_found,
    permission_denied,
    server_error,
)
from sheetstream.emulator.model import DriveFile
from sheetstream.emulator.state import EmulatorState

if TYPE_CHECKING:
    from sheetstream.emulator.push import PushHub

Access = Literal["read", "write"]


@dataclass
class Emulator:
    """What the app serves from: the state, the mode and the push hub."""

    state: EmulatorState
    strict: bool
    hub: PushHub


@dataclass
class Ctx:
    """One API call: the request, the emulator, and who is calling."""

    request: Request
    emulator: Emulator
    identity: Identity
    surface: Surface

    @property
    def state(self) -> EmulatorState:
        """The emulator's state."""
        return self.emulator.state

    def param(self, name: str, default: str | None = None) -> str | None:
        """A query parameter."""
        return self.request.query_params.get(name, default)

    def flag(self, name: str) -> bool:
        """A boolean query parameter ("true"/"True"/"1")."""
        return (self.param(name) or "").lower() in ("true", "1")

    async def body(self) -> dict[str, Any]:
        """The JSON body ({} when empty); 400 with Google's wording when it is not a JSON object."""
        raw = await self.request.body()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise invalid_argument(f"Invalid JSON payload received. {exc}") from exc
        if not isinstance(data, dict):
            raise invalid_argument("Invalid JSON payload received. Expected an object.")
        return data

    def file(self, file_id: str, access: Access = "read", *, spreadsheet: bool = True) -> DriveFile:
        """The file, if the caller may use it this way; 404 for unknown, 403 when sharing forbids."""
        with self.state.lock:
            found = self.state.files.get(file_id)
        missing = file_not_found(file_id) if self.surface == "drive" else not_found()
        if found is None or (spreadsheet and not found.is_spreadsheet):
            raise missing
        if not self.emulator.strict:
            return found
        who = self.identity.name
        if access == "write" and self.identity.via == "key":
            raise ApiError(
                401,
                "API keys are not supported by this API. Expected OAuth2 access token or other authentication "
                "credentials that assert a principal.",
                reason="required",
            )
        if not found.can_read(who):
            # Drive hides files the caller cannot see; Sheets says 403.
            raise missing if self.surface == "drive" else permission_denied()
        if access == "write" and not found.can_write(who):
            raise permission_denied(file_id if self.surface == "drive" else None)
        return found


Handler = Callable[[Ctx], Awaitable[Any]]


def api(
    surface: Surface, access: Access, *, quota: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler into an endpoint with faults, authentication, scope and quota checks."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            emulator: Emulator = request.app.state.emulator
            state = emulator.state
            try:
                with state.lock:
                    decision = state.faults.decide(request.url.path)
                if decision.delay_s:
                    await asyncio.sleep(decision.delay_s)
                if decision.status is not None:
                    raise server_error(decision.status)
                identity = identify(request, state, strict=emulator.strict)
                if emulator.strict:
                    check_scope(identity, "drive" if surface == "drive" else "sheets", access)
                if quota and surface == "sheets":
                    user = identity.name if identity.via == "token" else None
                    with state.lock:
                        state.quotas.charge("Read" if access == "read" else "Write", user, state.clock())
                result = await handler(Ctx(request, emulator, identity, surface))
            except ApiError as err:
                return error_response(err, surface)
            if isinstance(result, Response):
                return result
            if result is None:
                return Response(status_code=204)
            return JSONResponse(result)

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap
