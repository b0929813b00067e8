"""API keys: their shape, minting (only a hash is kept), parsing a presented key, and checking it."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime

import pytest

from sheetstream.auth.keys import accepts, check_name, check_scopes, hash_secret, mint_key, parse_key
from sheetstream.errors import ConfigError

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_a_minted_key_has_its_shape_and_its_record_keeps_only_the_hash() -> None:
    text, record = mint_key("  ci bot ", ["write", "read", "read"], now=T0)
    match = re.fullmatch(r"ssk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", text)
    assert match is not None, text
    key_id, secret = match.groups()
    assert record.id == key_id
    assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_secret(secret)
    assert secret not in repr(record)
    assert (record.name, record.scopes, record.created_at, record.revoked_at) == (
        "ci bot",
        frozenset({"read", "write"}),
        T0,
        None,
    )


def test_minted_keys_never_repeat() -> None:
    minted = [mint_key("k", ["read"], now=T0) for _ in range(200)]
    assert len({text for text, _ in minted}) == len({record.id for _, record in minted}) == 200


def test_a_minted_key_parses_back_and_is_accepted() -> None:
    text, record = mint_key("k", ["read"], now=T0)
    presented = parse_key(text)
    assert presented is not None
    assert presented.key_id == record.id
    assert accepts(record, presented)
    assert presented.secret not in repr(presented)  # a stray log of the object shows no secret


def test_a_wrong_secret_another_id_or_a_revoked_key_is_refused() -> None:
    text, record = mint_key("k", ["read"], now=T0)
    presented = parse_key(text)
    assert presented is not None
    other = parse_key(f"ssk_{record.id}_" + "A" * 43)
    assert other is not None and not accepts(record, other)
    assert not accepts(dataclasses.replace(record, id="0" * 12), presented)
    assert not accepts(dataclasses.replace(record, revoked_at=T0), presented)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssk_",
        "hello",
        "ssk_0123456789ab_" + "A" * 42,  # secret too short
        "ssk_0123456789ab_" + "A" * 44,  # too long
        "ssk_0123456789AB_" + "A" * 43,  # upper-case id
        "ssk_0123456789a_" + "A" * 44,  # id too short
        "xsk_0123456789ab_" + "A" * 43,
        "ssk_0123456789ab-" + "A" * 43,
        "ssk_0123456789ab_" + "A" * 42 + "=",
        "ssk_0123456789ab_" + "A" * 42 + "\n",
        " ssk_0123456789ab_" + "A" * 43,
    ],
)
def test_text_that_is_not_shaped_like_a_key_does_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_scopes_are_read_and_or_write() -> None:
    assert check_scopes(["read"]) == frozenset({"read"})
    with pytest.raises(ConfigError, match="admin"):
        check_scopes(["read", "admin"])
    with pytest.raises(ConfigError, match="at least one scope"):
        check_scopes([])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "needs a name"),
        ("  ", "needs a name"),
        ("x" * 201, "at most 200"),
        ("a\x00b", "control"),
        ("line\nbreak", "control"),
    ],
)
def test_a_bad_name_is_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_name(name)
    with pytest.raises(ConfigError, match=message):
        mint_key(name, ["read"], now=T0)
