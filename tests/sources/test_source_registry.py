"""Opening sources by kind and validating their configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheetstream.errors import ConfigError
from sheetstream.sources.file import FileSource
from sheetstream.sources.http import HttpCsvSource, HttpJsonSource
from sheetstream.sources.registry import KINDS, open_source, validate_config


async def test_open_each_kind(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x\n")
    file_source = open_source("file", {"path": str(path)})
    assert isinstance(file_source, FileSource)
    assert (await file_source.fetch(None)).snapshot is not None
    for kind, cls in (("http_csv", HttpCsvSource), ("http_json", HttpJsonSource)):
        source = open_source(kind, {"url": "http://127.0.0.1:9/x"})
        assert isinstance(source, cls)
        assert source.kind == kind
        await source.aclose()


def test_unknown_kind() -> None:
    with pytest.raises(ConfigError) as info:
        open_source("google_sheetz", {})
    assert str(info.value) == "unknown source kind 'google_sheetz'; known kinds: file, http_csv, http_json, google_sheets"
    assert list(KINDS) == ["file", "http_csv", "http_json", "google_sheets"]


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("file", {}, 'file source: config field "path" is required'),
        ("file", {"path": ""}, 'config field "path" is required'),
        ("file", {"path": "a.ods"}, "cannot tell the format of 'a.ods' from its extension"),
        ("file", {"path": "a.csv", "settle_s": -1}, '"settle_s" must be a number >= 0'),
        ("file", {"path": "a.csv", "pth": 1}, r"unknown config field\(s\) \['pth'\]"),
        ("http_csv", {"headers": {}}, 'http_csv source: config field "url" is required'),
        ("http_json", {"url": "localhost:8000/x"}, "must be an absolute http:// or https:// URL"),
        ("http_json", [], "http_json source: config must be a JSON object, got list"),
    ],
)
def test_validate_config_rejects(kind: str, config: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(kind, config)


def test_validate_config_accepts_pass_through_fields() -> None:
    validate_config("file", {"path": "/data/x.xlsx", "key_column": "id", "poll_interval_s": 2})
    validate_config("http_json", {"url": "https://example.com/x", "key_column": "id", "timeout_s": 3})
