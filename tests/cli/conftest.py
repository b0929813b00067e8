"""Fixtures for the command-line tests: one running server shared by the tests that only need to talk to one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import ServerProcess


@pytest.fixture(scope="package")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A running server with a fresh SQLite store; each test makes its own sources on it."""
    proc = ServerProcess(tmp_path_factory.mktemp("cli-server"), "--backoff-max-s", "1").start()
    yield proc
    proc.stop()
