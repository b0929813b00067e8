"""Drive v3: files (get, list, create, update, delete, export, permissions), changes, and push channels.

`version` goes up with every write to a file and `modifiedTime` follows the emulator's clock. The change log
(`changes.list`) holds one entry per write; a page lists each changed file once, with its latest state.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from sheetstream.emulator.cells import render
from sheetstream.emulator.errors import ApiError
from sheetstream.emulator.fields import FieldMaskError, apply_fields, parse_fields
from sheetstream.emulator.guard import Ctx, api
from sheetstream.emulator.model import DriveFile
from sheetstream.emulator.push import channel_from_body
from sheetstream.emulator.state import rfc3339

DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
_CLAUSE = re.compile(
    r"""\s*(?:(?P<field>mimeType|name|trashed)\s*(?P<op>=|!=|contains)\s*(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|true|false)\s*)""",
    re.IGNORECASE,
)


def invalid(message: str, location: str) -> ApiError:
    """400 as Drive words a bad parameter."""
    return ApiError(400, message, reason="invalid", location=location, location_type="parameter")


def file_resource(drive_file: DriveFile) -> dict[str, Any]:
    """Every File field the emulator knows."""
    out: dict[str, Any] = {
        "kind": "drive#file",
        "id": drive_file.id,
        "name": drive_file.name,
        "mimeType": drive_file.mime_type,
        "starred": False,
        "trashed": drive_file.trashed,
        "explicitlyTrashed": drive_file.trashed,
        "parents": ["root"],
        "version": str(drive_file.version),
        "createdTime": rfc3339(drive_file.created),
        "modifiedTime": rfc3339(drive_file.modified),
        "shared": bool(drive_file.readers or drive_file.writers or drive_file.anyone_with_link),
    }
    if drive_file.is_spreadsheet:
        out["webViewLink"] = f"https://docs.google.com/spreadsheets/d/{drive_file.id}/edit?usp=drivesdk"
    return out


def _mask(ctx: Ctx, default: str) -> Any:
    text = ctx.param("fields") or default
    try:
        return parse_fields(text)
    except FieldMaskError as exc:
        raise invalid(f"Invalid field selection {text}", "fields") from exc


def _visible(ctx: Ctx, drive_file: DriveFile) -> bool:
    if not ctx.emulator.strict:
        return True
    who = ctx.identity.name
    return who == drive_file.owner or who in drive_file.readers or who in drive_file.writers


@api("drive", "read")
async def files_get(ctx: Ctx) -> Any:
    """GET /drive/v3/files/{fileId}."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], spreadsheet=False)
    if ctx.param("alt") == "media":
        raise ApiError(
            403,
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            reason="fileNotDownloadable",
            location="alt",
        )
    with ctx.state.lock:
        return apply_fields(_mask(ctx, DEFAULT_FILE_FIELDS), file_resource(drive_file))


def _matches(query: str | None, drive_file: DriveFile) -> bool:
    if not query or not query.strip():
        return True
    for part in re.split(r"\s+and\s+", query.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise invalid("Invalid Value", "q")
        field, op, value = m.group("field").lower(), m.group("op").lower(), m.group("value")
        if field == "trashed":
            actual: Any = drive_file.trashed
            wanted: Any = value.lower() == "true"
        else:
            actual = drive_file.mime_type if field == "mimetype" else drive_file.name
            wanted = re.sub(r"\\(.)", r"\1", value[1:-1])
        ok = wanted.lower() in actual.lower() if op == "contains" else actual == wanted
        if ok == (op == "!="):
            return False
    return True


@api("drive", "read")
async def files_list(ctx: Ctx) -> Any:
    """GET /drive/v3/files?q=...: the caller's files, filtered on mimeType, name and trashed."""
    mask = _mask(ctx, "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)")
    try:
        size = min(max(int(ctx.param("pageSize") or 100), 1), 1000)
        offset = int(ctx.param("pageToken") or 0)
    except ValueError as exc:
        raise invalid("Invalid Value", "pageToken") from exc
    query = ctx.param("q")
    with ctx.state.lock:
        found = [f for f in ctx.state.files.values() if _visible(ctx, f) and _matches(query, f)]
        found.sort(key=lambda f: (-f.modified, f.id))
        page = found[offset : offset + size]
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [file_resource(f) for f in page],
        }
        if offset + size < len(found):
            out["nextPageToken"] = str(offset + size)
    return apply_fields(mask, out)


@api("drive", "write")
async def files_create(ctx: Ctx) -> Any:
    """POST /drive/v3/files: metadata only; a spreadsheet mimeType makes an empty spreadsheet (as gspread does)."""
    body = await ctx.body()
    name = str(body.get("name") or "Untitled")
    mime_type = str(body.get("mimeType") or "application/octet-stream")
    drive_file = ctx.state.create_file(name, mime_type, owner=ctx.identity.name)
    with ctx.state.lock:
        return apply_fields(_mask(ctx, DEFAULT_FILE_FIELDS), file_resource(drive_file))


@api("drive", "write")
async def files_update(ctx: Ctx) -> Any:
    """PATCH /drive/v3/files/{fileId}: rename, trash, untrash."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], "write", spreadsheet=False)
    body = await ctx.body()
    with ctx.state.lock:
        if "name" in body:
            drive_file.name = str(body["name"])
            ctx.state.commit(drive_file, "properties")
        if "trashed" in body and bool(body["trashed"]) != drive_file.trashed:
            drive_file.trashed = bool(body["trashed"])
            ctx.state.commit(drive_file, "trash" if drive_file.trashed else "untrash")
        return apply_fields(_mask(ctx, DEFAULT_FILE_FIELDS), file_resource(drive_file))


@api("drive", "write")
async def files_delete(ctx: Ctx) -> None:
    """DELETE /drive/v3/files/{fileId}: only the owner may (204)."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], "write", spreadsheet=False)
    if ctx.emulator.strict and ctx.identity.name != drive_file.owner:
        raise ApiError(
            403,
            f"The user does not have sufficient permissions for file {drive_file.id}.",
            reason="insufficientFilePermissions",
        )
    ctx.state.delete_file(drive_file.id)
    return None


def csv_of(drive_file: DriveFile, gid: int | None = None) -> str:
    """A tab as CSV, the way Google's export writes it: formatted values, rows padded to the data's width."""
    tabs = drive_file.tabs()
    sheet = tabs[0] if gid is None else drive_file.sheet_by_id(gid)
    if sheet is None:
        raise KeyError(gid)
    rows, cols = sheet.data_extent()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for r in range(rows):
        writer.writerow(
            ["" if (v := render(sheet.get(r, c), "FORMATTED_VALUE")) is None else v for c in range(cols)]
        )
    return out.getvalue()


@api("drive", "read")
async def files_export(ctx: Ctx) -> Response:
    """GET /drive/v3/files/{fileId}/export?mimeType=text/csv: the first tab as CSV."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], spreadsheet=True)
    if ctx.param("mimeType") != "text/csv":
        raise invalid("The requested conversion is not supported.", "convertTo")
    with ctx.state.lock:
        return Response(csv_of(drive_file), media_type="text/csv")


@api("drive", "write")
async def permissions_create(ctx: Ctx) -> Any:
    """POST /drive/v3/files/{fileId}/permissions: share with a user (`emailAddress`) or `anyone`."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], "write", spreadsheet=False)
    body = await ctx.body()
    kind, role = body.get("type"), body.get("role")
    if role not in ("reader", "commenter", "writer", "owner"):
        raise invalid("The permission role field is required.", "permission.role")
    if kind == "anyone":
        ctx.state.share(drive_file.id, "anyone")
        return {"kind": "drive#permission", "id": "anyoneWithLink", "type": "anyone", "role": role}
    email = body.get("emailAddress")
    if kind not in ("user", "group") or not email:
        raise invalid("The permission type field is required.", "permission.type")
    ctx.state.share(
        drive_file.id, str(email), "writer" if role == "writer" else "owner" if role == "owner" else "reader"
    )
    return {
        "kind": "drive#permission",
        "id": hashlib.sha256(str(email).encode()).hexdigest()[:20],
        "type": kind,
        "role": role,
    }


@api("drive", "read")
async def start_page_token(ctx: Ctx) -> Any:
    """GET /drive/v3/changes/startPageToken."""
    return {"kind": "drive#startPageToken", "startPageToken": str(ctx.state.next_change_number())}


def _page_token(ctx: Ctx) -> int:
    text = ctx.param("pageToken")
    if not text:
        raise ApiError(
            400,
            "The query parameter 'pageToken' is required.",
            reason="required",
            location="pageToken",
            location_type="parameter",
        )
    try:
        number = int(text)
    except ValueError as exc:
        raise invalid(f"Invalid Value: pageToken {text}", "pageToken") from exc
    if number < 1 or number > ctx.state.next_change_number():
        raise invalid(f"Invalid Value: pageToken {text}", "pageToken")
    return number


@api("drive", "read")
async def changes_list(ctx: Ctx) -> Any:
    """GET /drive/v3/changes?pageToken=N: files changed since N that the caller can see, each once per page."""
    start = _page_token(ctx)
    mask = _mask(
        ctx,
        "kind,nextPageToken,newStartPageToken,changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))",
    )
    size = min(max(int(ctx.param("pageSize") or 100), 1), 1000)
    state = ctx.state
    with state.lock:
        events = state.changes[start - 1 :]
        listed: dict[str, dict[str, Any]] = {}
        next_number = start + len(events)
        for event in events:
            drive_file = state.files.get(event.file_id)
            if drive_file is not None and not _visible(ctx, drive_file):
                continue
            if event.file_id not in listed and len(listed) == size:
                next_number = event.number
                break
            change: dict[str, Any] = {
                "kind": "drive#change",
                "changeType": "file",
                "time": rfc3339(event.time),
                "removed": drive_file is None,
                "fileId": event.file_id,
            }
            if drive_file is not None:
                change["file"] = file_resource(drive_file)
            listed.pop(event.file_id, None)
            listed[event.file_id] = change
        out: dict[str, Any] = {"kind": "drive#changeList", "changes": list(listed.values())}
        if next_number < state.next_change_number():
            out["nextPageToken"] = str(next_number)
        else:
            out["newStartPageToken"] = str(next_number)
    return apply_fields(mask, out)


@api("drive", "read")
async def changes_watch(ctx: Ctx) -> Any:
    """POST /drive/v3/changes/watch?pageToken=N: a channel told of every change the caller can see."""
    _page_token(ctx)
    body = await ctx.body()
    channel = channel_from_body(ctx, body, kind="changes", file_id=None)
    return ctx.emulator.hub.watch(channel)


@api("drive", "read")
async def files_watch(ctx: Ctx) -> Any:
    """POST /drive/v3/files/{fileId}/watch: a channel told of every change to one file."""
    drive_file = ctx.file(ctx.request.path_params["file_id"], spreadsheet=False)
    body = await ctx.body()
    channel = channel_from_body(ctx, body, kind="file", file_id=drive_file.id)
    return ctx.emulator.hub.watch(channel)


@api("drive", "read")
async def channels_stop(ctx: Ctx) -> None:
    """POST /drive/v3/channels/stop {"id", "resourceId"} (204)."""
    body = await ctx.body()
    if not ctx.emulator.hub.stop(str(body.get("id", "")), str(body.get("resourceId", ""))):
        raise ApiError(
            404, f"Channel '{body.get('id')}' not found for project '000000000000'", reason="notFound"
        )
    return None


ROUTES = [
    Route("/drive/v3/files", files_list, methods=["GET"]),
    Route("/drive/v3/files", files_create, methods=["POST"]),
    Route("/drive/v3/files/{file_id}", files_get, methods=["GET"]),
    Route("/drive/v3/files/{file_id}", files_update, methods=["PATCH"]),
    Route("/drive/v3/files/{file_id}", files_delete, methods=["DELETE"]),
    Route("/drive/v3/files/{file_id}/export", files_export, methods=["GET"]),
    Route("/drive/v3/files/{file_id}/permissions", permissions_create, methods=["POST"]),
    Route("/drive/v3/files/{file_id}/watch", files_watch, methods=["POST"]),
    Route("/drive/v3/changes/startPageToken", start_page_token, methods=["GET"]),
    Route("/drive/v3/changes", changes_list, methods=["GET"]),
    Route("/drive/v3/changes/watch", changes_watch, methods=["POST"]),
    Route("/drive/v3/channels/stop", channels_stop, methods=["POST"]),
]
