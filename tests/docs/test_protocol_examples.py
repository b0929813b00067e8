"""docs/protocol.md shows every message by example, and its examples are the AsyncAPI document's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from tests.docs.test_asyncapi import document, examples, messages

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def json_blocks() -> list[dict[str, Any]]:
    """Every ```json block of protocol.md, parsed."""
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL_MD.read_text(), flags=re.S)
    return [json.loads(block) for block in blocks]


def test_every_message_type_has_an_example_on_the_page() -> None:
    shown = {block["type"] for block in json_blocks()}
    assert shown == set(messages())


def test_the_pages_examples_validate_and_are_the_asyncapi_examples() -> None:
    components = document()["components"]
    for block in json_blocks():
        message = messages()[block["type"]]
        schema = {"$ref": message["payload"]["$ref"], "components": components}
        jsonschema.validate(block, schema, cls=jsonschema.Draft7Validator)
        assert block in examples(block["type"]), f"not in asyncapi.yaml: {block}"
