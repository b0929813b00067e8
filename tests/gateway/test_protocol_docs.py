"""docs/protocol.md and docs/asyncapi.yaml name every message type, error code and close code the code uses."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from sheetstream.core import messages as protocol

DOCS = Path(__file__).resolve().parents[2] / "docs"
MESSAGE_TYPES = [
    "subscribe",
    "unsubscribe",
    "ping",
    "auth",
    "subscribed",
    "snapshot",
    "change",
    "unsubscribed",
    "pong",
    "authenticated",
    "error",
]
CLOSE_CODES = sorted(
    value for name, value in vars(protocol).items() if name.startswith("CLOSE_") and isinstance(value, int)
)


@pytest.mark.parametrize("doc", ["protocol.md", "asyncapi.yaml"])
def test_every_error_code_close_code_and_message_type_is_documented(doc: str) -> None:
    text = (DOCS / doc).read_text()
    for code in typing.get_args(protocol.ErrorCode):
        assert re.search(rf"\b{code}\b", text), f"{doc} does not document error code {code}"
    for close_code in CLOSE_CODES:
        assert re.search(rf"\b{close_code}\b", text), f"{doc} does not document close code {close_code}"
    for message_type in MESSAGE_TYPES:
        assert re.search(rf"\b{message_type}\b", text), f"{doc} does not document message {message_type}"


def test_the_close_codes_are_the_documented_ones() -> None:
    assert CLOSE_CODES == [1001, 1009, 1013, 4000, 4001, 4003, 4008, 4029]
