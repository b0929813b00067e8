"""Emulator-only endpoints under `/emulator/v1`: faults, quotas, accounts, keys, sharing, seeding, channels, reset.

They need no credentials (the emulator is meant for local use; bind it to 127.0.0.1). Also here: the
link-shared CSV export `GET /spreadsheets/d/{id}/export?format=csv&gid=N` that docs.google.com serves.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sheetstream.emulator.auth import issue_token
from sheetstream.emulator.drive import csv_of
from sheetstream.emulator.guard import Emulator
from sheetstream.emulator.seed import SeedError, load_seed
from sheetstream.emulator.sheets import spreadsheet_resource


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator  # type: ignore[no-any-return]


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


async def faults(request: Request) -> Response:
    """GET the fault settings, POST changes to them, DELETE to clear them."""
    state = _emulator(request).state
    try:
        with state.lock:
            if request.method == "POST":
                state.faults.configure(**await _json(request))
            elif request.method == "DELETE":
                state.faults.reset()
            return JSONResponse(state.faults.describe())
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))


async def quotas(request: Request) -> Response:
    """GET limits and current usage; POST new limits (read_per_user, read_per_project, ..., window_s)."""
    state = _emulator(request).state
    try:
        with state.lock:
            if request.method == "POST":
                state.quotas.configure(**await _json(request))
            return JSONResponse(
                {
                    **asdict(state.quotas.limits),
                    "used": {"read": state.quotas.used("Read"), "write": state.quotas.used("Write")},
                    "refused": state.quotas.refused,
                }
            )
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))


async def service_accounts(request: Request) -> Response:
    """POST {"email", "public_key_pem"}: accept JWT grants signed by this account's key."""
    try:
        body = await _json(request)
        email, key = str(body["email"]), str(body["public_key_pem"])
    except (KeyError, ValueError) as exc:
        return _bad(f"expected {{'email', 'public_key_pem'}}: {exc}")
    state = _emulator(request).state
    with state.lock:
        state.service_accounts[email] = key
    return JSONResponse({"email": email}, status_code=201)


async def api_keys(request: Request) -> Response:
    """POST {"key"}: accept this API key in strict mode."""
    try:
        key = str((await _json(request))["key"])
    except (KeyError, ValueError) as exc:
        return _bad(f"expected {{'key'}}: {exc}")
    state = _emulator(request).state
    with state.lock:
        state.api_keys.add(key)
    return JSONResponse({"key": key}, status_code=201)


async def tokens(request: Request) -> Response:
    """POST {"identity", "scopes"?}: an access token for an identity, without the JWT exchange."""
    try:
        body = await _json(request)
        identity = str(body["identity"])
    except (KeyError, ValueError) as exc:
        return _bad(f"expected {{'identity'}}: {exc}")
    scopes = body.get("scopes") or [
        "https://www.googleapis.com/auth/spreadsheets",
        "https://www.googleapis.com/auth/drive",
    ]
    token = issue_token(_emulator(request).state, identity, frozenset(scopes))
    return JSONResponse({"access_token": token, "token_type": "Bearer"}, status_code=201)


async def share(request: Request) -> Response:
    """POST {"identity", "role"}: share a file (identity "anyone" = link-shared for reading)."""
    state = _emulator(request).state
    file_id = request.path_params["file_id"]
    try:
        body = await _json(request)
        role = body.get("role", "reader")
        if role not in ("reader", "writer", "owner"):
            raise ValueError(f"role must be reader, writer or owner, not {role!r}")
        state.share(file_id, str(body["identity"]), role)
    except KeyError:
        return _bad(
            f"no file {file_id!r}" if file_id not in state.files else "expected {'identity', 'role'}",
            404 if file_id not in state.files else 400,
        )
    except ValueError as exc:
        return _bad(str(exc))
    return JSONResponse({"file_id": file_id, "identity": body["identity"], "role": role})


async def seed(request: Request) -> Response:
    """POST a seed document (see sheetstream.emulator.seed); answers the created spreadsheet ids."""
    try:
        created = load_seed(_emulator(request).state, await _json(request))
    except (SeedError, ValueError, TypeError) as exc:
        return _bad(str(exc))
    return JSONResponse({"spreadsheets": created}, status_code=201)


async def spreadsheet(request: Request) -> Response:
    """GET a spreadsheet with its grid data, whoever owns it."""
    state = _emulator(request).state
    with state.lock:
        book = state.files.get(request.path_params["file_id"])
        if book is None or not book.is_spreadsheet:
            return _bad("no such spreadsheet", 404)
        return JSONResponse(spreadsheet_resource(book, with_data=True))


async def channels(request: Request) -> Response:
    """GET the live push channels and the notifications sent so far; POST {"delay_s"} to change coalescing."""
    hub = _emulator(request).hub
    if request.method == "POST":
        try:
            hub.delay_s = float((await _json(request))["delay_s"])
        except (KeyError, ValueError, TypeError) as exc:
            return _bad(f"expected {{'delay_s'}}: {exc}")
    return JSONResponse(
        {
            "delay_s": hub.delay_s,
            "channels": [
                c.resource() | {"address": c.address, "messages": c.message_number}
                for c in hub.channels.values()
            ],
            "deliveries": [asdict(d) for d in hub.deliveries],
        }
    )


async def reset(request: Request) -> Response:
    """POST: forget every file, change, token, fault and quota count."""
    _emulator(request).state.reset()
    return Response(status_code=204)


async def health(request: Request) -> Response:
    """GET: the emulator is up; its mode."""
    return JSONResponse({"ok": True, "strict": _emulator(request).strict})


async def export(request: Request) -> Response:
    """GET /spreadsheets/d/{id}/export?format=csv&gid=N: link-shared CSV export (strict mode: link sharing needed)."""
    emulator = _emulator(request)
    if request.query_params.get("format", "csv") != "csv":
        return PlainTextResponse("Only format=csv is emulated.", status_code=400)
    with emulator.state.lock:
        book = emulator.state.files.get(request.path_params["file_id"])
        if book is None or not book.is_spreadsheet:
            return PlainTextResponse("Not Found", status_code=404)
        if emulator.strict and not book.anyone_with_link:
            return PlainTextResponse("Unauthorized", status_code=401)
        gid = request.query_params.get("gid")
        try:
            text = csv_of(book, int(gid) if gid else None)
        except (KeyError, ValueError):
            return PlainTextResponse("Bad Request", status_code=400)
    return Response(text, media_type="text/csv; charset=utf-8")


ROUTES = [
    Route("/emulator/v1/health", health, methods=["GET"]),
    Route("/emulator/v1/reset", reset, methods=["POST"]),
    Route("/emulator/v1/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/emulator/v1/quotas", quotas, methods=["GET", "POST"]),
    Route("/emulator/v1/service-accounts", service_accounts, methods=["POST"]),
    Route("/emulator/v1/api-keys", api_keys, methods=["POST"]),
    Route("/emulator/v1/tokens", tokens, methods=["POST"]),
    Route("/emulator/v1/seed", seed, methods=["POST"]),
    Route("/emulator/v1/files/{file_id}/share", share, methods=["POST"]),
    Route("/emulator/v1/spreadsheets/{file_id}", spreadsheet, methods=["GET"]),
    Route("/emulator/v1/channels", channels, methods=["GET", "POST"]),
    Route("/spreadsheets/d/{file_id}/export", export, methods=["GET"]),
]
