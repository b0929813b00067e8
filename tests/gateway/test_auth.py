"""Connection tokens on `/v1/ws`, on both transports: refused tokens, granted sources, JWKS, refresh and expiry.

Real servers (uvicorn's ASGI endpoint and the picows listener), real `websockets` clients, real JWTs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sheetstream.runtime.settings import Settings
from tests.observability.samples import value

from .conftest import Stack, fast_stack, recv, running_stack, send, subscribe

SECRET = "correct horse battery staple, twice over"  # 40 bytes: HS256 wants 32 at least
TRANSPORTS = pytest.mark.parametrize("transport", ["asgi", "picows"])
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def claims(sources: list[str] | None = None, ttl_s: float = 3600.0, **extra: Any) -> dict[str, Any]:
    return {
        "sub": "ada",
        "sources": ["*"] if sources is None else sources,
        "exp": int(time.time() + ttl_s),
        **extra,
    }


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def rs256(payload: dict[str, Any], key: rsa.RSAPrivateKey = KEY, kid: str | None = None) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT made by hand, as an attacker would: unsigned (`alg: none`), or HMAC-signed with any bytes."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    return f"{signing_input}.{_b64(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())}"


@contextlib.asynccontextmanager
async def serving(transport: str, settings: Settings) -> AsyncIterator[Stack]:
    async with (
        running_stack(settings=settings) if transport == "asgi" else fast_stack(settings=settings) as stack
    ):
        yield stack


def with_query_token(url: str, token: str) -> str:
    return f"{url}?token={token}"


async def refused(url: str, **options: Any) -> tuple[int, str]:
    """Open a connection the server accepts then closes: its close code and reason."""
    async with connect(url, **options) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None, "the server closed without a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


async def closed_with(ws: ClientConnection) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes: its close code, reason, and the messages before it."""
    seen: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            seen.append(await recv(ws))
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason, seen


async def streams(stack: Stack, ws: ClientConnection, source: str | None = None) -> None:
    """The connection can subscribe and gets the next change."""
    source = source or stack.source
    [subscribed, *_] = await subscribe(ws, source)
    await stack.commit(source)
    change = await recv(ws)
    assert (change["type"], change["source"], change["version"]) == (
        "change",
        source,
        subscribed["version"] + 1,
    )


# -- refused tokens -----------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_every_bad_token_closes_with_4001_and_says_why_and_a_good_one_streams(transport: str) -> None:
    settings = Settings(jwt_secret=SECRET, jwt_audience="sheetstream", jwt_issuer="https://issuer.example")
    good = claims(aud="sheetstream", iss="https://issuer.example")
    rsa_pem = KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases: dict[str, tuple[str | None, str]] = {
        "missing": (None, "missing token"),
        "expired": (hs256({**good, "exp": int(time.time()) - 60}), "invalid token: expired"),
        "forged": (
            hs256(good, "another secret of at least thirty-two bytes"),
            "invalid token: bad signature",
        ),
        "tampered": (hs256(good)[:-4] + "AAAA", "invalid token: bad signature"),
        "alg none": (forged({"alg": "none", "typ": "JWT"}, good, None), "invalid token: wrong algorithm"),
        "RS256 on an HS256 server": (rs256(good), "invalid token: wrong algorithm"),
        "HS512": (forged({"alg": "HS512"}, good, rsa_pem), "invalid token: wrong algorithm"),
        "malformed": ("not-a-jwt", "invalid token: malformed token"),
        "no sources": (
            hs256({k: v for k, v in good.items() if k != "sources"}),
            "invalid token: missing claim sources",
        ),
        "no exp": (hs256({k: v for k, v in good.items() if k != "exp"}), "invalid token: missing claim exp"),
        "sources not a list": (hs256({**good, "sources": "*"}), "invalid token: bad claim sources"),
        "wrong audience": (hs256({**good, "aud": "someone-else"}), "invalid token: wrong audience"),
        "no audience": (
            hs256({k: v for k, v in good.items() if k != "aud"}),
            "invalid token: missing claim aud",
        ),
        "wrong issuer": (hs256({**good, "iss": "https://evil.example"}), "invalid token: wrong issuer"),
    }
    before = value("sheetstream_ws_rejections_total", reason="unauthorized")
    async with serving(transport, settings) as stack:
        outcomes = {}
        for name, (token, _) in cases.items():
            outcomes[name] = await refused(stack.url, additional_headers=_bearer(token))
        for name, (token, _) in cases.items():
            if token is not None:  # the same refusal with the token in the query string
                assert await refused(with_query_token(stack.url, token)) == outcomes[name], name
        assert {name: code for name, (code, _) in outcomes.items()} == dict.fromkeys(cases, 4001)
        for name, (_, reason) in cases.items():
            assert outcomes[name][1].startswith(reason), (name, outcomes[name])
        assert value("sheetstream_ws_rejections_total", reason="unauthorized") == before + 2 * len(cases) - 1
        token = hs256(good)
        async with connect(stack.url, additional_headers=_bearer(token)) as ws:
            await streams(stack, ws)
        async with connect(with_query_token(stack.url, token)) as ws:
            await streams(stack, ws)


def _bearer(token: str | None) -> dict[str, str] | None:
    return {"Authorization": f"Bearer {token}"} if token else None


@TRANSPORTS
async def test_an_rs256_server_refuses_hs256_tokens_even_signed_with_its_public_key(
    transport: str, tmp_path: Path
) -> None:
    pem_file = tmp_path / "public.pem"
    pem_file.write_bytes(PUBLIC_PEM)
    good = claims()
    cases = {
        "HS256 keyed with the public key": forged({"alg": "HS256", "typ": "JWT"}, good, PUBLIC_PEM),
        "HS256 with some secret": hs256(good),
        "alg none": forged({"alg": "none"}, good, None),
    }
    for pem in (str(pem_file), PUBLIC_PEM.decode()):  # a path, or the PEM text itself
        async with serving(transport, Settings(jwt_public_key=pem)) as stack:
            for name, token in cases.items():
                code, reason = await refused(with_query_token(stack.url, token))
                assert (code, reason) == (4001, "invalid token: wrong algorithm (accepted: RS256)"), name
            assert await refused(with_query_token(stack.url, rs256(good, OTHER_KEY))) == (
                4001,
                "invalid token: bad signature",
            )
            async with connect(with_query_token(stack.url, rs256(good))) as ws:
                await streams(stack, ws)


@TRANSPORTS
async def test_without_a_key_and_not_anonymous_nothing_gets_in(transport: str) -> None:
    async with serving(transport, Settings(anonymous=False)) as stack:
        for token in (None, hs256(claims())):
            code, reason = await refused(stack.url, additional_headers=_bearer(token))
            assert code == 4001 and reason.startswith("no token can be verified"), reason
            assert len(reason.encode()) <= 123  # what a close frame can carry


@TRANSPORTS
async def test_anonymous_lets_tokenless_clients_in_but_still_checks_tokens(transport: str) -> None:
    async with serving(transport, Settings(anonymous=True, jwt_secret=SECRET)) as stack:
        async with connect(stack.url) as ws:
            await streams(stack, ws)
        assert await refused(
            with_query_token(stack.url, hs256(claims(), "not the server's secret, but long"))
        ) == (
            4001,
            "invalid token: bad signature",
        )
        other = await stack.add_source()
        async with connect(with_query_token(stack.url, hs256(claims([other])))) as ws:
            await send(ws, {"type": "subscribe", "id": "s", "source": stack.source})
            assert (await recv(ws))["code"] == "forbidden_source"


# -- granted sources ----------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_a_source_the_token_does_not_grant_is_refused_and_the_connection_stays_open(
    transport: str,
) -> None:
    async with serving(transport, Settings(jwt_secret=SECRET)) as stack:
        other = await stack.add_source()
        before = value("sheetstream_ws_rejections_total", reason="forbidden_source")
        async with connect(with_query_token(stack.url, hs256(claims([stack.source])))) as ws:
            await send(ws, {"type": "subscribe", "id": "x", "source": other})
            assert await recv(ws) == {
                "type": "error",
                "id": "x",
                "code": "forbidden_source",
                "message": f"this connection's token does not grant source {other!r}",
                "source": other,
            }
            await stack.commit(other)
            await send(ws, {"type": "ping", "id": 1})
            assert await recv(ws) == {"type": "pong", "id": 1}  # open, and nothing of `other` came
            await streams(stack, ws)
        assert value("sheetstream_ws_rejections_total", reason="forbidden_source") == before + 1


# -- JWKS ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def jwks_server(keys: list[dict[str, Any]]) -> Iterator[tuple[str, list[str]]]:
    """A JWKS document served on 127.0.0.1 by a thread; yields its URL and the paths requested."""
    requests: list[str] = []
    body = json.dumps({"keys": keys}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


@TRANSPORTS
async def test_rs256_tokens_checked_against_a_jwks_fetched_once(transport: str) -> None:
    with jwks_server([jwk(KEY, "k1"), jwk(OTHER_KEY, "k2")]) as (url, requests):
        async with serving(transport, Settings(jwt_jwks_url=url)) as stack:
            for kid, key in (("k1", KEY), ("k2", OTHER_KEY)):
                async with connect(with_query_token(stack.url, rs256(claims(), key, kid))) as ws:
                    await streams(stack, ws)
            cases = {
                "unknown kid": (rs256(claims(), KEY, "k9"), "invalid token: unknown signing key (kid)"),
                "signed by another key": (rs256(claims(), OTHER_KEY, "k1"), "invalid token: bad signature"),
                "HS256": (hs256(claims()), "invalid token: wrong algorithm (accepted: RS256)"),
            }
            for name, (token, reason) in cases.items():
                assert await refused(with_query_token(stack.url, token)) == (4001, reason), name
            # A client that speaks at once after the handshake, while the keys are looked up, loses nothing.
            async with connect(with_query_token(stack.url, rs256(claims(), KEY, "k1"))) as ws:
                await streams(stack, ws)
    assert requests == ["/.well-known/jwks.json"], "the key set is fetched once and cached"


@TRANSPORTS
async def test_a_jwks_that_cannot_be_fetched_asks_clients_to_come_back_later(transport: str) -> None:
    with jwks_server([]) as (url, _):
        pass  # stopped: nothing listens there any more
    async with serving(transport, Settings(jwt_jwks_url=url)) as stack:
        code, reason = await refused(with_query_token(stack.url, rs256(claims(), KEY, "k1")))
    assert (code, reason) == (1013, "try again later: cannot fetch the token signing keys now")


# -- refresh and expiry -------------------------------------------------------------------------------------------


@TRANSPORTS
async def test_auth_renews_the_token_in_place_without_losing_a_change(transport: str) -> None:
    async with serving(transport, Settings(jwt_secret=SECRET)) as stack:
        other = await stack.add_source()
        async with connect(with_query_token(stack.url, hs256(claims(ttl_s=600)))) as ws:
            [subscribed, _] = await subscribe(ws, stack.source)
            await subscribe(ws, other)
            fresh = claims([stack.source], ttl_s=7200)
            await stack.commit()  # before, during and after the renewal
            await send(ws, {"type": "auth", "id": "r1", "token": hs256(fresh)})
            await stack.commit()
            await stack.commit()
            messages = [await recv(ws) for _ in range(5)]
            authenticated = next(m for m in messages if m["type"] == "authenticated")
            expires = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(fresh["exp"]))
            assert authenticated == {"type": "authenticated", "id": "r1", "expires_at": expires}
            ended = next(m for m in messages if m["type"] == "error")
            assert (ended["code"], ended["source"]) == ("forbidden_source", other)  # the new token drops it
            changes = [m["version"] for m in messages if m["type"] == "change"]
            assert changes == [subscribed["version"] + n for n in (1, 2, 3)]
            await stack.commit(other)
            await stack.commit()
            assert (await recv(ws))["version"] == subscribed["version"] + 4  # only the granted source
            await send(
                ws, {"type": "auth", "id": "r2", "token": hs256(fresh, "a forged secret of thirty-two bytes")}
            )
            assert (await closed_with(ws))[:2] == (4001, "invalid token: bad signature")


@TRANSPORTS
async def test_an_expired_token_gets_token_expired_then_a_close_after_the_grace(transport: str) -> None:
    before = value("sheetstream_ws_rejections_total", reason="token_expired")
    async with serving(transport, Settings(jwt_secret=SECRET, token_grace_s=0.2)) as stack:
        async with connect(
            with_query_token(stack.url, hs256({**claims(), "exp": int(time.time()) + 2}))
        ) as ws:
            await subscribe(ws, stack.source)
            code, reason, seen = await closed_with(ws)
        assert (code, reason) == (4001, "token expired")
        assert [m["code"] for m in seen] == ["token_expired"]
        assert "0.2 s" in seen[0]["message"]
        assert len(stack.hub.tokens) == 0
    assert value("sheetstream_ws_rejections_total", reason="token_expired") == before + 1


@TRANSPORTS
async def test_a_fresh_token_within_the_grace_keeps_the_connection(transport: str) -> None:
    async with (
        serving(transport, Settings(jwt_secret=SECRET, token_grace_s=30)) as stack,
        connect(with_query_token(stack.url, hs256({**claims(), "exp": int(time.time()) + 2}))) as ws,
    ):
        [subscribed, _] = await subscribe(ws, stack.source)
        expired = await recv(ws)
        assert expired["code"] == "token_expired" and "30 s" in expired["message"]
        await send(ws, {"type": "auth", "id": 9, "token": hs256(claims(ttl_s=3600))})
        assert (await recv(ws))["type"] == "authenticated"
        await stack.commit()
        assert (await recv(ws))["version"] == subscribed["version"] + 1
        [(conn_id, _)] = stack.hub.sessions.items()
        assert stack.hub.tokens.subject(conn_id) == "ada"
