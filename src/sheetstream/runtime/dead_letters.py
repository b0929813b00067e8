"""Dead letters: change sets and hints that kept failing, set aside in the store with their error, and replayed.

- `with_retries(action, tries)` runs a handler up to `tries` times (`Settings.max_deliveries`) with a short
  exponential backoff in between, in the process: it works the same on every bus, the in-process one included.
- `DeadLetters` sets aside what still failed: a change set the dispatcher could not hand to the hub (payload:
  the change set as core.codec JSON), a hook's hint whose handling raised (payload: the `Hint`), and what a bus
  with redelivery gave up on (`bus_gave_up`, the bus's `dead_letter_sink`). Each letter has a key naming what
  failed, so a failure seen by several gateway nodes, or again later, is one letter whose attempts add up.
- `DeadLetters.replay(id)` handles a letter again: a change set is published on the bus again (gateway sessions
  drop versions their client already has), a hint is handled again. Success deletes the letter; a failure keeps
  it with one more attempt and the new error (`ReplayFailed`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from sheetstream.buses.base import Bus
from sheetstream.core.codec import DecodeError, changeset_from_json, changeset_to_json, decode_changeset
from sheetstream.core.model import ChangeSet
from sheetstream.errors import DeadLetterNotFound
from sheetstream.runtime import metrics
from sheetstream.runtime.hints import sources_reading
from sheetstream.stores.base import DeadLetter, NewDeadLetter, Store

if TYPE_CHECKING:
    from sheetstream.runtime.services import Services, SourceControl

log = structlog.get_logger("sheetstream.dead_letters")

T = TypeVar("T")

RETRY_INITIAL_S = 0.05
"""Wait before the second try; it doubles before each next one (5 tries: 0.75 s of waiting in all)."""
RETRY_MAX_S = 1.0
HINT_ORIGINS = ("drive_push", "apps_script")


def describe(exc: BaseException) -> str:
    """An error as a letter shows it: its type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RetriesExhausted(Exception):
    """Every try failed: `attempts` tries, the last one with `error`."""

    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(describe(error))
        self.error = error
        self.attempts = attempts


async def with_retries(
    action: Callable[[], Awaitable[T]],
    tries: int,
    *,
    initial_s: float = RETRY_INITIAL_S,
    max_s: float = RETRY_MAX_S,
) -> T:
    """`action()`'s result, trying up to `tries` times with exponential backoff; RetriesExhausted if all fail."""
    delay = initial_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return await action()
        except Exception as exc:
            if attempt >= tries:
                raise RetriesExhausted(exc, attempt) from exc
            log.info("failed; trying again", error=describe(exc), attempt=attempt, retry_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_s)


class ReplayFailed(Exception):
    """Handling a letter again failed; `letter` is the letter as it is kept now (one more attempt, this error)."""

    def __init__(self, letter: DeadLetter, error: str) -> None:
        super().__init__(error)
        self.letter = letter
        self.error = error


@dataclass(frozen=True, slots=True)
class Hint:
    """A hook's news that a spreadsheet changed: its sources should read it now."""

    origin: str
    """`drive_push` or `apps_script`."""
    spreadsheet_id: str

    @property
    def key(self) -> str:
        """The dead-letter key: one letter per origin and spreadsheet."""
        return f"hint:{self.origin}:{self.spreadsheet_id}"

    def to_json(self) -> dict[str, Any]:
        """The letter's payload: everything handling the hint again needs."""
        return {"origin": self.origin, "spreadsheet_id": self.spreadsheet_id}

    @classmethod
    def from_json(cls, data: Any) -> Hint:
        """The hint of a letter's payload; ValueError if it is not one."""
        if (
            not isinstance(data, dict)
            or data.get("origin") not in HINT_ORIGINS
            or not isinstance(data.get("spreadsheet_id"), str)
        ):
            raise ValueError(f"not a hint: {data!r}")
        return cls(data["origin"], data["spreadsheet_id"])


async def apply_hint(store: Store, control: SourceControl, hint: Hint) -> list[str]:
    """Ask the monitor to read every source of the hint's spreadsheet now; their ids."""
    source_ids = await sources_reading(store, hint.spreadsheet_id)
    for source_id in source_ids:
        control.refresh(source_id)
    return source_ids


def changeset_key(changeset: ChangeSet) -> str:
    """The dead-letter key of a change set: one letter per source, epoch and version."""
    return f"changeset:{changeset.source}:{changeset.epoch}:{changeset.version}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeadLetters:
    """Sets what kept failing aside in the store, and replays it."""

    def __init__(
        self,
        store: Store,
        *,
        bus: Bus | None = None,
        control: SourceControl | None = None,
        max_deliveries: int = 5,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.bus = bus
        self.control = control
        self.max_deliveries = max_deliveries
        self.clock = clock
        self.retry_initial_s = RETRY_INITIAL_S

    @classmethod
    def of(cls, services: Services, clock: Callable[[], datetime] = _utc_now) -> DeadLetters:
        """The dead letters of a running process."""
        return cls(
            services.store,
            bus=services.bus,
            control=services.monitor,
            max_deliveries=services.settings.max_deliveries,
            clock=clock,
        )

    async def set_aside(self, new: NewDeadLetter) -> DeadLetter:
        """Add the letter to the store (or to the letter with its key), count and log it."""
        letter = await self.store.add_dead_letter(new, now=self.clock())
        metrics.DEAD_LETTERS_ADDED.labels(kind=new.kind).inc()
        log.error(
            "set aside as a dead letter",
            letter=letter.id,
            kind=letter.kind,
            source=letter.source,
            attempts=letter.attempts,
            error=new.error,
        )
        return letter

    async def changeset_failed(self, changeset: ChangeSet, error: str, attempts: int) -> DeadLetter:
        """A change set that failed `attempts` times."""
        return await self.set_aside(
            NewDeadLetter(
                kind="changeset",
                source=changeset.source,
                payload=changeset_to_json(changeset),
                error=error,
                attempts=attempts,
                key=changeset_key(changeset),
            )
        )

    async def bus_gave_up(self, data: bytes, error: str, tries: int, entry: str) -> None:
        """The bus's `dead_letter_sink`: a message it gave up on, as a change set, or raw if it does not decode."""
        try:
            changeset = decode_changeset(data)
        except DecodeError:
            # Replaying it fails the same way; the letter shows what arrived, for whoever must find its sender.
            payload = {"entry": entry, "data": data.decode(errors="replace")}
            new = NewDeadLetter("changeset", None, payload, error, tries, key=f"entry:{entry}")
            await self.set_aside(new)
            return
        await self.changeset_failed(changeset, error, tries)

    async def handle_hint(self, hint: Hint) -> list[str] | DeadLetter:
        """Handle a hint with retries: the ids of the sources asked to read, or its letter if every try failed."""
        if self.control is None:
            raise RuntimeError("handling hints needs the monitor's control")
        control = self.control
        try:
            return await with_retries(
                lambda: apply_hint(self.store, control, hint), self.max_deliveries, initial_s=self.retry_initial_s
            )
        except RetriesExhausted as exc:
            new = NewDeadLetter("hint", None, hint.to_json(), str(exc), exc.attempts, key=hint.key)
            return await self.set_aside(new)

    async def replay(self, letter_id: str) -> None:
        """Handle the letter again and delete it; ReplayFailed (the letter kept) if that fails again."""
        letter = await self.store.get_dead_letter(letter_id)
        try:
            await self._handle_again(letter)
        except Exception as exc:
            error = describe(exc)
            log.warning("replay failed", letter=letter.id, kind=letter.kind, error=error)
            again = NewDeadLetter(letter.kind, letter.source, letter.payload, error, 1, key=letter.key)
            try:
                letter = await self.store.add_dead_letter(again, now=self.clock())
            except Exception as store_exc:  # the answer still says why the replay failed
                log.warning("could not record the failed replay", letter=letter.id, error=repr(store_exc))
            raise ReplayFailed(letter, error) from exc
        with contextlib.suppress(DeadLetterNotFound):  # deleted meanwhile: done either way
            await self.store.delete_dead_letter(letter.id)
        log.info("dead letter replayed", letter=letter.id, kind=letter.kind, source=letter.source)

    async def _handle_again(self, letter: DeadLetter) -> None:
        if letter.kind == "hint":
            if self.control is None:
                raise RuntimeError("replaying a hint needs the monitor's control")
            await apply_hint(self.store, self.control, Hint.from_json(letter.payload))
            return
        if self.bus is None:
            raise RuntimeError("replaying a change set needs the bus")
        try:
            changeset = changeset_from_json(letter.payload)
        except DecodeError as exc:
            raise ValueError(f"the letter holds no change set that can be decoded: {exc}") from exc
        await self.bus.publish(changeset)
