"""Wire messages of the WebSocket protocol: close and error codes, encoders, and client field validation.

The session in `protocol.py` decides what to send; this module says how each message looks on the wire
(docs/protocol.md, docs/asyncapi.yaml).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import orjson

from sheetstream.core.codec import changeset_to_json, tabs_to_json
from sheetstream.core.model import ChangeSet, Snapshot, VersionedSnapshot

# --- close codes ---------------------------------------------------------------------------------------------

CLOSE_GOING_AWAY = 1001
"""The server is shutting down; reconnect (elsewhere) and resume with `since`."""
CLOSE_MESSAGE_TOO_BIG = 1009
"""A client frame exceeded the server's max frame size."""
CLOSE_TRY_AGAIN_LATER = 1013
"""The server cannot check the connection's token now (its signing keys cannot be fetched); reconnect later."""
CLOSE_PROTOCOL_ERROR = 4000
"""Too many consecutive protocol errors."""
CLOSE_UNAUTHORIZED = 4001
"""No valid connection token: missing, invalid, or expired and not renewed in time."""
CLOSE_FORBIDDEN = 4003
"""The page's origin is not allowed to open WebSockets."""
CLOSE_SLOW_CONSUMER = 4008
"""The client read too slowly and its outgoing queue filled; reconnect and resume with `since`."""
CLOSE_RATE_LIMITED = 4029
"""Too many messages on this connection, or too many new connections from its IP address."""

ErrorCode = Literal[
    "bad_json",
    "unknown_type",
    "invalid_message",
    "unknown_source",
    "not_subscribed",
    "already_subscribed",
    "too_many_subscriptions",
    "unavailable",
    "forbidden_source",
    "token_expired",
]

MessageId: TypeAlias = str | int
Since: TypeAlias = tuple[str, int]
"""(epoch, version) a client already holds."""

MAX_ID_LENGTH = 256
MAX_SOURCE_LENGTH = 256
MAX_TOKEN_LENGTH = 16 * 1024


# --- encoding ------------------------------------------------------------------------------------------------


def encode_change_frame(cs: ChangeSet) -> bytes:
    """The `change` message for a change set; the dispatcher encodes it once for every subscriber."""
    return orjson.dumps({"type": "change", **changeset_to_json(cs)})


def encode_subscribed(msg_id: MessageId, source: str, epoch: str, version: int, recovered: bool) -> bytes:
    """The `subscribed` message."""
    return orjson.dumps(
        {
            "type": "subscribed",
            "id": msg_id,
            "source": source,
            "epoch": epoch,
            "version": version,
            "recovered": recovered,
        }
    )


def encode_snapshot_message(vs: VersionedSnapshot, tabs: frozenset[int] | None = None) -> bytes:
    """The `snapshot` message, restricted to `tabs` when given."""
    snapshot = vs.snapshot
    if tabs is not None:
        snapshot = Snapshot(tuple(t for t in snapshot.tabs if t.id in tabs))
    return orjson.dumps(
        {
            "type": "snapshot",
            "source": vs.source,
            "epoch": vs.epoch,
            "version": vs.version,
            "tabs": tabs_to_json(snapshot),
        }
    )


def encode_error(
    code: ErrorCode,
    message: str,
    *,
    msg_id: MessageId | None = None,
    source: str | None = None,
    field_name: str | None = None,
) -> bytes:
    """The `error` message; `id`, `source` and `field` only when known."""
    out: dict[str, Any] = {"type": "error"}
    if msg_id is not None:
        out["id"] = msg_id
    out["code"] = code
    out["message"] = message
    if source is not None:
        out["source"] = source
    if field_name is not None:
        out["field"] = field_name
    return orjson.dumps(out)


def encode_unsubscribed(msg_id: MessageId, source: str) -> bytes:
    """The `unsubscribed` message."""
    return orjson.dumps({"type": "unsubscribed", "id": msg_id, "source": source})


def encode_pong(msg_id: MessageId) -> bytes:
    """The `pong` message."""
    return orjson.dumps({"type": "pong", "id": msg_id})


def encode_authenticated(msg_id: MessageId, expires_at: str | None) -> bytes:
    """The `authenticated` message: the new token is in force until `expires_at` (ISO 8601, UTC), or for good."""
    return orjson.dumps({"type": "authenticated", "id": msg_id, "expires_at": expires_at})


class InvalidField(Exception):
    """A client message is missing a field or has a bad one."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


# --- field validation ----------------------------------------------------------------------------------------


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def valid_id(value: object) -> bool:
    return (isinstance(value, str) and len(value) <= MAX_ID_LENGTH) or is_int(value)


def require_id(message: dict[str, Any]) -> MessageId:
    value = message.get("id")
    if not valid_id(value):
        raise InvalidField("id", f"'id' must be a string (at most {MAX_ID_LENGTH} characters) or an integer")
    assert isinstance(value, str | int)
    return value


def require_source(message: dict[str, Any]) -> str:
    value = message.get("source")
    if not isinstance(value, str) or not value or len(value) > MAX_SOURCE_LENGTH:
        raise InvalidField("source", "'source' must be a source id: a non-empty string")
    return value


def require_token(message: dict[str, Any]) -> str:
    value = message.get("token")
    if not isinstance(value, str) or not value or len(value) > MAX_TOKEN_LENGTH:
        raise InvalidField("token", f"'token' must be a non-empty string (at most {MAX_TOKEN_LENGTH} characters)")
    return value


def optional_since(message: dict[str, Any]) -> Since | None:
    value = message.get("since")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidField("since", '\'since\' must be an object {"epoch": string, "version": integer}')
    epoch, version = value.get("epoch"), value.get("version")
    if not isinstance(epoch, str) or not epoch:
        raise InvalidField("since.epoch", "'since.epoch' must be a non-empty string")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidField("since.version", "'since.version' must be an integer >= 0")
    return (epoch, version)


def optional_tabs(message: dict[str, Any]) -> frozenset[int] | None:
    value = message.get("tabs")
    if value is None:
        return None
    if not isinstance(value, list) or not all(is_int(t) for t in value):
        raise InvalidField("tabs", "'tabs' must be a list of tab ids (integers)")
    return frozenset(value)
