"""Choose a bus adapter by the scheme of its URL; adapters are imported only when asked for."""

from __future__ import annotations

from sheetstream.buses.base import Bus
from sheetstream.stores.registry import lookup

# scheme -> "module:class"; the class has `from_url(url)`. Add a backend with one line here.
BUSES: dict[str, str] = {
    "memory": "sheetstream.buses.memory:MemoryBus",
    "redis": "sheetstream.buses.redis:RedisBus",
    "rediss": "sheetstream.buses.redis:RedisBus",
}


def open_bus(url: str) -> Bus:
    """The bus for `url` (not yet opened: `await bus.open()`)."""
    bus: Bus = lookup(BUSES, "bus", url).from_url(url)  # type: ignore[attr-defined]
    return bus
