"""A manual timer for the scheduler, and a harness running the monitor against the emulator on simulated time.

`ManualTimer.advance_to(t)` wakes every waiter whose deadline has passed; `Simulation.settle()` waits (in real
time, bounded) until the scheduler is quiet, i.e. every source and job waits on the timer again. Minutes of
simulated time then pass in milliseconds, while reads still go over HTTP to a real emulator whose clock follows.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sheetstream.buses.memory import MemoryBus
from sheetstream.core.model import ChangeSet
from sheetstream.runtime.hints import GoogleHints
from sheetstream.runtime.monitor import Monitor
from sheetstream.runtime.scheduler import QuotaSettings, Scheduler
from sheetstream.sources.base import Source
from sheetstream.sources.google import GoogleSheetsSource
from sheetstream.stores.base import NewSource, Retention, SourceStatus
from sheetstream.stores.memory import MemoryStore


class RecordingStore(MemoryStore):
    """The memory store, remembering every status it was given (source id, state, message)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[tuple[str, str, str | None]] = []

    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        self.statuses.append((source_id, status.state, status.message))
        await super().set_status(source_id, status)


@dataclass(order=True)
class _Waiter:
    deadline: float
    seq: int
    event: asyncio.Event = field(compare=False)
    active: bool = field(default=True, compare=False)


class ManualTimer:
    """Simulated time: waits end when a test advances the clock past their deadline (or their event is set)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def wait(self, event: asyncio.Event, delay_s: float) -> None:
        if delay_s <= 0:
            await asyncio.sleep(0)
            return
        waiter = _Waiter(self.t + delay_s, next(self._seq), event)
        heapq.heappush(self._heap, waiter)
        try:
            await event.wait()
        finally:
            waiter.active = False

    def next_deadline(self) -> float | None:
        while self._heap and not self._heap[0].active:
            heapq.heappop(self._heap)
        return self._heap[0].deadline if self._heap else None

    def advance_to(self, t: float) -> None:
        self.t = max(self.t, t)
        while self._heap and (not self._heap[0].active or self._heap[0].deadline <= self.t):
            waiter = heapq.heappop(self._heap)
            if waiter.active:
                waiter.event.set()


class Simulation:
    """Monitor + scheduler + hints over a memory store, reading emulated spreadsheets on simulated time."""

    def __init__(self, base_url: str, credentials: dict[str, Any], timer: ManualTimer, epoch: float,
                 settings: QuotaSettings | None = None, changes_interval_s: float = 5.0) -> None:
        self.base_url = base_url
        self.credentials = credentials
        self.timer = timer
        self.epoch = epoch
        self.store = RecordingStore()
        self.bus = MemoryBus()
        self.scheduler = Scheduler(settings, timer=timer)
        self.hints = GoogleHints(self.scheduler, changes_interval_s=changes_interval_s)
        self.sources: dict[str, GoogleSheetsSource] = {}
        self.monitor = Monitor(
            self.store, self.bus, retention=Retention(), backoff_max_s=60.0, clock=self.wall,
            source_factory=self._factory, scheduler=self.scheduler,
        )

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.epoch + self.timer.now(), UTC)

    def emulator_clock(self) -> float:
        return self.epoch + self.timer.now()

    def _factory(self, kind: str, config: dict[str, Any]) -> Source:
        source = GoogleSheetsSource(config, clock=self.timer.now)
        self.sources[config["spreadsheet_id"]] = source
        return source

    async def add(self, spreadsheet_id: str, poll_interval_s: float = 5.0, **config: Any) -> str:
        record = await self.store.create_source(
            NewSource(
                kind="google_sheets",
                config={"spreadsheet_id": spreadsheet_id, "base_url": self.base_url,
                        "credentials": self.credentials, **config},
                poll_interval_s=poll_interval_s,
            ),
            now=self.wall(),
        )
        return record.id

    async def start(self) -> None:
        await self.store.open()
        await self.bus.open()
        await self.monitor.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        await self.bus.close()
        await self.store.close()

    async def settle(self, timeout_s: float = 30.0) -> None:
        """Wait (real time) until every watch and job waits on the simulated clock."""
        deadline = time.monotonic() + timeout_s
        expected = len(self.monitor.watches)
        while not (self.scheduler.quiet and len(self.scheduler.slots) >= expected):
            if time.monotonic() > deadline:
                states = [s.state for s in self.scheduler.slots.values()]
                raise AssertionError(f"simulation not settling: {len(states)} slots, states {set(states)}")
            await asyncio.sleep(0.001)

    async def run_until(self, t_end: float, events: list[tuple[float, Callable[[], None]]] | None = None) -> None:
        """Advance simulated time to `t_end`, running `events` (time, action) when their time comes."""
        pending = sorted(events or [], key=lambda e: e[0])
        index = 0
        while True:
            await self.settle()
            while index < len(pending) and pending[index][0] <= self.timer.t:
                pending[index][1]()
                index += 1
            if self.timer.t >= t_end:
                return
            candidates = [t_end]
            nd = self.timer.next_deadline()
            if nd is not None:
                candidates.append(nd)
            if index < len(pending):
                candidates.append(pending[index][0])
            self.timer.advance_to(min(candidates))

    async def unread(self, source_ids: Any) -> list[str]:
        """The sources not read successfully yet (still at version 0)."""
        return [sid for sid in source_ids if (await self.store.snapshot(sid)).version == 0]

    async def changes(self, source_id: str) -> list[ChangeSet]:
        head = await self.store.snapshot(source_id)
        return list((await self.store.changes_since(source_id, head.epoch, 0, limit=100_000)).changes)
