"""Choosing a bus by URL."""

from __future__ import annotations

import pytest

from sheetstream.buses.memory import MemoryBus
from sheetstream.buses.registry import open_bus
from sheetstream.errors import ConfigError


def test_memory_url() -> None:
    assert isinstance(open_bus("memory://"), MemoryBus)


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"^no such bus: 'memroy'\. Did you mean 'memory'\?$"):
        open_bus("memroy://")


def test_memory_bus_takes_no_options() -> None:
    with pytest.raises(ConfigError, match="memory://"):
        open_bus("memory://elsewhere")
