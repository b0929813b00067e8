"""The Gateway port: hand encoded messages to WebSocket connections, and close them.

A gateway does not know about sources or versions; the protocol session decides what each connection gets
and the gateway only moves bytes. Connection ids are strings (API Gateway's ids are strings too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable


class Gateway(ABC):
    """Delivers text frames to connections by id."""

    @abstractmethod
    async def deliver(self, connection_ids: Iterable[str], data: bytes) -> None:
        """Queue `data` (UTF-8 JSON) as one text frame to each connection, in call order per connection."""

    @abstractmethod
    async def close(self, connection_id: str, code: int, reason: str) -> None:
        """Close the connection with a WebSocket close code (see core.protocol CLOSE_*)."""
