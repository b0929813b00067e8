"""WebSocket connection tokens: JWTs that grant a connection some sources until they expire.

A token is a JWT signed with one of the keys the server is configured with (docs/security.md):

- HS256 with `jwt_secret` (at least 32 bytes);
- RS256 with `jwt_public_key` (PEM text, or the path of a PEM file), or with the key of a JWKS document at
  `jwt_jwks_url` chosen by the token's `kid` (fetched in a thread, cached for five minutes). With both, a token
  that names a `kid` is checked against the JWKS, one without against the PEM key.

Only the configured algorithms are accepted: `alg: none`, an HS256 token on a server with only RS256 keys, or an
HS256 token "signed" with the RS256 public key are all refused. Required claims: `exp` and `sources` (a list of
source ids, or `["*"]` for every source); `aud` and `iss` when `jwt_audience` / `jwt_issuer` are set; `sub`, if
present, names the holder in log lines. Tokens are never logged.

    verifier = TokenVerifier(settings)
    grant = await verifier.verify(token)  # or TokenRejected("expired"), TokenRejected("bad signature") ...
    grant.allows("Xq3v0aZ1b2c")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from sheetstream.errors import ConfigError
from sheetstream.runtime.settings import Settings

HS256 = "HS256"
RS256 = "RS256"
MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash are guessable offline from one token (RFC 7518, 3.2)."""
ALL_SOURCES = "*"
JWKS_LIFESPAN_S = 300.0
JWKS_TIMEOUT_S = 10.0
NO_KEY = (
    "no token can be verified: the server has no token key (--jwt-secret, --jwt-public-key or --jwt-jwks-url)"
)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a connection may do: follow `sources` (None: every source) until `expires_at` (Unix time; None: ever)."""

    subject: str
    sources: frozenset[str] | None
    expires_at: float | None

    def allows(self, source: str) -> bool:
        """Whether this grant covers `source`."""
        return self.sources is None or source in self.sources


ANONYMOUS = Grant("anonymous", None, None)
"""The grant of a connection without a token on a server that accepts anonymous connections."""


class TokenRejected(Exception):
    """A token was refused; `reason` is short, safe to show the client and to log (it never holds the token)."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        """The token may be fine but could not be checked now (the JWKS endpoint is down): retry later."""


class TokenVerifier:
    """Verifies connection tokens with the keys of `settings`; `configured` is False when it has none."""

    def __init__(self, settings: Settings, *, jwks_client: jwt.PyJWKClient | None = None) -> None:
        secret = settings.jwt_secret
        if secret and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"jwt_secret is {len(secret.encode())} bytes: an HS256 key needs at least {MIN_SECRET_BYTES} "
                "(make one with: python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        self._secret = secret or None
        self._public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        if jwks_client is None and settings.jwt_jwks_url:
            try:
                jwks_client = jwt.PyJWKClient(
                    settings.jwt_jwks_url, lifespan=JWKS_LIFESPAN_S, timeout=JWKS_TIMEOUT_S
                )
            except jwt.PyJWKClientError as exc:
                raise ConfigError(f"jwt_jwks_url {settings.jwt_jwks_url!r}: {exc}") from exc
        self._jwks = jwks_client
        self.audience = settings.jwt_audience or None
        self.issuer = settings.jwt_issuer or None
        algorithms = []
        if self._secret is not None:
            algorithms.append(HS256)
        if self._public_key is not None or self._jwks is not None:
            algorithms.append(RS256)
        self.algorithms = tuple(algorithms)

    @property
    def configured(self) -> bool:
        """Whether any key is configured (without one every token is refused)."""
        return bool(self.algorithms)

    async def verify(self, token: str) -> Grant:
        """The grant of `token`; TokenRejected if it is not valid now. A JWKS fetch runs in a thread."""
        header = self._header(token)
        if self._uses_jwks(header):
            return await asyncio.to_thread(self.verify_now, token)
        return self.verify_now(token)

    def needs_fetch(self, token: str) -> bool:
        """Whether verifying `token` may fetch keys (then call `verify`, not `verify_now`, from an event loop)."""
        try:
            return self._uses_jwks(self._header(token))
        except TokenRejected:
            return False

    def verify_now(self, token: str) -> Grant:
        """`verify` in the caller's thread (which a JWKS fetch blocks)."""
        header = self._header(token)
        key: Any
        if header["alg"] == HS256:
            key = self._secret
        elif self._uses_jwks(header):
            assert self._jwks is not None
            try:
                key = self._jwks.get_signing_key(str(header.get("kid")))
            except jwt.PyJWKClientConnectionError as exc:
                raise TokenRejected("cannot fetch the token signing keys now", retryable=True) from exc
            except (jwt.PyJWKClientError, jwt.PyJWKError) as exc:  # no usable key with this kid
                raise TokenRejected("unknown signing key (kid)") from exc
        else:
            key = self._public_key
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sources"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejected(_reason(exc)) from exc
        return Grant(_subject(claims), _sources(claims.get("sources")), float(claims["exp"]))

    def _header(self, token: str) -> dict[str, Any]:
        """The token's unverified header, once its algorithm is known to be one configured."""
        if not self.configured:
            raise TokenRejected(NO_KEY)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRejected(f"wrong algorithm (accepted: {', '.join(self.algorithms)})")
        return header

    def _uses_jwks(self, header: dict[str, Any]) -> bool:
        if header["alg"] != RS256 or self._jwks is None:
            return False
        return self._public_key is None or "kid" in header


def load_public_key(value: str) -> RSAPublicKey:
    """An RSA public key from PEM text or from the path of a PEM file; ConfigError with the cause if not."""
    text = value
    if not value.lstrip().startswith("-----BEGIN"):
        try:
            text = Path(value).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(
                f"jwt_public_key: cannot read PEM file {value!r}: {exc.strerror or exc}"
            ) from exc
    try:
        key = load_pem_public_key(text.encode())
    except ValueError as exc:
        raise ConfigError(f"jwt_public_key is not a PEM public key ({exc})") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"jwt_public_key must be an RSA key for RS256, not {type(key).__name__}")
    return key


def issue_token(
    secret: str,
    sources: Iterable[str],
    *,
    ttl_s: float,
    subject: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    now: float | None = None,
) -> str:
    """An HS256 connection token for `sources` (`*`: every source) valid `ttl_s` seconds from `now`."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"the HS256 secret needs at least {MIN_SECRET_BYTES} bytes")
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {"sources": list(sources), "iat": int(issued), "exp": int(issued + ttl_s)}
    if subject:
        claims["sub"] = subject
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=HS256)


def _reason(exc: jwt.PyJWTError) -> str:
    """A short reason for a decoding error (PyJWT's messages never include the token)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim {exc.claim}"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "wrong audience (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "wrong issuer (iss)"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "not valid yet (nbf)"
    if isinstance(exc, jwt.InvalidAlgorithmError | jwt.InvalidKeyError):
        return "wrong algorithm"
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "invalid token"


def _subject(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    return subject if isinstance(subject, str) and subject else "-"


def _sources(value: object) -> frozenset[str] | None:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise TokenRejected('bad claim sources: it must be a list of source ids, or ["*"]')
    return None if ALL_SOURCES in value else frozenset(value)
