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


class VersionConflict(SheetstreamError):
    """A commit was refused: its version is already taken or does not follow the head (fencing)."""

    def __init__(self, source_id: str, version: int, head: int) -> None:
        super().__init__(f"source {source_id!r}: version {version} refused, head is {head}")
        self.source_id = source_id
        self.version = version
        self.head = head


class StoreError(SheetstreamError):
    """The store failed (unreachable, locked, out of space, corrupt). The message says which store and why."""
