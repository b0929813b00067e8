"""What every Store must do with REST API keys. Subclass `ApiKeysContract` in a test module with a `store` fixture.

The tests make keys with fresh ids and never assume the store holds no other key, so a backend on a shared
server can run them too.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sheetstream.auth.keys import accepts, mint_key, parse_key
from sheetstream.errors import ApiKeyNotFound
from sheetstream.stores.base import ApiKeyRecord, Store

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def key(**fields: Any) -> ApiKeyRecord:
    """A key record with an id no other test uses, with any field overridden."""
    values: dict[str, Any] = {
        "id": secrets.token_hex(6),
        "name": "ci",
        "secret_hash": secrets.token_hex(32),
        "scopes": frozenset({"read"}),
        "created_at": T0,
    } | fields
    return ApiKeyRecord(**values)


class ApiKeysContract:
    """API key records: create, read, list, revoke."""

    async def test_a_created_key_reads_back_field_for_field(self, store: Store) -> None:
        record = key(name="Zoë's ☃ laptop", scopes=frozenset({"read", "write"}))
        await store.create_api_key(record)
        assert await store.get_api_key(record.id) == record

    @pytest.mark.parametrize("scopes", [{"read"}, {"write"}, {"read", "write"}])
    async def test_scopes_read_back_as_a_frozenset(self, store: Store, scopes: set[str]) -> None:
        record = key(scopes=frozenset(scopes))
        await store.create_api_key(record)
        got = await store.get_api_key(record.id)
        assert got.scopes == frozenset(scopes)
        assert isinstance(got.scopes, frozenset)

    async def test_times_in_any_zone_read_back_as_the_same_instant(self, store: Store) -> None:
        paris = timezone(timedelta(hours=2))
        record = key(created_at=datetime(2025, 6, 1, 14, 0, 0, 5, tzinfo=paris))
        await store.create_api_key(record)
        got = await store.get_api_key(record.id)
        assert got.created_at == record.created_at
        assert got.created_at.utcoffset() is not None  # aware, never naive

    async def test_an_unknown_key_is_api_key_not_found(self, store: Store) -> None:
        missing = secrets.token_hex(6)
        with pytest.raises(ApiKeyNotFound) as caught:
            await store.get_api_key(missing)
        assert caught.value.key_id == missing
        with pytest.raises(ApiKeyNotFound):
            await store.revoke_api_key(missing, now=T0)

    async def test_a_taken_id_is_refused_and_the_first_key_stays(self, store: Store) -> None:
        first = key(name="first")
        await store.create_api_key(first)
        with pytest.raises(ValueError, match=first.id):
            await store.create_api_key(key(id=first.id, name="second", secret_hash="0" * 64))
        assert await store.get_api_key(first.id) == first

    async def test_list_holds_every_key_oldest_first_revoked_ones_too(self, store: Store) -> None:
        made = [key(name=f"k{n}", created_at=T0 + timedelta(seconds=n)) for n in (2, 0, 1)]
        for record in made:
            await store.create_api_key(record)
        await store.revoke_api_key(made[0].id, now=T0 + timedelta(hours=1))
        ours = {record.id for record in made}
        listed = [record for record in await store.list_api_keys() if record.id in ours]
        assert [record.name for record in listed] == ["k0", "k1", "k2"]
        assert [record.revoked_at is not None for record in listed] == [False, False, True]

    async def test_revoking_records_the_time_once(self, store: Store) -> None:
        record = key()
        await store.create_api_key(record)
        assert (await store.get_api_key(record.id)).revoked_at is None
        revoked = await store.revoke_api_key(record.id, now=T0 + timedelta(minutes=5))
        assert revoked.revoked_at == T0 + timedelta(minutes=5)
        assert revoked == dataclasses.replace(record, revoked_at=T0 + timedelta(minutes=5))
        again = await store.revoke_api_key(record.id, now=T0 + timedelta(days=1))
        assert again.revoked_at == T0 + timedelta(minutes=5)  # the first revocation stands
        assert await store.get_api_key(record.id) == again

    async def test_a_minted_key_is_accepted_after_the_round_trip_and_refused_once_revoked(
        self, store: Store
    ) -> None:
        text, record = mint_key("ci", ["read"], now=T0)
        await store.create_api_key(record)
        presented = parse_key(text)
        assert presented is not None
        stored = await store.get_api_key(presented.key_id)
        assert stored.secret_hash != presented.secret  # only the hash is kept
        assert accepts(stored, presented)
        await store.revoke_api_key(record.id, now=T0)
        assert not accepts(await store.get_api_key(presented.key_id), presented)

    async def test_a_revocation_is_seen_at_once_by_another_instance(
        self, store: Store, twin_store: Store
    ) -> None:
        record = key()
        await store.create_api_key(record)
        assert (await twin_store.get_api_key(record.id)).revoked_at is None
        await twin_store.revoke_api_key(record.id, now=T0)
        assert (await store.get_api_key(record.id)).revoked_at == T0
