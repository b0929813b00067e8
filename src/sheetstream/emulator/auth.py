"""Who is calling: bearer tokens, API keys, and the OAuth2 token endpoint for service-account JWT grants.

Default (local) mode accepts any bearer token and any API key; a token this emulator issued names its service
account, any other token is its own user. Strict mode accepts only tokens from `/token` (JWT signature checked
against the account's registered public key, scopes enforced) and configured API keys, and checks sharing.
A JWT's `iat`/`exp` are checked against the wall clock: the client stamps them from its own clock.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from google.auth import exceptions as google_exceptions
from google.auth import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

from sheetstream.emulator.errors import ApiError, invalid_api_key, unauthenticated
from sheetstream.emulator.state import EmulatorState, Token

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3600
SCOPE = "https://www.googleapis.com/auth/"
# Which scopes let a token read or write each API (Google's own table, reduced to what the emulator serves).
SCOPES = {
    ("sheets", "read"): {"spreadsheets", "spreadsheets.readonly", "drive", "drive.readonly", "drive.file"},
    ("sheets", "write"): {"spreadsheets", "drive", "drive.file"},
    ("drive", "read"): {"drive", "drive.readonly", "drive.file", "drive.metadata", "drive.metadata.readonly"},
    ("drive", "write"): {"drive", "drive.file"},
}


@dataclass(frozen=True)
class Identity:
    """A caller: `name` is the service-account email, a user derived from the token, or "key:<key>"."""

    name: str
    via: Literal["token", "key"]
    scopes: frozenset[str] | None = None  # None: not checked


def identify(request: Request, state: EmulatorState, *, strict: bool) -> Identity:
    """The caller of an API request, or the 401/400 ApiError Google would answer."""
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    bearer = bearer or request.query_params.get("access_token") or request.query_params.get("oauth_token")
    key = request.query_params.get("key") or request.headers.get("x-goog-api-key")
    if bearer:
        with state.lock:
            token = state.tokens.get(bearer)
        if token is not None and token.expires > state.clock():
            return Identity(token.identity, "token", token.scopes if strict else None)
        if strict:
            raise unauthenticated(missing=False)
        return Identity("user-" + hashlib.sha256(bearer.encode()).hexdigest()[:12], "token")
    if key:
        if strict and key not in state.api_keys:
            raise invalid_api_key()
        return Identity(f"key:{key}", "key")
    raise unauthenticated(missing=not header)


def check_scope(
    identity: Identity, api: Literal["sheets", "drive"], access: Literal["read", "write"]
) -> None:
    """403 ACCESS_TOKEN_SCOPE_INSUFFICIENT when the token's scopes do not cover the call (strict mode only)."""
    if identity.scopes is None:
        return
    allowed = SCOPES[(api, access)]
    if any(scope.removeprefix(SCOPE) in allowed for scope in identity.scopes):
        return
    raise ApiError(
        403,
        "Request had insufficient authentication scopes.",
        reason="insufficientPermissions",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": f"{api}.googleapis.com"},
            }
        ],
        drive_message="Insufficient Permission: Request had insufficient authentication scopes.",
    )


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def issue_token(state: EmulatorState, identity: str, scopes: frozenset[str]) -> str:
    """Mint an access token for `identity` (also used by tests that skip the JWT dance)."""
    token = "ya29.emulator-" + secrets.token_urlsafe(32)
    with state.lock:
        state.tokens[token] = Token(identity, state.clock() + TOKEN_LIFETIME_S, scopes)
    return token


async def token_endpoint(request: Request, state: EmulatorState, *, strict: bool) -> JSONResponse:
    """`POST /token`: exchange a service-account JWT assertion for an access token."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant_type = form.get("grant_type", "")
    if grant_type != JWT_GRANT:
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")
    assertion = form.get("assertion", "")
    try:
        claims = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
    except (ValueError, google_exceptions.GoogleAuthError):
        return _oauth_error("invalid_request", "Invalid JWT: the assertion is not a signed JWT.")
    email = str(claims.get("iss", ""))
    with state.lock:
        public_key = state.service_accounts.get(email)
    if public_key is None and strict:
        return _oauth_error("invalid_grant", "Invalid grant: account not found")
    if public_key is not None:
        try:
            # Checks the RS256 signature and the iat/exp window (google-auth allows no skew by default).
            jwt.decode(assertion, certs=public_key, verify=True, clock_skew_in_seconds=60)  # type: ignore[no-untyped-call]
        except (ValueError, google_exceptions.GoogleAuthError) as exc:
            reason = "Invalid JWT Signature." if "signature" in str(exc).lower() else f"Invalid JWT: {exc}"
            return _oauth_error("invalid_grant", reason)
    if not str(claims.get("aud", "")).endswith("/token"):
        return _oauth_error("invalid_grant", "Invalid JWT: Failed audience check.")
    scopes = frozenset(str(claims.get("scope", "")).split())
    if strict and not scopes:
        return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    token = issue_token(state, email, scopes)
    return JSONResponse({"access_token": token, "expires_in": TOKEN_LIFETIME_S - 1, "token_type": "Bearer"})


def public_key_of(info: str | dict[str, str]) -> str:
    """The public key PEM of a service-account JSON (its private key), for registering with the emulator."""
    from cryptography.hazmat.primitives import serialization

    data = json.loads(info) if isinstance(info, str) else info
    private = serialization.load_pem_private_key(data["private_key"].encode(), password=None)
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
