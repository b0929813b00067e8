"""One strict emulator per test session, two service accounts, and Google's own clients pointed at it.

Tests share the emulator but not their data: each creates its own spreadsheets. Faults and quota counts are
reset after every test. The clock is a `FakeClock` the quota tests move forward.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from sheetstream.emulator import RunningEmulator, run_emulator
from sheetstream.emulator.clients import credentials, discovery_service, gspread_client, service_account_info

ROBOT = "robot@sheetstream-test.iam.gserviceaccount.com"
OTHER = "other@sheetstream-test.iam.gserviceaccount.com"


class FakeClock:
    """An injectable clock: real time plus an offset that tests advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.offset += seconds


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def emulator(clock: FakeClock) -> Iterator[RunningEmulator]:
    with run_emulator(strict=True, clock=clock, push_delay_s=0.05) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "emulator" in request.fixturenames:
        emu: RunningEmulator = request.getfixturevalue("emulator")
        with emu.state.lock:
            emu.state.faults.reset()
            emu.state.quotas.reset()
            emu.state.quotas.configure(
                read_per_user=60, read_per_project=300, write_per_user=60, write_per_project=300
            )


@pytest.fixture(scope="session")
def robot_info(emulator: RunningEmulator) -> dict[str, str]:
    return service_account_info(ROBOT, emulator.base_url, emulator.state)


@pytest.fixture(scope="session")
def other_info(emulator: RunningEmulator) -> dict[str, str]:
    return service_account_info(OTHER, emulator.base_url, emulator.state)


@pytest.fixture(scope="session")
def robot_creds(robot_info: dict[str, str]) -> Any:
    return credentials(robot_info)


@pytest.fixture(scope="session")
def gc(emulator: RunningEmulator, robot_creds: Any) -> Iterator[Any]:
    client = gspread_client(emulator.base_url, robot_creds)
    yield client
    client.http_client.session.close()


@pytest.fixture(scope="session")
def other_gc(emulator: RunningEmulator, other_info: dict[str, str]) -> Iterator[Any]:
    client = gspread_client(emulator.base_url, credentials(other_info))
    yield client
    client.http_client.session.close()


@pytest.fixture(scope="session")
def sheets(emulator: RunningEmulator, robot_creds: Any) -> Iterator[Any]:
    service = discovery_service("sheets", emulator.base_url, robot_creds)
    yield service
    service.close()


@pytest.fixture(scope="session")
def drive(emulator: RunningEmulator, robot_creds: Any) -> Iterator[Any]:
    service = discovery_service("drive", emulator.base_url, robot_creds)
    yield service
    service.close()


@pytest.fixture(scope="session")
def other_sheets(emulator: RunningEmulator, other_info: dict[str, str]) -> Iterator[Any]:
    service = discovery_service("sheets", emulator.base_url, credentials(other_info))
    yield service
    service.close()
