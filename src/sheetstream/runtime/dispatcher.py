"""The dispatcher: takes change sets off the bus and hands them, encoded once, to the local gateway's hub."""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from sheetstream.buses.base import Bus
from sheetstream.core.messages import encode_change_frame
from sheetstream.core.model import ChangeSet

log = structlog.get_logger("sheetstream.dispatcher")


class ChangeSink(Protocol):
    """Where dispatched changes go (the local gateway's `Hub`)."""

    async def publish(self, changeset: ChangeSet, frame: bytes) -> None:
        """Deliver one live change, already encoded as a `change` frame, to its subscribers."""


class Dispatcher:
    """Consumes the bus for one gateway process and publishes every change to the hub."""

    def __init__(self, bus: Bus, hub: ChangeSink, *, consumer: str = "gateway") -> None:
        self.bus = bus
        self.hub = hub
        self.consumer = consumer
        self.retry_initial_s = 0.1
        self.retry_max_s = 5.0
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

    async def _consume(self) -> None:
        async for delivery in self.bus.consume(self.consumer):
            try:
                await self.dispatch(delivery.changeset)
            except Exception as exc:
                # Subscribers notice the missing version at the next change and read it from the store.
                self.failed += 1
                log.exception("dispatch failed", error=repr(exc))
            try:
                await delivery.ack()
            except Exception as exc:
                log.warning("ack failed", error=repr(exc))

    async def dispatch(self, changeset: ChangeSet) -> None:
        """Encode one change once and publish it."""
        frame = encode_change_frame(changeset)
        await self.hub.publish(changeset, frame)
        self.dispatched += 1
