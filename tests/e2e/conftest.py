"""Fixtures for end-to-end tests against `sheetstream serve` running as a child process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.upstream import upstream

__all__ = ["server", "upstream"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A running server with a fresh SQLite store; failing sources are retried at least every second."""
    proc = ServerProcess(tmp_path, "--backoff-max-s", "1").start()
    yield proc
    proc.stop()
