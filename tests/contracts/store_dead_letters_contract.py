"""What every Store must do with dead letters. Subclass `DeadLettersContract` in a test module with a `store` fixture.

The tests add their own letters and never assume the store holds no other, so a backend on a shared server can
run them too.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sheetstream.errors import DeadLetterNotFound
from sheetstream.stores.base import DeadLetter, NewDeadLetter, NewSource, Store

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
CHANGESET = {
    "source": "s1",
    "epoch": "e1",
    "version": 7,
    "at": "2025-03-01T12:00:00.000Z",
    "ops": [{"op": "set", "tab": 0, "row": 1, "col": 2, "a1": "C2", "old": "", "new": "naïve ☃"}],
}


def letter(**fields: Any) -> NewDeadLetter:
    """A change-set letter with a key no other test uses, with any field overridden."""
    values: dict[str, Any] = {
        "kind": "changeset",
        "source": "s1",
        "payload": CHANGESET,
        "error": "ValueError('boom')",
        "attempts": 5,
        "key": f"changeset:{uuid.uuid4().hex}",
    } | fields
    return NewDeadLetter(**values)


async def all_letters(store: Store, limit: int = 100) -> list[DeadLetter]:
    """Every letter, page by page."""
    found: list[DeadLetter] = []
    cursor: str | None = None
    while True:
        page, cursor = await store.list_dead_letters(limit=limit, cursor=cursor)
        found += page
        if cursor is None:
            return found


class DeadLettersContract:
    """The dead-letter part of the Store port, backend by backend."""

    async def test_add_returns_the_letter_and_get_reads_it_back(self, store: Store) -> None:
        new = letter()
        added = await store.add_dead_letter(new, now=T0)
        assert added.id and added.id.isdigit()
        assert (added.kind, added.source, added.payload, added.error, added.attempts, added.key) == (
            "changeset",
            "s1",
            CHANGESET,
            "ValueError('boom')",
            5,
            new.key,
        )
        assert added.first_failed_at == T0 and added.last_failed_at == T0
        assert await store.get_dead_letter(added.id) == added

    async def test_a_hint_letter_without_source(self, store: Store) -> None:
        payload = {"origin": "apps_script", "spreadsheet_id": "abc"}
        key = f"hint:apps_script:{uuid.uuid4().hex}"
        added = await store.add_dead_letter(
            NewDeadLetter(kind="hint", source=None, payload=payload, error="e", attempts=1, key=key), now=T0
        )
        assert (added.kind, added.source, added.key, added.payload) == ("hint", None, key, payload)
        assert await store.get_dead_letter(added.id) == added

    async def test_times_come_back_in_utc(self, store: Store) -> None:
        at = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        added = await store.add_dead_letter(letter(), now=at)
        got = await store.get_dead_letter(added.id)
        assert got.first_failed_at == at and got.first_failed_at.utcoffset() is not None

    async def test_the_payload_is_not_shared_with_the_caller(self, store: Store) -> None:
        payload: dict[str, Any] = {"nested": {"list": [1, 2.5, None, True]}}
        added = await store.add_dead_letter(letter(payload=payload), now=T0)
        payload["nested"]["list"].append("later")
        added.payload["nested"]["list"].append("mine")
        assert (await store.get_dead_letter(added.id)).payload == {"nested": {"list": [1, 2.5, None, True]}}

    async def test_nul_in_texts_comes_back_replaced_and_long_errors_are_cut(self, store: Store) -> None:
        added = await store.add_dead_letter(
            letter(error="bad \x00 byte" + "x" * 10_000, source="s\x00", payload={"raw": "a\x00b"}), now=T0
        )
        got = await store.get_dead_letter(added.id)
        assert got.error.startswith("bad \ufffd byte") and len(got.error) == 4000
        assert got.source == "s\ufffd"
        assert got.payload == {"raw": "a\x00b"}  # JSON escapes it
        assert got == added

    async def test_a_letter_with_a_known_key_updates_that_letter(self, store: Store) -> None:
        first = await store.add_dead_letter(letter(key="changeset:same", attempts=5), now=T0)
        before = await store.count_dead_letters()
        later = T0 + timedelta(minutes=3)
        again = await store.add_dead_letter(
            letter(key="changeset:same", attempts=1, error="second"), now=later
        )
        assert again.id == first.id
        assert (again.attempts, again.error) == (6, "second")
        assert (again.first_failed_at, again.last_failed_at) == (T0, later)
        assert again.payload == first.payload
        assert await store.count_dead_letters() == before
        assert await store.get_dead_letter(first.id) == again

    async def test_letters_with_other_keys_are_not_merged(self, store: Store) -> None:
        a = await store.add_dead_letter(letter(), now=T0)
        b = await store.add_dead_letter(letter(), now=T0)
        assert a.id != b.id
        assert (await store.get_dead_letter(a.id)).attempts == 5

    async def test_count_follows_adds_and_deletes(self, store: Store) -> None:
        before = await store.count_dead_letters()
        added = [await store.add_dead_letter(letter(), now=T0) for _ in range(3)]
        assert await store.count_dead_letters() == before + 3
        await store.delete_dead_letter(added[1].id)
        assert await store.count_dead_letters() == before + 2

    async def test_list_is_newest_first_in_pages(self, store: Store) -> None:
        mine = [await store.add_dead_letter(letter(), now=T0) for _ in range(5)]
        pages: list[list[DeadLetter]] = []
        cursor: str | None = None
        while True:
            page, cursor = await store.list_dead_letters(limit=2, cursor=cursor)
            pages.append(page)
            if cursor is None:
                break
            assert len(page) == 2
        seen = [found for page in pages for found in page]
        assert len(pages) >= 3
        assert [int(found.id) for found in seen] == sorted((int(found.id) for found in seen), reverse=True)
        assert len({found.id for found in seen}) == len(seen)
        assert [found for found in seen if found in mine] == list(reversed(mine))

    async def test_list_returns_full_letters(self, store: Store) -> None:
        added = await store.add_dead_letter(letter(), now=T0)
        assert [found for found in await all_letters(store) if found.id == added.id] == [added]

    async def test_an_updated_letter_keeps_its_place(self, store: Store) -> None:
        old = await store.add_dead_letter(letter(key="changeset:place"), now=T0)
        new = await store.add_dead_letter(letter(), now=T0)
        await store.add_dead_letter(letter(key="changeset:place", attempts=1), now=T0 + timedelta(hours=1))
        ids = [found.id for found in await all_letters(store)]
        assert ids.index(new.id) < ids.index(old.id)

    async def test_list_refuses_a_forged_cursor_and_a_bad_limit(self, store: Store) -> None:
        with pytest.raises(ValueError, match="cursor"):
            await store.list_dead_letters(cursor="%%%not-a-cursor")
        with pytest.raises(ValueError, match="cursor"):
            await store.list_dead_letters(cursor="YWJj")  # base64 of "abc": not a letter id
        with pytest.raises(ValueError, match="limit"):
            await store.list_dead_letters(limit=0)

    async def test_delete_removes_the_letter(self, store: Store) -> None:
        added = await store.add_dead_letter(letter(), now=T0)
        await store.delete_dead_letter(added.id)
        with pytest.raises(DeadLetterNotFound):
            await store.get_dead_letter(added.id)
        with pytest.raises(DeadLetterNotFound):
            await store.delete_dead_letter(added.id)
        assert added.id not in {found.id for found in await all_letters(store)}

    async def test_ids_are_never_reused_and_a_key_is_free_again_after_delete(self, store: Store) -> None:
        first = await store.add_dead_letter(letter(key="changeset:reuse", attempts=5), now=T0)
        await store.delete_dead_letter(first.id)
        second = await store.add_dead_letter(letter(key="changeset:reuse", attempts=1), now=T0)
        assert int(second.id) > int(first.id)
        assert second.attempts == 1

    @pytest.mark.parametrize("letter_id", ["999999999", "0", "-1", "abc", "", "1.0", "٣", "9" * 40])
    async def test_unknown_ids_are_not_found(self, store: Store, letter_id: str) -> None:
        with pytest.raises(DeadLetterNotFound) as caught:
            await store.get_dead_letter(letter_id)
        assert caught.value.letter_id == letter_id
        with pytest.raises(DeadLetterNotFound):
            await store.delete_dead_letter(letter_id)

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"kind": "email"}, "kind"),
            ({"attempts": 0}, "at least once"),
            ({"payload": {"when": object()}}, "JSON"),
            ({"payload": ["not", "an", "object"]}, "object"),
            ({"key": ""}, "key"),
        ],
    )
    async def test_invalid_letters_are_refused(
        self, store: Store, fields: dict[str, Any], message: str
    ) -> None:
        before = await store.count_dead_letters()
        with pytest.raises(ValueError, match=message):
            await store.add_dead_letter(letter(**fields), now=T0)
        assert await store.count_dead_letters() == before

    async def test_a_letter_outlives_its_source(self, store: Store) -> None:
        record = await store.create_source(NewSource(kind="file", config={"path": "/a.csv"}), now=T0)
        added = await store.add_dead_letter(letter(source=record.id), now=T0)
        await store.delete_source(record.id)
        assert await store.get_dead_letter(added.id) == added

    async def test_two_processes_setting_the_same_failure_aside_make_one_letter(
        self, store: Store, twin_store: Store
    ) -> None:
        key = f"changeset:{uuid.uuid4().hex}"
        before = await store.count_dead_letters()
        added = await asyncio.gather(
            *(
                s.add_dead_letter(letter(key=key, attempts=1), now=T0)
                for _ in range(4)
                for s in (store, twin_store)
            )
        )
        assert len({found.id for found in added}) == 1
        assert (await twin_store.get_dead_letter(added[0].id)).attempts == 8
        assert await store.count_dead_letters() == before + 1
