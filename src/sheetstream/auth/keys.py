"""REST API keys: how they look, how they are minted, and how a presented key is checked.

A key reads ``ssk_<key_id>_<secret>``: `key_id` is 12 lower-case hex digits, public (it names the key in lists and
logs); `secret` is ``secrets.token_urlsafe(32)`` (256 random bits). The store keeps only the SHA-256 of the
secret, so a leaked database holds no usable key; a fast hash is enough for a secret that random.

A key has scopes: `read` (GET) and/or `write` (POST, PATCH, DELETE). `write` does not imply `read`.

    key, record = mint_key("ci", {"read"}, now=now)   # show `key` once, store `record`
    presented = parse_key(key)                        # None if it is not a key at all
    ok = presented is not None and accepts(await store.get_api_key(presented.key_id), presented)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sheetstream.errors import ConfigError
from sheetstream.stores.base import ApiKeyRecord

PREFIX = "ssk_"
SCOPES = frozenset({"read", "write"})
MAX_NAME_LENGTH = 200

_KEY = re.compile(r"ssk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A well-formed key as a client sent it, split into its public id and its secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"PresentedKey(key_id={self.key_id!r}, secret=<hidden>)"


def hash_secret(secret: str) -> str:
    """The SHA-256 of a key's secret, in hex: what the store keeps."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; ConfigError unless there is at least one and each is `read` or `write`."""
    found = frozenset(scopes)
    unknown = sorted(found - SCOPES)
    if unknown:
        raise ConfigError(f"unknown API key scope(s) {', '.join(unknown)}: use read and/or write")
    if not found:
        raise ConfigError("an API key needs at least one scope: read and/or write")
    return found


def check_name(name: str) -> str:
    """The key's name, stripped; ConfigError if it is empty, too long or holds control characters."""
    name = name.strip()
    if not name:
        raise ConfigError("an API key needs a name (who or what uses it)")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"an API key name has at most {MAX_NAME_LENGTH} characters, not {len(name)}")
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise ConfigError("an API key name cannot hold control characters")
    return name


def mint_key(name: str, scopes: Iterable[str], *, now: datetime) -> tuple[str, ApiKeyRecord]:
    """A new key: the full key text (show it once, it is kept nowhere) and the record to store."""
    record_scopes = check_scopes(scopes)
    record_name = check_name(name)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=key_id, name=record_name, secret_hash=hash_secret(secret), scopes=record_scopes, created_at=now
    )
    return f"{PREFIX}{key_id}_{secret}", record


def parse_key(text: str) -> PresentedKey | None:
    """The key's id and secret, or None if `text` is not shaped like a key."""
    match = _KEY.fullmatch(text)
    if match is None:
        return None
    return PresentedKey(key_id=match[1], secret=match[2])


def accepts(record: ApiKeyRecord, presented: PresentedKey) -> bool:
    """Whether `presented` is the key of `record` and the key is not revoked (in constant time for the secret)."""
    matches = hmac.compare_digest(record.secret_hash, hash_secret(presented.secret))
    return matches and record.id == presented.key_id and record.revoked_at is None
