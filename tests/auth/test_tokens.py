"""Connection tokens and the admission checks without sockets: grants, keys, handshakes, origins, per-IP rates."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sheetstream.auth.tokens import ANONYMOUS, Grant, TokenRejected, TokenVerifier, issue_token
from sheetstream.errors import ConfigError
from sheetstream.gateways.admission import Admission, Handshake, Refusal, read_handshake
from sheetstream.runtime.settings import Settings
from tests.gateway.test_auth import forged

SECRET = "0123456789abcdef0123456789abcdef"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def test_an_issued_token_gives_its_grant() -> None:
    verifier = TokenVerifier(Settings(jwt_secret=SECRET, jwt_audience="aud", jwt_issuer="iss"))
    now = time.time()
    token = issue_token(SECRET, ["a", "b"], ttl_s=60, subject="ada", audience="aud", issuer="iss", now=now)
    assert verifier.verify_now(token) == Grant("ada", frozenset({"a", "b"}), float(int(now + 60)))
    everything = verifier.verify_now(issue_token(SECRET, ["*"], ttl_s=60, audience="aud", issuer="iss"))
    assert everything.sources is None and everything.subject == "-" and everything.allows("anything")
    assert ANONYMOUS.allows("anything") and ANONYMOUS.expires_at is None


def test_a_short_hs256_secret_is_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        TokenVerifier(Settings(jwt_secret="short"))
    with pytest.raises(ConfigError, match="at least 32"):
        issue_token("short", ["*"], ttl_s=1)


def test_public_key_settings_are_checked_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read PEM file"):
        TokenVerifier(Settings(jwt_public_key=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="not a PEM public key"):
        TokenVerifier(Settings(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"))
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match="must be an RSA key"):
        TokenVerifier(Settings(jwt_public_key=ec_pem.decode()))
    with pytest.raises(ConfigError, match="jwt_jwks_url"):
        TokenVerifier(Settings(jwt_jwks_url="file:///etc/passwd"))


def test_with_both_keys_each_algorithm_uses_its_own() -> None:
    verifier = TokenVerifier(Settings(jwt_secret=SECRET, jwt_public_key=PEM.decode()))
    assert verifier.algorithms == ("HS256", "RS256")
    claims = {"sources": ["a"], "exp": int(time.time()) + 60}
    assert verifier.verify_now(jwt.encode(claims, KEY, algorithm="RS256")).sources == frozenset({"a"})
    assert verifier.verify_now(jwt.encode(claims, SECRET, algorithm="HS256")).sources == frozenset({"a"})
    # The RS256 public key as an HS256 secret: checked against the HS256 secret, so refused.
    with pytest.raises(TokenRejected, match="bad signature"):
        verifier.verify_now(forged({"alg": "HS256"}, claims, PEM))


def test_without_keys_every_token_is_refused_with_the_reason() -> None:
    verifier = TokenVerifier(Settings())
    assert not verifier.configured
    with pytest.raises(TokenRejected, match="no token can be verified"):
        verifier.verify_now(issue_token(SECRET, ["*"], ttl_s=60))


@pytest.mark.parametrize(
    ("headers", "query", "token"),
    [
        ({"authorization": "Bearer abc"}, "", "abc"),
        ({"authorization": "bearer  abc "}, "token=xyz", "abc"),  # the header wins
        ({"authorization": "Basic dXNlcg=="}, "token=xyz", "xyz"),
        ({}, "a=1&token=xyz&b=2", "xyz"),
        ({}, "token=", None),
        ({"authorization": "Bearer "}, "", None),
        ({}, "", None),
    ],
)
def test_the_token_comes_from_the_bearer_header_or_the_query(
    headers: dict[str, str], query: str, token: str | None
) -> None:
    handshake = read_handshake("10.0.0.1", {"origin": "https://x", "host": "h:1", **headers}, query)
    assert handshake == Handshake("10.0.0.1", "https://x", "h:1", token)
    assert token is None or token not in repr(handshake)


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "ok"),
    [
        ((), "http://h:8000", "h:8000", True),
        ((), "http://H:8000", "h:8000", True),
        ((), "https://h", "h:443", True),
        ((), "http://h", "h", True),
        ((), "https://[::1]:8000", "[::1]:8000", True),
        ((), "http://h:8001", "h:8000", False),
        ((), "http://other:8000", "h:8000", False),
        ((), "null", "h:8000", False),
        ((), "http://h:8000", None, False),
        ((), "http://h:99999", "h:99999", False),
        (("https://app.example",), "https://app.example:443", "h", True),
        (("https://app.example/",), "https://APP.example", "h", True),
        (("https://app.example",), "http://app.example", "h", False),
        (("https://app.example",), "http://h:8000", "h:8000", False),  # a list replaces the same-host rule
        (("null",), "null", "h", True),
        (("*",), "https://anything", "h", True),
    ],
)
def test_origins(allowed: tuple[str, ...], origin: str, host: str | None, ok: bool) -> None:
    assert Admission(Settings(allowed_origins=allowed)).origin_allowed(origin, host) is ok


def test_the_connection_rate_is_per_ip_and_refills() -> None:
    now = [0.0]
    admission = Admission(Settings(anonymous=True, connections_per_ip_per_min=2), clock=lambda: now[0])
    first, second = Handshake("10.0.0.1", None, None), Handshake("10.0.0.2", None, None)
    assert admission.screen(first) is None and admission.screen(first) is None
    assert admission.screen(first) == Refusal(4029, "rate limited: too many new connections", "rate_limited")
    assert admission.screen(second) is None  # another address has its own budget
    now[0] = 30.0  # half a minute: one more
    assert admission.screen(first) is None
    assert isinstance(admission.screen(first), Refusal)
    assert Admission(Settings(connections_per_ip_per_min=0)).per_ip is None


def test_close_reasons_fit_in_a_close_frame() -> None:
    admission = Admission(Settings())
    refusal = admission.grant_now(None)
    assert isinstance(refusal, Refusal) and refusal.code == 4001
    assert refusal.reason.startswith("no token can be verified") and len(refusal.reason.encode()) <= 123


async def test_admit_now_defers_only_tokens_whose_keys_must_be_fetched() -> None:
    admission = Admission(Settings(jwt_jwks_url="http://127.0.0.1:9/jwks.json", anonymous=True))
    rs = jwt.encode(
        {"sources": ["*"], "exp": int(time.time()) + 60}, KEY, algorithm="RS256", headers={"kid": "k"}
    )
    assert admission.admit_now(Handshake("1.2.3.4", None, None, rs)) is None
    assert admission.admit_now(Handshake("1.2.3.4", None, None, None)) == ANONYMOUS
    refusal = admission.admit_now(Handshake("1.2.3.4", None, None, "garbage"))
    assert refusal == Refusal(4001, "invalid token: malformed token", "unauthorized")
