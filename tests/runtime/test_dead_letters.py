"""Retries and dead letters in the process: the retry helper, the dispatcher, hints, the bus's sink and replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sheetstream.buses.base import Bus, Delivery
from sheetstream.buses.memory import MemoryBus
from sheetstream.core.codec import changeset_to_json, encode_changeset
from sheetstream.core.model import ChangeSet, SetCell
from sheetstream.errors import DeadLetterNotFound, StoreError
from sheetstream.runtime import metrics
from sheetstream.runtime.dead_letters import (
    DeadLetters,
    Hint,
    ReplayFailed,
    RetriesExhausted,
    changeset_key,
    with_retries,
)
from sheetstream.runtime.dispatcher import Dispatcher
from sheetstream.stores.base import DeadLetter, NewDeadLetter, NewSource
from sheetstream.stores.memory import MemoryStore

NOW = datetime(2026, 2, 1, tzinfo=UTC)


def cs(version: int, source: str = "S") -> ChangeSet:
    return ChangeSet(source, "E", version, NOW, (SetCell(0, 0, 0, "A1", "", f"v{version}"),))


class Faulty:
    """Fails the first `failures` calls with ValueError(`message`), then works; counts the calls."""

    def __init__(self, failures: int, message: str = "broken") -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ValueError(f"{self.message} #{self.calls}")
        return "done"


# --- with_retries ------------------------------------------------------------------------------------------------


async def test_with_retries_returns_once_a_try_works() -> None:
    action = Faulty(failures=2)
    assert await with_retries(action, 3, initial_s=0) == "done"
    assert action.calls == 3


async def test_with_retries_gives_up_after_the_given_tries_with_the_last_error() -> None:
    action = Faulty(failures=10)
    with pytest.raises(RetriesExhausted) as caught:
        await with_retries(action, 4, initial_s=0)
    assert action.calls == 4
    assert caught.value.attempts == 4
    assert str(caught.value) == "ValueError: broken #4"


async def test_with_retries_tries_at_least_once() -> None:
    action = Faulty(failures=1)
    with pytest.raises(RetriesExhausted):
        await with_retries(action, 0, initial_s=0)
    assert action.calls == 1


# --- the dispatcher ---------------------------------------------------------------------------------------------


class RefusingHub:
    """A hub that refuses the versions in `refuse` (until they are removed) and records the rest."""

    def __init__(self, refuse: set[int]) -> None:
        self.refuse = refuse
        self.tries: dict[int, int] = {}
        self.published: list[int] = []

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        self.tries[changeset.version] = self.tries.get(changeset.version, 0) + 1
        if changeset.version in self.refuse:
            raise ValueError(f"cannot handle version {changeset.version}")
        self.published.append(changeset.version)


class TracingDelivery(Delivery):
    __slots__ = ("log",)

    def __init__(self, changeset: ChangeSet, log: list[tuple[str, int]]) -> None:
        super().__init__(changeset)
        self.log = log

    async def ack(self) -> None:
        self.log.append(("ack", self.changeset.version))

    async def fail(self, error: str) -> None:
        self.log.append(("fail", self.changeset.version))


class ListBus(Bus):
    """Delivers a fixed list of change sets once, recording acks and fails, then ends."""

    def __init__(self, changes: list[ChangeSet]) -> None:
        self.changes = changes
        self.log: list[tuple[str, int]] = []

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def publish(self, changeset: ChangeSet) -> None:
        self.changes.append(changeset)

    async def consume(self, consumer: str) -> AsyncIterator[Delivery]:
        for changeset in self.changes:
            yield TracingDelivery(changeset, self.log)


class BrokenLetterStore(MemoryStore):
    """A store that cannot keep dead letters."""

    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        raise StoreError("the disk is full")


def dispatcher_for(bus: Bus, hub: RefusingHub, store: MemoryStore, tries: int = 3) -> Dispatcher:
    dispatcher = Dispatcher(
        bus, hub, dead_letters=DeadLetters(store, clock=lambda: NOW), max_deliveries=tries
    )
    dispatcher.dispatch_retry_s = 0
    return dispatcher


async def test_a_failing_change_set_is_tried_n_times_then_set_aside_and_acked() -> None:
    store, hub = MemoryStore(), RefusingHub(refuse={2})
    bus = ListBus([cs(1), cs(2), cs(3)])
    added = metrics.DEAD_LETTERS_ADDED.labels(kind="changeset")._value.get()
    await dispatcher_for(bus, hub, store, tries=3).run()
    assert hub.tries == {1: 1, 2: 3, 3: 1}
    assert hub.published == [1, 3]
    assert bus.log == [("ack", 1), ("ack", 2), ("ack", 3)]
    [letter], _ = await store.list_dead_letters()
    assert (letter.kind, letter.source, letter.attempts) == ("changeset", "S", 3)
    assert letter.error == "ValueError: cannot handle version 2"
    assert letter.payload == changeset_to_json(cs(2))
    assert letter.key == changeset_key(cs(2))
    assert letter.first_failed_at == NOW
    assert metrics.DEAD_LETTERS_ADDED.labels(kind="changeset")._value.get() == added + 1


async def test_a_change_set_that_works_on_a_retry_is_no_dead_letter() -> None:
    store = MemoryStore()

    hub = RefusingHub(refuse={1})
    original = hub.publish

    async def refuse_once(changeset: ChangeSet, frame: bytes) -> None:
        try:
            await original(changeset, frame)
        finally:
            hub.refuse.discard(changeset.version)

    hub.publish = refuse_once  # type: ignore[method-assign]
    bus = ListBus([cs(1)])
    await dispatcher_for(bus, hub, store).run()
    assert hub.tries == {1: 2}
    assert hub.published == [1]
    assert await store.count_dead_letters() == 0
    assert bus.log == [("ack", 1)]


async def test_without_a_dead_letter_store_the_bus_gets_the_failure() -> None:
    hub = RefusingHub(refuse={1})
    bus = ListBus([cs(1), cs(2)])
    dispatcher = Dispatcher(bus, hub, max_deliveries=2)
    dispatcher.dispatch_retry_s = 0
    await dispatcher.run()
    assert hub.tries[1] == 2
    assert bus.log == [("fail", 1), ("ack", 2)]


async def test_when_the_store_cannot_keep_the_letter_the_bus_keeps_the_message() -> None:
    hub = RefusingHub(refuse={1})
    bus = ListBus([cs(1), cs(2)])
    await dispatcher_for(bus, hub, BrokenLetterStore()).run()
    assert bus.log == [("fail", 1), ("ack", 2)]
    assert hub.published == [2]


# --- what a bus gives up on --------------------------------------------------------------------------------------


async def test_a_message_the_bus_gave_up_on_is_a_change_set_letter_merged_with_the_dispatchers() -> None:
    store = MemoryStore()
    letters = DeadLetters(store, clock=lambda: NOW)
    await letters.changeset_failed(cs(4), "ValueError: x", 5)
    await letters.bus_gave_up(encode_changeset(cs(4)), "not acknowledged", 5, "prefix:changes:0/1-0")
    [letter], _ = await store.list_dead_letters()
    assert (letter.attempts, letter.error, letter.source) == (10, "not acknowledged", "S")


async def test_an_undecodable_message_is_kept_raw_and_cannot_be_replayed() -> None:
    store, bus = MemoryStore(), MemoryBus()
    await bus.open()
    letters = DeadLetters(store, bus=bus, clock=lambda: NOW)
    await letters.bus_gave_up(b"\xff{not json", "cannot decode: invalid JSON", 1, "prefix:changes:0/7-0")
    [letter], _ = await store.list_dead_letters()
    assert (letter.kind, letter.source, letter.attempts) == ("changeset", None, 1)
    assert letter.payload == {"entry": "prefix:changes:0/7-0", "data": "\ufffd{not json"}
    with pytest.raises(ReplayFailed) as caught:
        await letters.replay(letter.id)
    assert "no change set" in caught.value.error
    assert caught.value.letter.attempts == 2
    assert (await store.get_dead_letter(letter.id)).error == caught.value.error


# --- hints -------------------------------------------------------------------------------------------------------


class FlakyControl:
    """A SourceControl whose `refresh` raises while `broken`; records the refreshes that worked."""

    def __init__(self, broken: bool = True) -> None:
        self.broken = broken
        self.tries = 0
        self.refreshed: list[str] = []

    def refresh(self, source_id: str) -> None:
        self.tries += 1
        if self.broken:
            raise ConnectionError("monitor unreachable")
        self.refreshed.append(source_id)

    def reload(self, source_id: str) -> None:
        """Not used by hints."""


async def google_source(store: MemoryStore, spreadsheet_id: str) -> str:
    record = await store.create_source(
        NewSource(kind="google_sheets", config={"spreadsheet_id": spreadsheet_id}), now=NOW
    )
    return record.id


async def test_a_hint_is_handled_with_retries() -> None:
    store = MemoryStore()
    source_id = await google_source(store, "sheet-1")
    control = FlakyControl(broken=False)
    letters = DeadLetters(store, control=control, max_deliveries=3, clock=lambda: NOW)
    assert await letters.handle_hint(Hint("apps_script", "sheet-1")) == [source_id]
    assert control.refreshed == [source_id]


async def test_a_hint_that_keeps_failing_becomes_a_letter_and_replays_once_fixed() -> None:
    store = MemoryStore()
    source_id = await google_source(store, "sheet-2")
    control = FlakyControl()
    letters = DeadLetters(store, control=control, max_deliveries=3, clock=lambda: NOW)
    letters.retry_initial_s = 0
    letter = await letters.handle_hint(Hint("drive_push", "sheet-2"))
    assert isinstance(letter, DeadLetter)
    assert control.tries == 3
    assert (letter.kind, letter.source, letter.attempts) == ("hint", None, 3)
    assert letter.payload == {"origin": "drive_push", "spreadsheet_id": "sheet-2"}
    assert letter.error == "ConnectionError: monitor unreachable"

    with pytest.raises(ReplayFailed) as caught:  # still broken: one more attempt, the letter stays
        await letters.replay(letter.id)
    assert caught.value.letter.attempts == 4 and caught.value.letter.id == letter.id

    control.broken = False
    await letters.replay(letter.id)
    assert control.refreshed == [source_id]
    with pytest.raises(DeadLetterNotFound):
        await store.get_dead_letter(letter.id)


# --- replaying change sets ---------------------------------------------------------------------------------------


async def test_replaying_a_change_set_publishes_it_and_deletes_the_letter() -> None:
    store, bus = MemoryStore(), MemoryBus()
    await bus.open()
    consumer = bus.consume("test")
    letters = DeadLetters(store, bus=bus, clock=lambda: NOW)
    letter = await letters.changeset_failed(cs(9), "ValueError: x", 5)
    await letters.replay(letter.id)
    delivery = await anext(consumer)
    assert delivery.changeset == cs(9)
    assert await store.count_dead_letters() == 0
    await bus.close()


async def test_a_replay_the_bus_refuses_keeps_the_letter_with_the_new_error() -> None:
    store, bus = MemoryStore(), MemoryBus()  # never opened... then closed: publishing fails
    await bus.close()
    letters = DeadLetters(store, bus=bus, clock=lambda: NOW)
    letter = await letters.changeset_failed(cs(9), "ValueError: x", 5)
    with pytest.raises(ReplayFailed) as caught:
        await letters.replay(letter.id)
    kept = await store.get_dead_letter(letter.id)
    assert kept.attempts == 6
    assert kept.error == caught.value.error == "RuntimeError: cannot publish on a closed bus"


async def test_replaying_an_unknown_letter_is_not_found() -> None:
    with pytest.raises(DeadLetterNotFound):
        await DeadLetters(MemoryStore()).replay("12345")


async def test_the_depth_gauge_is_read_from_the_store() -> None:
    store = MemoryStore()
    letters = DeadLetters(store, clock=lambda: NOW)
    for version in (1, 2):
        await letters.changeset_failed(cs(version), "e", 1)
    await metrics.count_dead_letters(store)
    assert metrics.DEAD_LETTERS._value.get() == 2
    await metrics.count_dead_letters(BrokenCountStore())  # a failing store leaves the last value
    assert metrics.DEAD_LETTERS._value.get() == 2


class BrokenCountStore(MemoryStore):
    async def count_dead_letters(self) -> int:
        raise StoreError("down")
