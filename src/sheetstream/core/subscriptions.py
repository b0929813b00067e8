"""The subscription routing table: which connections follow which source, in both directions.

The dispatcher asks it who gets a change (`subscribers(source)`); a closing connection is removed from every
source at once (`remove_connection`). Pure bookkeeping: no I/O, no sessions, no sockets.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

ConnId = TypeVar("ConnId", bound=Hashable)

_NONE: frozenset[object] = frozenset()


class SubscriptionTable(Generic[ConnId]):
    """source -> connection ids and connection id -> sources, kept consistent with each other."""

    def __init__(self) -> None:
        self._by_source: dict[str, set[ConnId]] = {}
        self._by_connection: dict[ConnId, set[str]] = {}

    def add(self, conn: ConnId, source: str) -> bool:
        """Route `source` to `conn`; False if it already was."""
        sources = self._by_connection.setdefault(conn, set())
        if source in sources:
            return False
        sources.add(source)
        self._by_source.setdefault(source, set()).add(conn)
        return True

    def remove(self, conn: ConnId, source: str) -> bool:
        """Stop routing `source` to `conn`; False if it was not routed."""
        sources = self._by_connection.get(conn)
        if sources is None or source not in sources:
            return False
        sources.discard(source)
        if not sources:
            del self._by_connection[conn]
        self._drop_subscriber(source, conn)
        return True

    def remove_connection(self, conn: ConnId) -> set[str]:
        """Forget `conn` entirely; returns the sources it was subscribed to."""
        sources = self._by_connection.pop(conn, set())
        for source in sources:
            self._drop_subscriber(source, conn)
        return sources

    def subscribers(self, source: str) -> frozenset[ConnId]:
        """The connections subscribed to `source` (a copy: safe to iterate while the table changes)."""
        conns = self._by_source.get(source)
        return frozenset(conns) if conns else _NONE  # type: ignore[return-value]

    def subscriber_count(self, source: str) -> int:
        """How many connections are subscribed to `source`."""
        conns = self._by_source.get(source)
        return len(conns) if conns else 0

    def sources_of(self, conn: ConnId) -> frozenset[str]:
        """The sources `conn` is subscribed to."""
        return frozenset(self._by_connection.get(conn, ()))

    def is_subscribed(self, conn: ConnId, source: str) -> bool:
        """Whether `source` is routed to `conn`."""
        return source in self._by_connection.get(conn, ())

    def count(self, conn: ConnId) -> int:
        """How many sources `conn` is subscribed to."""
        return len(self._by_connection.get(conn, ()))

    @property
    def connection_count(self) -> int:
        """Connections with at least one subscription."""
        return len(self._by_connection)

    @property
    def source_count(self) -> int:
        """Sources with at least one subscriber."""
        return len(self._by_source)

    @property
    def subscription_count(self) -> int:
        """(connection, source) pairs."""
        return sum(len(s) for s in self._by_connection.values())

    def _drop_subscriber(self, source: str, conn: ConnId) -> None:
        conns = self._by_source[source]  # the two maps are kept consistent: it is there
        conns.discard(conn)
        if not conns:
            del self._by_source[source]
