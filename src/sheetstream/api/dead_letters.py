"""`/v1/dead-letters`: list, read, replay and delete the change sets and hints that kept failing.

A letter's payload is what handling it again needs: a change set (cell values of the source, never credentials)
or a hint (its origin and spreadsheet id). Replaying publishes the change set on the bus again, or handles the
hint again (runtime/dead_letters.py); a replay that fails is a 409 `replay_failed` naming the error, and the
letter stays, with one more attempt.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from sheetstream.api.auth import AUTH_RESPONSES, require_scope
from sheetstream.api.context import PageCursor, PageLimit, ServicesDep, now_of
from sheetstream.api.errors import ApiError
from sheetstream.api.schemas import ErrorOut
from sheetstream.core.codec import format_at
from sheetstream.errors import DeadLetterNotFound
from sheetstream.runtime.dead_letters import DeadLetters, ReplayFailed
from sheetstream.stores.base import DeadLetter


class DeadLetterSummaryOut(BaseModel):
    """A dead letter as lists show it: what failed, how often, and the last error."""

    id: str
    kind: Literal["changeset", "hint"] = Field(
        description="`changeset`: a change set the gateways could not "
        "dispatch; `hint`: a hook's hint whose handling failed."
    )
    source: str | None = Field(description="The change set's source; null for hints.")
    error: str = Field(description="The last error, as `Type: message`.")
    attempts: int = Field(description="Tries so far, replays included.")
    first_failed_at: str = Field(description="When it was first set aside (ISO-8601 UTC).")
    last_failed_at: str = Field(description="When it last failed (ISO-8601 UTC).")


class DeadLetterOut(DeadLetterSummaryOut):
    """A dead letter with its payload."""

    payload: dict[str, Any] = Field(
        description="What handling it again needs: the change set (as in the change log) for `changeset`, "
        "`{origin, spreadsheet_id}` for `hint`. An undecodable bus message shows as `{entry, data}`."
    )


class DeadLetterPage(BaseModel):
    """One page of `GET /v1/dead-letters`, newest first."""

    items: list[DeadLetterSummaryOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class ReplayOut(BaseModel):
    """Answer of a replay that worked: the letter is deleted."""

    replayed: Literal[True]


LetterId = Annotated[str, Path(description="The dead letter's id.")]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No dead letter with this id."}
}


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "kind": letter.kind,
        "source": letter.source,
        "error": letter.error,
        "attempts": letter.attempts,
        "first_failed_at": format_at(letter.first_failed_at),
        "last_failed_at": format_at(letter.last_failed_at),
    }


def _not_found(exc: DeadLetterNotFound) -> ApiError:
    return ApiError(404, "not_found", str(exc), {"id": exc.letter_id})


def dead_letters_router() -> APIRouter:
    """The `/v1/dead-letters` routes; they read `Services` from `request.app.state.services`."""
    router = APIRouter(
        prefix="/v1/dead-letters",
        tags=["dead letters"],
        responses={
            422: {"model": ErrorOut, "description": "Invalid parameters; `details` lists them."},
            **AUTH_RESPONSES,
        },
    )
    read, write = [require_scope("read")], [require_scope("write")]

    @router.get(
        "",
        response_model=DeadLetterPage,
        response_model_exclude_unset=True,
        summary="List dead letters",
        dependencies=read,
    )
    async def list_dead_letters(
        services: ServicesDep,
        limit: PageLimit = 100,
        cursor: PageCursor = None,
    ) -> DeadLetterPage:
        """Dead letters, newest first, a page at a time (without their payloads)."""
        try:
            letters, next_cursor = await services.store.list_dead_letters(limit=limit, cursor=cursor)
        except ValueError:
            raise ApiError(
                422,
                "validation_error",
                "invalid request: query.cursor: not a cursor from this API; start again without it",
                [{"field": "query.cursor", "message": "not a cursor returned by GET /v1/dead-letters"}],
            ) from None
        page = DeadLetterPage(items=[DeadLetterSummaryOut(**_summary(letter)) for letter in letters])
        if next_cursor is not None:
            page.next_cursor = next_cursor
        return page

    @router.get(
        "/{letter_id}",
        response_model=DeadLetterOut,
        summary="Read a dead letter",
        responses=_NOT_FOUND,
        dependencies=read,
    )
    async def get_dead_letter(letter_id: LetterId, services: ServicesDep) -> DeadLetterOut:
        """The letter with its payload and last error."""
        try:
            letter = await services.store.get_dead_letter(letter_id)
        except DeadLetterNotFound as exc:
            raise _not_found(exc) from None
        return DeadLetterOut(**_summary(letter), payload=letter.payload)

    @router.post(
        "/{letter_id}/replay",
        response_model=ReplayOut,
        summary="Replay a dead letter",
        dependencies=write,
        responses={
            **_NOT_FOUND,
            409: {
                "model": ErrorOut,
                "description": "`replay_failed`: handling it failed again; the letter stays with one more attempt "
                "and this error (`details`: `id`, `error`, `attempts`).",
            },
        },
    )
    async def replay_dead_letter(letter_id: LetterId, request: Request, services: ServicesDep) -> ReplayOut:
        """Handle the letter again: publish its change set on the bus, or handle its hint; then delete it."""
        dead_letters = DeadLetters.of(services, clock=lambda: now_of(request, services))
        try:
            await dead_letters.replay(letter_id)
        except DeadLetterNotFound as exc:
            raise _not_found(exc) from None
        except ReplayFailed as exc:
            details = {"id": exc.letter.id, "error": exc.error, "attempts": exc.letter.attempts}
            message = f"replaying dead letter {letter_id!r} failed: {exc.error}"
            raise ApiError(409, "replay_failed", message, details) from None
        return ReplayOut(replayed=True)

    @router.delete(
        "/{letter_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a dead letter",
        responses=_NOT_FOUND,
        dependencies=write,
    )
    async def delete_dead_letter(letter_id: LetterId, services: ServicesDep) -> Response:
        """Drop the letter without handling it again."""
        try:
            await services.store.delete_dead_letter(letter_id)
        except DeadLetterNotFound as exc:
            raise _not_found(exc) from None
        return Response(status_code=204)

    return router
