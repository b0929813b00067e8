"""The Bus contract over every bus backend (see conftest.BUS_BACKENDS)."""

from __future__ import annotations

from tests.contracts.bus_contract import BusContract


class TestBus(BusContract):
    """Runs once per backend through the parametrised `bus` fixture."""
