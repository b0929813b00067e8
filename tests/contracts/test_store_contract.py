"""The Store contract over every store backend (see conftest.STORE_BACKENDS)."""

from __future__ import annotations

from tests.contracts.store_contract import StoreContract


class TestStore(StoreContract):
    """Runs once per backend through the parametrised `store` fixture."""
