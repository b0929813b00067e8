"""The project's own exceptions. Adapters translate their backend's errors into these, with a message a user can act on."""

from __future__ import annotations


class SheetstreamError(Exception):
    """Base of every error sheetstream raises on purpose."""


class ConfigError(SheetstreamError):
    """A setting, URL or source config is invalid."""


class SourceError(SheetstreamError):
    """A source could not be read (down, refused, returned garbage). The message says which and why."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class SourceNotFound(SheetstreamError):
    """No data source with this id."""

    def __init__(self, source_id: str) -> None:
        super().__init__(f"no source with id {source_id!r}")
        self.source_id = source_id


class ApiKeyNotFound(SheetstreamError):
    """No REST API key with this key id."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}")
        self.key_id = key_id


class VersionConflict(SheetstreamError):
    """A commit was refused: its version is already taken or does not follow the head (fencing)."""

    def __init__(self, source_id: str, version: int, head: int) -> None:
        super().__init__(f"source {source_id!r}: version {version} refused, head is {head}")
        self.source_id = source_id
        self.version = version
        self.head = head


class StoreError(SheetstreamError):
    """The store failed (unreachable, locked, out of space, corrupt). The message says which store and why."""


class DeadLetterNotFound(SheetstreamError):
    """No dead letter with this id."""

    def __init__(self, letter_id: str) -> None:
        super().__init__(f"no dead letter with id {letter_id!r}")
        self.letter_id = letter_id


class SecretKeyRequired(ConfigError):
    """A source config holds credentials or header values, and there is no secret key to seal them at rest."""


class SecretUnreadable(SheetstreamError):
    """A sealed secret of a source cannot be decrypted with the keys at hand (a wrong or missing secret key)."""

    def __init__(self, message: str, *, source_id: str) -> None:
        super().__init__(message)
        self.source_id = source_id
