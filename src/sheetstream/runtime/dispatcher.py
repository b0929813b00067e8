"""The dispatcher: takes change sets off the bus and hands them, encoded once, to the local gateway's hub.

With a store, it also closes gaps the bus leaves: after the bus failed (a lost connection, a restarted Redis),
it reads from the store what came after the last change it dispatched of each watched source, so a change whose
news was lost reaches subscribers even if no later change of that source comes to reveal the gap.

A change set the hub fails to take is tried again, up to `max_deliveries` times in all with a short backoff
(runtime/dead_letters.py), then set aside as a dead letter and acked. Its subscribers do not wait for it: they
notice the missing version at the next change of its source and read it from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import structlog

from sheetstream.buses.base import Bus, Delivery
from sheetstream.core.messages import encode_change_frame
from sheetstream.core.model import ChangeSet
from sheetstream.runtime import metrics
from sheetstream.runtime.dead_letters import RETRY_INITIAL_S, DeadLetters, RetriesExhausted, with_retries
from sheetstream.stores.base import Store

log = structlog.get_logger("sheetstream.dispatcher")


class ChangeSink(Protocol):
    """Where dispatched changes go (the local gateway's `Hub`)."""

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        """Deliver one live change, already encoded as a `change` frame, to its subscribers."""


class Dispatcher:
    """Consumes the bus for one gateway process and publishes every change to the hub."""

    def __init__(
        self,
        bus: Bus,
        hub: ChangeSink,
        *,
        consumer: str = "gateway",
        store: Store | None = None,
        is_watched: Callable[[str], bool] | None = None,
        dead_letters: DeadLetters | None = None,
        max_deliveries: int = 1,
    ) -> None:
        self.bus = bus
        self.hub = hub
        self.consumer = consumer
        self.store = store
        self.is_watched = is_watched
        self.heads: dict[str, tuple[str, int]] = {}
        """The (epoch, version) of the last change dispatched, per source."""
        self.retry_initial_s = 0.1
        self.retry_max_s = 5.0
        self.dead_letters = dead_letters
        """Where a change set that failed `max_deliveries` times is set aside; None: `Delivery.fail` (the bus's)."""
        self.max_deliveries = max_deliveries
        self.dispatch_retry_s = RETRY_INITIAL_S
        self.dispatched = 0
        self.failed = 0

    async def run(self) -> None:
        """Dispatch until the bus closes; a bad message is logged and skipped, a failing bus is re-consumed."""
        backoff = self.retry_initial_s
        while True:
            seen = self.dispatched + self.failed
            try:
                await self._consume()
                return  # the bus closed
            except Exception as exc:
                if self.dispatched + self.failed > seen:
                    backoff = self.retry_initial_s  # it worked for a while: start the backoff over
                # Messages lost meanwhile are not lost to clients: they fill version gaps from the store.
                log.exception("bus consume failed; retrying", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_s)
                await self.resync()

    async def _consume(self) -> None:
        async for delivery in self.bus.consume(self.consumer):
            metrics.BUS_CONSUMED.inc()
            await self._handle(delivery)

    async def _handle(self, delivery: Delivery) -> None:
        """Dispatch with retries, then ack; what still fails is set aside as a dead letter, else left to the bus."""
        changeset = delivery.changeset
        try:
            await with_retries(
                lambda: self.dispatch(changeset), self.max_deliveries, initial_s=self.dispatch_retry_s
            )
        except RetriesExhausted as exc:
            self.failed += 1
            metrics.DISPATCH_FAILURES.inc()
            log.error(
                "dispatch failed",
                source=changeset.source,
                version=changeset.version,
                attempts=exc.attempts,
                error=str(exc),
                exc_info=exc.error,
            )
            if not await self._set_aside(changeset, exc):
                try:
                    await delivery.fail(str(exc))  # the bus tries again later, or keeps its own dead letter
                except Exception as fail_exc:
                    log.warning("nack failed", error=repr(fail_exc))
                return
        try:
            await delivery.ack()
        except Exception as exc:
            log.warning("ack failed", error=repr(exc))

    async def _set_aside(self, changeset: ChangeSet, failure: RetriesExhausted) -> bool:
        """Whether the change set is now a dead letter in the store."""
        if self.dead_letters is None:
            return False
        try:
            await self.dead_letters.changeset_failed(changeset, str(failure), failure.attempts)
        except Exception as exc:  # the store is down too: the bus keeps the message
            log.warning("could not set the change set aside", source=changeset.source, error=repr(exc))
            return False
        return True

    async def dispatch(self, changeset: ChangeSet) -> None:
        """Encode one change once and publish it."""
        frame = encode_change_frame(changeset)
        await self.hub.publish(changeset, frame)
        self.dispatched += 1
        head = self.heads.get(changeset.source)
        if head is None or head[0] != changeset.epoch or head[1] < changeset.version:
            self.heads[changeset.source] = (changeset.epoch, changeset.version)

    async def resync(self) -> int:
        """Dispatch what the store holds after the last dispatched change of each watched source; how many."""
        if self.store is None:
            return 0
        count = 0
        for source, (epoch, version) in list(self.heads.items()):
            if self.is_watched is not None and not self.is_watched(source):
                continue
            try:
                missed = await self.store.changes_since(source, epoch, version)
            except Exception as exc:  # the source may be gone, or the store down: the next resync tries again
                log.warning("resync read failed", source=source, error=repr(exc))
                continue
            # Not recovered (new epoch, pruned log): subscribers find out at the next change and get a snapshot.
            for changeset in missed.changes if missed.recovered else []:
                await self.dispatch(changeset)
                count += 1
        if count:
            metrics.GAP_FILLS.inc(count)
            log.info("changes missed by the bus dispatched from the store", count=count)
        return count
