"""The rule for backends whose tests need a server: fail on CI, skip elsewhere, when it is unreachable."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.contracts.conftest import require_service


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        return int(server.getsockname()[1])


def test_a_reachable_server_gives_its_url(listening: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEETSTREAM_TEST_X_URL", f"redis://127.0.0.1:{listening}/0")
    assert (
        require_service("SHEETSTREAM_TEST_X_URL", "redis://127.0.0.1:1/0")
        == f"redis://127.0.0.1:{listening}/0"
    )


def test_the_default_url_is_used_without_the_variable(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHEETSTREAM_TEST_X_URL", raising=False)
    url = f"postgresql://u@127.0.0.1:{listening}/db"
    assert require_service("SHEETSTREAM_TEST_X_URL", url) == url


def test_an_unreachable_server_skips_locally(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set SHEETSTREAM_TEST_X_URL"):
        require_service("SHEETSTREAM_TEST_X_URL", f"redis://127.0.0.1:{closed_port}/0")


def test_an_unreachable_server_fails_on_ci(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"cannot reach 127.0.0.1:{closed_port}"):
        require_service("SHEETSTREAM_TEST_X_URL", f"redis://127.0.0.1:{closed_port}/0")
