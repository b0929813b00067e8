"""Hint receivers: `POST /v1/hooks/drive` (Drive push notifications) and `POST /v1/hooks/apps-script`.

A hint makes the next read of the spreadsheet's sources happen at once (within the quota budget and each
source's `min_interval_s`); it never carries data, so a forged or lost hint costs at most one read or a delay.

- Drive notifications carry no body, only `X-Goog-*` headers. The channel token (`X-Goog-Channel-Token`) names
  the spreadsheet and is signed with the hook secret (`runtime/hints.py`), so it is checked without any state.
  `sync` messages (sent when a channel opens) are acknowledged and ignored.
- Apps Script (docs/apps-script.gs) posts `{"spreadsheet_id", "change_type"?}` with the shared secret in the
  `X-Sheetstream-Secret` header (or a `secret` field). The hook is off until a secret is configured.

Handling a hint is tried `max_deliveries` times; a hint that still fails becomes a `hint` dead letter
(runtime/dead_letters.py), and the answer names it in `dead_letter`.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from sheetstream.api.context import now_of, services_of
from sheetstream.api.errors import ApiError
from sheetstream.api.schemas import ErrorOut
from sheetstream.runtime.dead_letters import DeadLetters, Hint
from sheetstream.runtime.hints import verify_channel_token


class HintOut(BaseModel):
    """Answer of a hook: the sources asked to read now."""

    sources: list[str] = Field(description="Ids of the sources that read this spreadsheet (and will read it now).")
    dead_letter: str | None = Field(
        default=None, description="Handling the hint kept failing: the id of the dead letter it was set aside as."
    )


class AppsScriptHint(BaseModel):
    """What the Apps Script trigger sends."""

    spreadsheet_id: str = Field(min_length=1, description="`SpreadsheetApp.getActive().getId()`.")
    change_type: str | None = Field(default=None, description="onChange's `changeType` (EDIT, INSERT_ROW …).")
    secret: str | None = Field(default=None, description="The shared secret, when it cannot go in the header.")


_UNAUTHORIZED: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "Bad token or secret."},
    422: {"model": ErrorOut, "description": "Invalid JSON, headers or fields; `details` lists them."},
}


async def _hint(request: Request, origin: str, spreadsheet_id: str) -> HintOut:
    services = services_of(request)
    dead_letters = DeadLetters.of(services, clock=lambda: now_of(request, services))
    handled = await dead_letters.handle_hint(Hint(origin, spreadsheet_id))
    if isinstance(handled, list):
        return HintOut(sources=handled)
    return HintOut(sources=[], dead_letter=handled.id)


def hooks_router() -> APIRouter:
    """The hint receiver routes."""
    router = APIRouter(prefix="/v1/hooks", tags=["hooks"])

    @router.post(
        "/drive",
        response_model=HintOut,
        response_model_exclude_unset=True,
        responses=_UNAUTHORIZED,
        summary="Drive push notification",
    )
    async def drive_notification(
        request: Request,
        x_goog_channel_token: Annotated[str | None, Header()] = None,
        x_goog_resource_state: Annotated[str | None, Header()] = None,
    ) -> HintOut:
        """Read the spreadsheet of this push channel now (Google posts here; `sync` messages are ignored)."""
        secret = getattr(services_of(request).settings, "hook_secret", "")
        spreadsheet_id = verify_channel_token(secret, x_goog_channel_token)
        if spreadsheet_id is None:
            raise ApiError(401, "unauthorized", "unknown or forged Drive channel token")
        if x_goog_resource_state == "sync":
            return HintOut(sources=[])
        return await _hint(request, "drive_push", spreadsheet_id)

    @router.post(
        "/apps-script",
        status_code=202,
        response_model=HintOut,
        response_model_exclude_unset=True,
        responses={
            **_UNAUTHORIZED,
            503: {"model": ErrorOut, "description": "No Apps Script secret is configured: the hook is off."},
        },
        summary="Apps Script trigger",
    )
    async def apps_script_hint(
        request: Request,
        body: AppsScriptHint,
        x_sheetstream_secret: Annotated[str | None, Header()] = None,
    ) -> HintOut:
        """Read this spreadsheet now: called by an installable onEdit/onChange trigger (docs/apps-script.gs)."""
        expected = getattr(services_of(request).settings, "apps_script_secret", "")
        if not expected:
            raise ApiError(
                503, "unavailable", "the Apps Script hook is off: start the server with --apps-script-secret"
            )
        given = x_sheetstream_secret or body.secret or ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "wrong or missing Apps Script secret (X-Sheetstream-Secret)")
        return await _hint(request, "apps_script", body.spreadsheet_id)

    return router
