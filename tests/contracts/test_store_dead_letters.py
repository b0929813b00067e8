"""The dead-letter part of the Store contract over every store backend (see conftest.STORE_BACKENDS)."""

from __future__ import annotations

from tests.contracts.store_dead_letters_contract import DeadLettersContract


class TestStoreDeadLetters(DeadLettersContract):
    """Runs once per backend through the parametrised `store` fixture."""
