"""The subscription routing table."""

from __future__ import annotations

from sheetstream.core.subscriptions import SubscriptionTable


def test_add_and_route() -> None:
    table: SubscriptionTable[str] = SubscriptionTable()
    assert table.add("c1", "S")
    assert table.add("c2", "S")
    assert table.add("c1", "T")
    assert not table.add("c1", "S")  # already routed
    assert table.subscribers("S") == {"c1", "c2"}
    assert table.subscribers("T") == {"c1"}
    assert table.subscribers("nobody") == frozenset()
    assert table.sources_of("c1") == {"S", "T"}
    assert table.is_subscribed("c2", "S") and not table.is_subscribed("c2", "T")
    assert (table.count("c1"), table.count("c3")) == (2, 0)
    assert (table.connection_count, table.source_count, table.subscription_count) == (2, 2, 3)


def test_remove_keeps_both_directions_consistent() -> None:
    table: SubscriptionTable[str] = SubscriptionTable()
    table.add("c1", "S")
    table.add("c2", "S")
    table.add("c2", "T")
    assert table.remove("c2", "T")
    assert table.sources_of("c2") == {"S"}
    assert table.remove("c1", "S")
    assert not table.remove("c1", "S")
    assert not table.remove("c9", "S")
    assert table.subscribers("S") == {"c2"}
    assert table.sources_of("c1") == frozenset()
    assert table.remove("c2", "S")
    assert (table.connection_count, table.source_count, table.subscription_count) == (0, 0, 0)


def test_remove_connection_drops_every_route_of_it() -> None:
    table: SubscriptionTable[int] = SubscriptionTable()
    table.add(1, "S")
    table.add(1, "T")
    table.add(2, "T")
    assert table.remove_connection(1) == {"S", "T"}
    assert table.remove_connection(1) == set()
    assert table.subscribers("S") == frozenset()
    assert table.subscribers("T") == {2}
    assert table.source_count == 1


def test_subscribers_is_a_snapshot_safe_to_iterate_while_changing() -> None:
    table: SubscriptionTable[str] = SubscriptionTable()
    for conn in ("a", "b", "c"):
        table.add(conn, "S")
    seen = []
    for conn in table.subscribers("S"):
        table.remove_connection(conn)
        seen.append(conn)
    assert sorted(seen) == ["a", "b", "c"]
    assert table.subscribers("S") == frozenset()
