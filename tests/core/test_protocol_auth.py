"""The session's side of connection tokens: allowed sources, the `auth` message, expiry, closes from outside."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sheetstream.core.messages import CLOSE_RATE_LIMITED, CLOSE_UNAUTHORIZED
from sheetstream.core.protocol import Authenticate, Close, Load, Route, Send, Session, Unroute
from tests.core.test_protocol import cs, sent, vs


def receive(session: Session, **message: Any) -> list[Any]:
    return session.receive(orjson.dumps(message).decode())


def live(session: Session, source: str, version: int = 1) -> None:
    """Subscribe to `source` and answer its read, so it is live at `version`."""
    actions = receive(session, type="subscribe", id=source, source=source)
    load = next(a for a in actions if isinstance(a, Load))
    session.loaded(load, vs(version, source=source))


def test_a_subscribe_outside_the_allowed_sources_is_refused_and_the_connection_stays_open() -> None:
    session = Session(allowed_sources=frozenset({"A"}))
    actions = receive(session, type="subscribe", id=7, source="B")
    assert sent(actions) == [
        {
            "type": "error",
            "id": 7,
            "code": "forbidden_source",
            "message": "this connection's token does not grant source 'B'",
            "source": "B",
        }
    ]
    assert not any(isinstance(a, Route | Load) for a in actions)
    assert session.sources == frozenset() and not session.closed
    assert [type(a) for a in receive(session, type="subscribe", id=8, source="A")] == [Route, Load]


def test_forbidden_sources_count_as_refused_messages() -> None:
    session = Session(allowed_sources=frozenset(), max_errors=3)
    for n in range(2):
        assert not any(isinstance(a, Close) for a in receive(session, type="subscribe", id=n, source="X"))
    assert Close(4000, "3 consecutive protocol errors") in receive(
        session, type="subscribe", id=3, source="X"
    )


def test_no_allowed_sources_means_every_source() -> None:
    session = Session()
    assert session.allows("anything")
    assert [type(a) for a in receive(session, type="subscribe", id=1, source="anything")] == [Route, Load]


def test_auth_asks_the_gateway_to_verify_the_token_and_never_shows_it() -> None:
    session = Session()
    [action] = receive(session, type="auth", id="r1", token="secret.jwt.value")
    assert action == Authenticate("r1", "secret.jwt.value")
    assert "secret.jwt.value" not in repr(action)


@pytest.mark.parametrize("token", [None, "", 12, ["x"], "x" * 20_000])
def test_auth_without_a_usable_token_is_an_invalid_message(token: object) -> None:
    message: dict[str, Any] = {"type": "auth", "id": 3}
    if token is not None:
        message["token"] = token
    [error] = sent(receive(Session(), **message))
    assert error["code"] == "invalid_message" and error["field"] == "token" and error["id"] == 3


def test_authenticated_answers_with_the_expiry_and_ends_subscriptions_the_new_token_does_not_grant() -> None:
    session = Session()
    for source in ("A", "B", "C"):
        live(session, source)
    actions = session.authenticated("r", frozenset({"B"}), 1767225600.5)
    assert sent(actions)[0] == {"type": "authenticated", "id": "r", "expires_at": "2026-01-01T00:00:00.500Z"}
    assert [a for a in actions if isinstance(a, Unroute)] == [Unroute("A"), Unroute("C")]
    errors = sent(actions)[1:]
    assert [(e["code"], e["source"]) for e in errors] == [
        ("forbidden_source", "A"),
        ("forbidden_source", "C"),
    ]
    assert session.sources == frozenset({"B"})
    assert session.live(cs(2, source="A")) == []  # no longer followed
    assert [m["version"] for m in sent(session.live(cs(2, source="B")))] == [2]
    assert sent(receive(session, type="subscribe", id=1, source="A"))[0]["code"] == "forbidden_source"


def test_authenticated_for_every_source_and_for_good() -> None:
    session = Session(allowed_sources=frozenset({"A"}))
    live(session, "A")
    assert sent(session.authenticated(5, None, None)) == [
        {"type": "authenticated", "id": 5, "expires_at": None}
    ]
    assert session.allows("Z") and session.sources == frozenset({"A"})


def test_an_answer_arriving_for_a_dropped_subscription_is_ignored() -> None:
    session = Session()
    [_, load] = receive(session, type="subscribe", id=1, source="A")
    session.authenticated("r", frozenset(), None)
    assert session.loaded(load, vs(3, source="A")) == []


def test_token_expired_tells_the_client_how_long_it_has() -> None:
    [error] = sent(Session().token_expired(30.0))
    assert error["code"] == "token_expired" and "30 s" in error["message"] and "id" not in error


@pytest.mark.parametrize(
    ("code", "reason"), [(CLOSE_UNAUTHORIZED, "token expired"), (CLOSE_RATE_LIMITED, "rate limited")]
)
def test_close_from_outside_closes_once_and_silences_the_session(code: int, reason: str) -> None:
    session = Session()
    live(session, "A")
    assert session.close(code, reason) == [Close(code, reason)]
    assert session.close(code, reason) == []
    assert session.receive('{"type": "ping", "id": 1}') == []
    assert session.token_expired(1.0) == [] and session.authenticated(1, None, None) == []
    assert not any(isinstance(a, Send) for a in session.live(cs(2, source="A")))
