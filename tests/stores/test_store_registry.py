"""Choosing a store by URL."""

from __future__ import annotations

import pytest

from sheetstream.errors import ConfigError
from sheetstream.stores.memory import MemoryStore
from sheetstream.stores.registry import STORES, lookup, open_store
from sheetstream.stores.sqlite import SqliteStore


def test_memory_url() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_each_memory_store_is_its_own() -> None:
    assert open_store("memory://") is not open_store("memory://")


def test_sqlite_url() -> None:
    store = open_store("sqlite:///data/s.db")
    assert isinstance(store, SqliteStore) and store.path == "data/s.db"


def test_scheme_is_case_insensitive() -> None:
    assert isinstance(open_store("SQLite:///s.db"), SqliteStore)


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"^no such store: 'sqlit'\. Did you mean 'sqlite'\?$"):
        open_store("sqlit:///s.db")


def test_unknown_scheme_without_a_close_one_lists_the_known() -> None:
    with pytest.raises(ConfigError, match=r"no such store: 'zzz'\. Known: memory, postgres, postgresql, sqlite\."):
        open_store("zzz://x")


def test_a_url_without_scheme_says_so() -> None:
    with pytest.raises(ConfigError, match="has no scheme"):
        open_store("sheetstream.db")


def test_memory_store_takes_no_options() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        open_store("memory://somewhere")


def test_a_backend_whose_module_is_missing_says_it_is_unavailable() -> None:
    table = {**STORES, "postgresql": "sheetstream.stores.no_such_module:PostgresStore"}
    with pytest.raises(ConfigError, match="'postgresql' store is not available"):
        lookup(table, "store", "postgresql://localhost/db")
