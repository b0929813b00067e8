"""Source kinds by name, imported lazily: ``open_source("file", {"path": "/data/prices.csv"})``.

`KINDS` maps a kind to "module:Class"; each class validates its own config in a `validate_config` classmethod,
which the REST API calls through `validate_config` to answer a bad config with 422 before storing it.
"""

from __future__ import annotations

import importlib
from typing import Any

from sheetstream.auth.secretbox import still_sealed
from sheetstream.errors import ConfigError
from sheetstream.sources.base import Source

KINDS: dict[str, str] = {
    "file": "sheetstream.sources.file:FileSource",
    "http_csv": "sheetstream.sources.http:HttpCsvSource",
    "http_json": "sheetstream.sources.http:HttpJsonSource",
    "google_sheets": "sheetstream.sources.google:GoogleSheetsSource",
}


def source_class(kind: str) -> type[Source]:
    """The Source class of `kind`; ConfigError naming the known kinds if there is none."""
    target = KINDS.get(kind) if isinstance(kind, str) else None
    if target is None:
        raise ConfigError(f"unknown source kind {kind!r}; known kinds: {', '.join(KINDS)}")
    module_name, _, class_name = target.partition(":")
    cls: type[Source] = getattr(importlib.import_module(module_name), class_name)
    return cls


def validate_config(kind: str, config: Any) -> None:
    """Raise ConfigError if `config` is not a valid config for a source of `kind`."""
    cls = source_class(kind)
    if not isinstance(config, dict):
        raise ConfigError(f"{kind} source: config must be a JSON object, got {type(config).__name__}")
    if still_sealed(config):  # read back from the store with the wrong key, or with none
        raise ConfigError(
            f"{kind} source: its credentials could not be decrypted with this server's secret key; send them again"
        )
    validator = getattr(cls, "validate_config", None)
    if validator is not None:
        validator(config)


def open_source(kind: str, config: dict[str, Any]) -> Source:
    """A new Source of `kind` reading `config` (validated first: ConfigError names the bad field)."""
    validate_config(kind, config)
    return source_class(kind)(config)
