"""Sealing the secret parts of a source config at rest: the `credentials` value and every `headers` value.

    box = SecretBox.from_text("NEW_KEY,OLD_KEY")  # Fernet keys: the first seals, every one unseals (rotation)
    stored = box.seal(config)                      # {"url": ..., "headers": {"Authorization": {"$sealed": "gAAAA..."}}}
    config = box.unseal(stored, source_id="abc")   # the config as it was sent

A sealed value is `{"$sealed": "<Fernet token>"}`: the value's JSON, encrypted and authenticated (AES-128-CBC and
HMAC-SHA256). Values that are not sealed (stored before sealing existed, or without a key) pass through `unseal`
unchanged and are sealed at their next write. Everything else in a config (URLs, paths, ranges) stays readable.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from sheetstream.errors import ConfigError, SecretKeyRequired, SecretUnreadable

SEALED = "$sealed"
KEY_ENV = "SHEETSTREAM_SECRET_KEY"
KEY_FILE_ENV = "SHEETSTREAM_SECRET_KEY_FILE"
MAKE_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
PLAIN_CREDENTIALS = frozenset({"adc", "none"})
"""`credentials` values that name a way to sign in rather than hold a secret: storing them needs no key."""
_SEPARATORS = re.compile(r"[,\s]+")
_CACHE_SIZE = 4096


def is_sealed(value: Any) -> bool:
    """Whether `value` is a sealed secret (`{"$sealed": token}`)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)


def secret_values(config: dict[str, Any]) -> list[Any]:
    """The secret values of a config as stored: its `credentials` (unless null) and each `headers` value."""
    found: list[Any] = []
    if config.get("credentials") is not None:
        found.append(config["credentials"])
    headers = config.get("headers")
    if isinstance(headers, dict):
        found.extend(headers.values())
    return found


def holds_secrets(config: dict[str, Any]) -> bool:
    """Whether storing `config` needs a key: credentials other than "adc"/"none", or any header value."""
    credentials = config.get("credentials")
    if credentials is not None and not (isinstance(credentials, str) and credentials in PLAIN_CREDENTIALS):
        return True
    headers = config.get("headers")
    return isinstance(headers, dict) and bool(headers)


def still_sealed(config: dict[str, Any]) -> bool:
    """Whether a config read from the store kept a sealed value (it could not be decrypted)."""
    return any(is_sealed(value) for value in secret_values(config))


def _map_secrets(config: dict[str, Any], change: Any) -> dict[str, Any]:
    """A copy of `config` with `change` applied to the credentials and to each header value."""
    out = dict(config)
    if out.get("credentials") is not None:
        out["credentials"] = change(out["credentials"])
    headers = out.get("headers")
    if isinstance(headers, dict):
        out["headers"] = {name: change(value) for name, value in headers.items()}
    return out


class SecretBox:
    """Seals and unseals the secrets of source configs with one or more Fernet keys (the first one seals)."""

    def __init__(self, keys: Sequence[str | bytes], *, origin: str = KEY_ENV) -> None:
        if not keys:
            raise ConfigError(f"{origin} holds no key; make one with: {MAKE_KEY}")
        fernets = []
        for index, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError as exc:  # the key itself is never echoed: it is a secret, even when malformed
                which = f"key {index} of {len(keys)}" if len(keys) > 1 else "the key"
                raise ConfigError(
                    f"{origin}: {which} is not a Fernet key (32 url-safe base64-encoded bytes, 44 characters); "
                    f"make one with: {MAKE_KEY}"
                ) from exc
        self._fernet = MultiFernet(fernets)
        self._decrypt = functools.lru_cache(maxsize=_CACHE_SIZE)(self._fernet.decrypt)
        """The monitors reread every config on each lease round: a token is decrypted once."""

    @classmethod
    def from_text(cls, text: str, *, origin: str = KEY_ENV) -> SecretBox:
        """A box from keys separated by commas or whitespace (the first one seals: put a new key first)."""
        return cls([key for key in _SEPARATORS.split(text.strip()) if key], origin=origin)

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a fresh random key (for stores that keep nothing at rest)."""
        return cls([cls.new_key()], origin="generated key")

    @staticmethod
    def new_key() -> str:
        """A new random Fernet key, as text."""
        return Fernet.generate_key().decode("ascii")

    def seal(self, config: dict[str, Any]) -> dict[str, Any]:
        """A copy of `config` with its credentials and header values sealed (sealed ones are kept as they are)."""
        return _map_secrets(config, self._seal_value)

    def unseal(self, config: dict[str, Any], *, source_id: str) -> dict[str, Any]:
        """A copy of `config` with its sealed values decrypted; SecretUnreadable (naming the source) if one fails."""
        return _map_secrets(config, lambda value: self._unseal_value(value, source_id))

    def _seal_value(self, value: Any) -> Any:
        if is_sealed(value):
            return value
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return {SEALED: self._fernet.encrypt(plain).decode("ascii")}

    def _unseal_value(self, value: Any, source_id: str) -> Any:
        if not is_sealed(value):
            return value
        try:
            plain = self._decrypt(value[SEALED].encode("ascii"))
        except (InvalidToken, UnicodeError):
            raise SecretUnreadable(
                unreadable_message(source_id, have_key=True), source_id=source_id
            ) from None
        return json.loads(plain)


def unreadable_message(source_id: str, *, have_key: bool) -> str:
    """What to tell about a source whose sealed secrets cannot be decrypted (never the ciphertext or a secret)."""
    if have_key:
        return (
            f"source {source_id!r}: its credentials cannot be decrypted with this server's secret key (wrong "
            f"{KEY_ENV}? after a rotation, list the old key after the new one); send the credentials again"
        )
    return (
        f"source {source_id!r}: its credentials are encrypted but this server has no secret key: set {KEY_ENV} "
        f"(or {KEY_FILE_ENV}) to the key they were sealed with, or send the credentials again"
    )


def key_required(source: str) -> SecretKeyRequired:
    """The refusal to store secrets without a key, for a store that keeps them at rest (PostgreSQL)."""
    return SecretKeyRequired(
        f"{source}: its config holds credentials or header values, and this server has no key to encrypt them at "
        f"rest: set {KEY_ENV} (or {KEY_FILE_ENV}) on every sheetstream process; make a key with: {MAKE_KEY}"
    )
