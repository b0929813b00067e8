"""docs/asyncapi.yaml is a well-formed AsyncAPI 3 document whose examples are what the server really sends.

The AsyncAPI 3.0 JSON Schema is not available offline, so the structure is checked here: the required fields,
every `$ref` resolving, every message with a payload schema and examples that validate against it. Then every
message type the protocol code can send or accept must have examples, and each example must parse with the
protocol's own code and, for server messages, be exactly what the protocol's encoder produces from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import typing
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from sheetstream.core import codec, protocol
from sheetstream.core.codec import changeset_from_json, tabs_from_json
from sheetstream.core.model import VersionedSnapshot

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Where the wire messages are encoded: the session, and the message helpers it uses.
PROTOCOL_MODULES = ("sheetstream.core.protocol", "sheetstream.core.messages")


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DOCS / "asyncapi.yaml").read_text())
    return doc


def resolve(ref: str) -> Any:
    """Follow a local `$ref` such as '#/components/messages/change'."""
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node: Any = document()
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def deref(node: Any) -> Any:
    """The node a (chain of) `$ref` points at."""
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(node["$ref"])
    return node


def messages() -> dict[str, dict[str, Any]]:
    """Every message of every channel, by name."""
    out: dict[str, dict[str, Any]] = {}
    for channel in document()["channels"].values():
        for name, message in channel["messages"].items():
            out[name] = deref(message)
    return out


def examples(message_type: str) -> list[dict[str, Any]]:
    return [example["payload"] for example in messages()[message_type].get("examples", [])]


def server_message_types() -> set[str]:
    """The `type` of every message the protocol code encodes (what the server can send)."""
    modules = [name for name in PROTOCOL_MODULES if importlib.util.find_spec(name) is not None]
    source = "".join(inspect.getsource(importlib.import_module(name)) for name in modules)
    return set(re.findall(r'"type": "(\w+)"', source))


def client_message_types() -> set[str]:
    return set(protocol._HANDLERS)


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [*([node["$ref"]] if "$ref" in node else []), *(r for v in node.values() for r in all_refs(v))]
    if isinstance(node, list):
        return [r for v in node for r in all_refs(v)]
    return []


# --- structure -------------------------------------------------------------------------------------------------


def test_required_top_level_fields_and_every_reference_resolves() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["channels"] and doc["operations"]
    for ref in all_refs(doc):
        resolve(ref)
    for name, channel in doc["channels"].items():
        assert channel["address"] == "/v1/ws", name
        for server in channel.get("servers", []):
            assert deref(server)["protocol"] in {"ws", "wss"}


def test_operations_use_their_channel_and_messages_of_it() -> None:
    doc = document()
    for name, operation in doc["operations"].items():
        assert operation["action"] in {"send", "receive"}, name
        channel = deref(operation["channel"])
        assert channel in doc["channels"].values(), name
        allowed = [deref(m) for m in channel["messages"].values()]
        for message in [*operation.get("messages", []), *operation.get("reply", {}).get("messages", [])]:
            assert deref(message) in allowed, f"{name}: {message['$ref']} is not a message of its channel"


@pytest.mark.parametrize("name", sorted(messages()))
def test_every_message_has_a_payload_schema_and_examples_that_validate(name: str) -> None:
    message = messages()[name]
    assert message["name"] == name
    assert "payload" in message, f"{name} has no payload schema"
    schema = {"$ref": message["payload"]["$ref"], "components": document()["components"]}
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert message.get("examples"), f"{name} has no examples"
    for example in message["examples"]:
        assert example.get("name"), f"an example of {name} has no name"
        payload = example["payload"]
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(payload)]
        assert not errors, f"{name} example {example['name']!r}: {errors}"
        assert payload["type"] == name


def test_the_schemas_reject_what_the_protocol_rejects() -> None:
    """The payload schemas are not vacuous: a bad message fails them."""
    components = document()["components"]
    change = jsonschema.Draft7Validator({"$ref": "#/components/schemas/Change", "components": components})
    good = examples("change")[0]
    assert change.is_valid(good)
    assert not change.is_valid({**good, "version": "13"})
    assert not change.is_valid({**good, "ops": [{"op": "explode", "tab": 0}]})
    assert not change.is_valid({key: value for key, value in good.items() if key != "epoch"})


# --- the examples are the protocol's own messages --------------------------------------------------------------


def test_every_message_type_the_code_uses_is_documented_with_examples() -> None:
    assert server_message_types() == {
        "subscribed",
        "snapshot",
        "change",
        "error",
        "unsubscribed",
        "pong",
        "authenticated",
    }
    documented = set(messages())
    assert server_message_types() | client_message_types() == documented
    for name in documented:
        assert examples(name), f"no example of {name}"


ENCODERS: dict[str, Any] = {
    "subscribed": lambda m: protocol.encode_subscribed(
        m["id"], m["source"], m["epoch"], m["version"], m["recovered"]
    ),
    "snapshot": lambda m: protocol.encode_snapshot_message(
        VersionedSnapshot(m["source"], m["epoch"], m["version"], tabs_from_json(m["tabs"]))
    ),
    "change": lambda m: protocol.encode_change_frame(changeset_from_json(m)),
    "unsubscribed": lambda m: protocol.encode_unsubscribed(m["id"], m["source"]),
    "pong": lambda m: protocol.encode_pong(m["id"]),
    "authenticated": lambda m: protocol.encode_authenticated(m["id"], m["expires_at"]),
    "error": lambda m: protocol.encode_error(
        m["code"], m["message"], msg_id=m.get("id"), source=m.get("source"), field_name=m.get("field")
    ),
}


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_server_examples_decode_and_encode_back_to_themselves(name: str) -> None:
    assert set(ENCODERS) == server_message_types()
    for example in examples(name):
        if name == "error":
            assert example["code"] in typing.get_args(protocol.ErrorCode)
        assert orjson.loads(ENCODERS[name](example)) == example, f"{name}: the server would not send this"


def test_change_examples_show_every_op_kind() -> None:
    shown = {op["op"] for change in examples("change") for op in change["ops"]}
    assert shown == set(codec._OP_TYPES)


def test_client_examples_are_accepted_by_the_protocol_session() -> None:
    for example in examples("subscribe"):
        actions = protocol.Session().receive(orjson.dumps(example).decode())
        assert [type(a) for a in actions] == [protocol.Route, protocol.Load], example
        load = actions[1]
        assert isinstance(load, protocol.Load)
        since = example.get("since")
        assert load.since == (None if since is None else (since["epoch"], since["version"]))
    for example in examples("unsubscribe"):
        session = protocol.Session()
        session.receive(orjson.dumps({"type": "subscribe", "id": "0", "source": example["source"]}).decode())
        actions = session.receive(orjson.dumps(example).decode())
        assert isinstance(actions[0], protocol.Unroute)
        assert isinstance(actions[1], protocol.Send)
        assert orjson.loads(actions[1].data) == {
            "type": "unsubscribed",
            "id": example["id"],
            "source": example["source"],
        }
    for example in examples("ping"):
        [send] = protocol.Session().receive(orjson.dumps(example).decode())
        assert isinstance(send, protocol.Send)
        assert orjson.loads(send.data) == {"type": "pong", "id": example["id"]}
    for example in examples("auth"):
        [authenticate] = protocol.Session().receive(orjson.dumps(example).decode())
        assert authenticate == protocol.Authenticate(example["id"], example["token"])


def test_the_error_schema_lists_exactly_the_protocols_error_codes() -> None:
    enum = document()["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert sorted(enum) == sorted(typing.get_args(protocol.ErrorCode))
