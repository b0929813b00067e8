"""The API key part of the Store contract over every store backend (see conftest.STORE_BACKENDS)."""

from __future__ import annotations

from tests.contracts.store_keys_contract import ApiKeysContract


class TestStoreApiKeys(ApiKeysContract):
    """Runs once per backend through the parametrised `store` fixture."""
