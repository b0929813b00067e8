"""The running parts of one sheetstream process, handed to the REST API, the gateway and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sheetstream.buses.base import Bus
from sheetstream.stores.base import Retention, Store

if TYPE_CHECKING:
    from sheetstream.gateways.local import Hub
    from sheetstream.runtime.settings import Settings


class SourceControl(Protocol):
    """What the REST API may ask of the monitor."""

    def refresh(self, source_id: str) -> None:
        """Read this source as soon as possible."""

    def reload(self, source_id: str) -> None:
        """The source was created, updated or deleted: (re)start or stop watching it."""


@dataclass
class Services:
    """Everything a role needs, built by `runtime.wiring`."""

    settings: Settings
    store: Store
    bus: Bus
    monitor: SourceControl
    retention: Retention
    hub: Hub | None = None
    """The local WebSocket gateway, in roles that serve WebSockets."""
