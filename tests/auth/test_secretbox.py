"""SecretBox: seals credentials and header values, unseals them, rotates keys, and fails clearly with a wrong key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from sheetstream.auth.secretbox import MAKE_KEY, SEALED, SecretBox, holds_secrets, is_sealed, still_sealed
from sheetstream.errors import ConfigError, SecretUnreadable

KEY_OLD = Fernet.generate_key().decode()
KEY_NEW = Fernet.generate_key().decode()
TOKEN = "Bearer s3cr3t-t0ken"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----MIIEvQ"
CONFIG: dict[str, Any] = {
    "url": "https://example.com/data.csv",
    "headers": {"Authorization": TOKEN, "X-Team": "blue-team"},
    "credentials": {"service_account_json": {"private_key": PRIVATE_KEY}},
    "key_column": "id",
}


def test_seal_hides_every_secret_and_unseal_gives_it_back() -> None:
    box = SecretBox.from_text(KEY_NEW)
    sealed = box.seal(CONFIG)
    text = json.dumps(sealed)
    for secret in (TOKEN, "blue-team", PRIVATE_KEY, "private_key"):
        assert secret not in text
    assert sealed["url"] == CONFIG["url"] and sealed["key_column"] == "id"  # the rest stays readable
    assert is_sealed(sealed["credentials"]) and all(is_sealed(v) for v in sealed["headers"].values())
    assert set(sealed["headers"]) == {"Authorization", "X-Team"}  # header names are not secret
    assert box.unseal(sealed, source_id="s1") == CONFIG
    assert CONFIG["headers"]["Authorization"] == TOKEN  # the caller's dict is left alone


def test_plain_values_pass_through_and_sealed_ones_are_not_sealed_twice() -> None:
    box = SecretBox.from_text(KEY_NEW)
    assert box.unseal(CONFIG, source_id="legacy") == CONFIG  # stored before sealing existed
    sealed = box.seal(CONFIG)
    assert box.seal(sealed) == sealed
    assert box.seal({"path": "/data/x.csv"}) == {"path": "/data/x.csv"}
    assert box.seal({"spreadsheet_id": "a", "credentials": None}) == {
        "spreadsheet_id": "a",
        "credentials": None,
    }


def test_rotation_old_key_listed_second_still_decrypts_and_new_writes_use_the_first() -> None:
    stored_before = SecretBox.from_text(KEY_OLD).seal(CONFIG)
    rotated = SecretBox.from_text(f"{KEY_NEW}, {KEY_OLD}")
    assert rotated.unseal(stored_before, source_id="s1") == CONFIG
    written = rotated.seal(CONFIG)
    token = written["headers"]["Authorization"][SEALED].encode()
    assert json.loads(Fernet(KEY_NEW.encode()).decrypt(token)) == TOKEN
    with pytest.raises(InvalidToken):
        Fernet(KEY_OLD.encode()).decrypt(token)
    # Keys may also come one per line (a key file).
    assert SecretBox.from_text(f"{KEY_NEW}\n{KEY_OLD}\n").unseal(stored_before, source_id="s1") == CONFIG


def test_a_wrong_key_names_the_source_and_shows_no_secret() -> None:
    sealed = SecretBox.from_text(KEY_OLD).seal(CONFIG)
    with pytest.raises(SecretUnreadable) as caught:
        SecretBox.from_text(KEY_NEW).unseal(sealed, source_id="src-42")
    message = str(caught.value)
    assert "src-42" in message and "SHEETSTREAM_SECRET_KEY" in message
    assert caught.value.source_id == "src-42"
    token = sealed["credentials"][SEALED]
    for secret in (TOKEN, PRIVATE_KEY, token, token[:20], KEY_OLD, KEY_NEW):
        assert secret not in message


@pytest.mark.parametrize("text", ["not-a-key", f"{KEY_NEW},short", "x" * 44])
def test_a_malformed_key_is_a_config_error_that_does_not_echo_it(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SecretBox.from_text(text)
    message = str(caught.value)
    assert "Fernet key" in message and MAKE_KEY in message
    assert "short" not in message and "not-a-key" not in message and "x" * 10 not in message


def test_no_key_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="holds no key"):
        SecretBox.from_text(" , \n")


@pytest.mark.parametrize(
    ("config", "secret"),
    [
        ({"path": "x.csv"}, False),
        ({"spreadsheet_id": "a", "credentials": "none"}, False),
        ({"spreadsheet_id": "a", "credentials": "adc"}, False),
        ({"spreadsheet_id": "a", "credentials": None}, False),
        ({"url": "http://x", "headers": {}}, False),
        ({"spreadsheet_id": "a", "credentials": {"api_key": "k"}}, True),
        ({"spreadsheet_id": "a", "credentials": "vault:sheets"}, True),
        ({"url": "http://x", "headers": {"X-Team": "blue"}}, True),
    ],
)
def test_which_configs_hold_secrets(config: dict[str, object], secret: bool) -> None:
    assert holds_secrets(config) is secret


def test_still_sealed_spots_a_value_left_sealed() -> None:
    sealed = SecretBox.from_text(KEY_NEW).seal(CONFIG)
    assert still_sealed(sealed) and not still_sealed(CONFIG)
    assert not still_sealed({"url": "x", "headers": {"A": {"nested": "object"}}})
