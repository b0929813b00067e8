"""`/v1/sources`: create, list, read, change and delete data sources; read their snapshot and change log.

Endpoints find the process's `Services` at `request.app.state.services` (see `api/context.py`), so one router
serves any app and the OpenAPI document can be built without a running store. Credentials never leave: answers
drop `config["credentials"]` and show every `config["headers"]` value as `***`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Path, Query, Request, Response

from sheetstream.api.auth import AUTH_RESPONSES, require_scope
from sheetstream.api.context import PageCursor, PageLimit, ServicesDep, now_of
from sheetstream.api.errors import ApiError
from sheetstream.api.schemas import (
    ChangesOut,
    ErrorOut,
    RefreshOut,
    SnapshotOut,
    SourceCreate,
    SourceOut,
    SourcePage,
    SourceStatusOut,
    SourceUpdate,
)
from sheetstream.core.codec import changeset_to_json, format_at, tabs_to_json
from sheetstream.stores.base import NewSource, SourceRecord

MASK = "***"
_CURSOR_PREFIX = "s1:"

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No source with this id."}}
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "Invalid JSON, parameters or config; `details` lists the fields."}
}
_NO_SECRET_KEY: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "`secret_key_required`: the config holds credentials or header values and the server has no "
        "key to encrypt them at rest (set SHEETSTREAM_SECRET_KEY).",
    }
}


SourceId = Annotated[str, Path(description="The source's id, as returned on creation.")]


def validate_source_config(kind: str, config: dict[str, Any]) -> None:
    """Check a kind and its config with the sources registry; ConfigError says what is wrong."""
    from sheetstream.sources.registry import validate_config

    validate_config(kind, config)


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as answers show it: no `credentials`, header values masked."""
    out = {key: value for key, value in config.items() if key != "credentials"}
    headers = out.get("headers")
    if isinstance(headers, dict):
        out["headers"] = dict.fromkeys(headers, MASK)
    return out


def merge_config(stored: dict[str, Any], sent: dict[str, Any]) -> dict[str, Any]:
    """The config to store when `sent` replaces `stored`.

    A masked header value (`***`) keeps the stored one and an absent `credentials` keeps the stored
    credentials, so that a config read from the API can be sent back unchanged; `"credentials": null` removes them.
    """
    out = dict(sent)
    if "credentials" not in out:
        if "credentials" in stored:
            out["credentials"] = stored["credentials"]
    elif out["credentials"] is None:
        del out["credentials"]
    headers, stored_headers = out.get("headers"), stored.get("headers")
    if isinstance(headers, dict) and isinstance(stored_headers, dict):
        out["headers"] = {
            name: stored_headers[name] if value == MASK and name in stored_headers else value
            for name, value in headers.items()
        }
    return out


def source_out(record: SourceRecord) -> SourceOut:
    """A store record as the API shows it."""
    status = record.status
    if record.paused and status.state != "paused":
        state_out = SourceStatusOut(state="paused", message=None, since=format_at(record.updated_at))
    else:
        # A resumed source keeps a stale "paused" until its next read: show it as waiting for that read.
        state = "pending" if status.state == "paused" and not record.paused else status.state
        since = format_at(status.since) if status.since is not None else None
        state_out = SourceStatusOut(state=state, message=status.message, since=since)
    return SourceOut(
        id=record.id,
        name=record.name,
        kind=record.kind,
        config=public_config(record.config),
        poll_interval_s=record.poll_interval_s,
        paused=record.paused,
        status=state_out,
        epoch=record.epoch,
        version=record.version,
        created_at=format_at(record.created_at),
        updated_at=format_at(record.updated_at),
    )


def encode_cursor(store_cursor: str) -> str:
    """An opaque, URL-safe page cursor wrapping the store's cursor."""
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + store_cursor).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The store's cursor inside `cursor`; ApiError 422 if it is not one this API handed out."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raw = ""
    if not raw.startswith(_CURSOR_PREFIX):
        raise ApiError(
            422,
            "validation_error",
            "invalid request: query.cursor: not a cursor from this API; start again without it",
            [{"field": "query.cursor", "message": "not a cursor returned by GET /v1/sources"}],
        )
    return raw[len(_CURSOR_PREFIX) :]


def _json(body: dict[str, Any]) -> Response:
    # Snapshots and change logs can be large: encode them once with orjson instead of re-validating them
    # through the response models, which only document the shape.
    return Response(orjson.dumps(body), media_type="application/json")


def sources_router() -> APIRouter:
    """The `/v1/sources` routes; they read `Services` from `request.app.state.services`."""
    # Every route lists the 422 so the schema shows our error shape instead of FastAPI's default one, and the
    # API key refusals; GET needs the `read` scope, every other method `write`.
    router = APIRouter(prefix="/v1/sources", tags=["sources"], responses={**_INVALID, **AUTH_RESPONSES})
    read, write = [require_scope("read")], [require_scope("write")]

    @router.post(
        "",
        status_code=201,
        response_model=SourceOut,
        summary="Create a source",
        dependencies=write,
        responses={201: {"description": "The source; `Location` is its URL."}, **_NO_SECRET_KEY},
    )
    async def create_source(
        body: SourceCreate, request: Request, response: Response, services: ServicesDep
    ) -> SourceOut:
        """Register a data source; the monitor starts watching it unless it is paused."""
        config = merge_config({}, body.config)
        validate_source_config(body.kind, config)
        poll_interval_s = body.poll_interval_s or services.settings.default_poll_interval_s
        new = NewSource(
            kind=body.kind, config=config, name=body.name, poll_interval_s=poll_interval_s, paused=body.paused
        )
        record = await services.store.create_source(new, now=now_of(request, services))
        services.monitor.reload(record.id)
        response.headers["Location"] = f"/v1/sources/{quote(record.id, safe='')}"
        return source_out(record)

    @router.get(
        "",
        response_model=SourcePage,
        response_model_exclude_unset=True,
        summary="List sources",
        dependencies=read,
    )
    async def list_sources(
        services: ServicesDep,
        limit: PageLimit = 100,
        cursor: PageCursor = None,
    ) -> SourcePage:
        """Sources ordered by id, a page at a time."""
        store_cursor = decode_cursor(cursor) if cursor is not None else None
        records, next_cursor = await services.store.list_sources(limit=limit, cursor=store_cursor)
        page = SourcePage(items=[source_out(r) for r in records])
        if next_cursor is not None:
            page.next_cursor = encode_cursor(next_cursor)
        return page

    @router.get(
        "/{source_id}", response_model=SourceOut, summary="Read a source", responses=_NOT_FOUND, dependencies=read
    )
    async def get_source(source_id: SourceId, services: ServicesDep) -> SourceOut:
        """The source with its status, epoch and version."""
        return source_out(await services.store.get_source(source_id))

    @router.patch(
        "/{source_id}",
        response_model=SourceOut,
        summary="Change a source",
        dependencies=write,
        responses={**_NOT_FOUND, **_NO_SECRET_KEY},
    )
    async def update_source(
        source_id: SourceId, body: SourceUpdate, request: Request, services: ServicesDep
    ) -> SourceOut:
        """Change name, config, poll interval and/or paused; fields not sent stay as they are."""
        sent = body.model_fields_set
        changes: dict[str, Any] = {}
        if "name" in sent:
            changes["name"] = body.name
        if "config" in sent:
            record = await services.store.get_source(source_id)
            config = merge_config(record.config, body.config)
            validate_source_config(record.kind, config)
            changes["config"] = config
        if "poll_interval_s" in sent:
            changes["poll_interval_s"] = body.poll_interval_s
        if "paused" in sent:
            changes["paused"] = body.paused
        if not changes:
            return source_out(await services.store.get_source(source_id))
        record = await services.store.update_source(source_id, changes, now=now_of(request, services))
        services.monitor.reload(source_id)
        return source_out(record)

    @router.delete(
        "/{source_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a source",
        dependencies=write,
        responses=_NOT_FOUND,
    )
    async def delete_source(source_id: SourceId, services: ServicesDep) -> Response:
        """Delete the source with its snapshot and change log; the monitor stops watching it."""
        await services.store.delete_source(source_id)
        services.monitor.reload(source_id)
        return Response(status_code=204)

    @router.get(
        "/{source_id}/snapshot",
        response_model=SnapshotOut,
        summary="Read the latest snapshot",
        responses=_NOT_FOUND,
        dependencies=read,
    )
    async def get_snapshot(source_id: SourceId, services: ServicesDep) -> Response:
        """The source's tabs as of its latest version (version 0 and no tabs before the first read)."""
        versioned = await services.store.snapshot(source_id)
        return _json(
            {
                "source": source_id,
                "epoch": versioned.epoch,
                "version": versioned.version,
                "tabs": tabs_to_json(versioned.snapshot),
            }
        )

    @router.get(
        "/{source_id}/changes",
        response_model=ChangesOut,
        summary="Read the change log",
        dependencies=read,
        responses=_NOT_FOUND,
    )
    async def get_changes(
        source_id: SourceId,
        services: ServicesDep,
        since: Annotated[int, Query(ge=0, description="Answer the changes after this version.")] = 0,
        epoch: Annotated[
            str | None, Query(description="The epoch `since` belongs to; the source's current one if omitted.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many change sets.")] = 1000,
    ) -> Response:
        """Change sets after `since`, oldest first; `recovered: false` means: fetch the snapshot instead."""
        if epoch is None:
            epoch = (await services.store.get_source(source_id)).epoch
        result = await services.store.changes_since(source_id, epoch, since, limit=limit)
        changes = [changeset_to_json(cs) for cs in result.changes] if result.recovered else []
        return _json(
            {
                "source": source_id,
                "epoch": result.epoch,
                "version": result.version,
                "recovered": result.recovered,
                "changes": changes,
            }
        )

    @router.post(
        "/{source_id}/refresh",
        status_code=202,
        response_model=RefreshOut,
        summary="Read a source now",
        dependencies=write,
        responses=_NOT_FOUND,
    )
    async def refresh_source(source_id: SourceId, services: ServicesDep) -> RefreshOut:
        """Ask the monitor to read the source as soon as possible; changes then arrive as usual."""
        await services.store.get_source(source_id)
        services.monitor.refresh(source_id)
        return RefreshOut(source=source_id, status="queued")

    return router
