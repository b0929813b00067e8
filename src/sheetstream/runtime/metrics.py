"""Prometheus metrics of this process, served at `/metrics` (api/metrics.py); every name starts `sheetstream_`.

The metrics live in their own `REGISTRY` (a `CollectorRegistry` made once per process, with the process and
platform collectors added), not in prometheus-client's global default registry, because sheetstream is also a
library: an application that embeds it keeps its own default registry free of our names (and of clashes with
its own), and `/metrics` serves exactly sheetstream's series. One registry per process is what Prometheus expects:
every `Hub`, `Watch` and `Dispatcher` of the process adds to the same series.

Call sites stay one line each and the WebSocket fan-out stays cheap: the hub counts the change frames of one
change and adds them with one `inc(n)`; open connections and subscriptions are not counted at all but read from
the hubs when scraped (`track_hub`), so they can never drift from the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from sheetstream.core.model import Snapshot
    from sheetstream.gateways.local import Hub
    from sheetstream.runtime.scheduler import Scheduler
    from sheetstream.sources.base import Fetched, Source
    from sheetstream.stores.base import Store

T = TypeVar("T")

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_OPS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10_000, 50_000)

# -- gateway ----------------------------------------------------------------------------------------------------

CONNECTIONS_OPEN = Gauge(
    "sheetstream_connections_open", "WebSocket connections open on this process.", registry=REGISTRY
)
SUBSCRIPTIONS_OPEN = Gauge(
    "sheetstream_subscriptions_open", "Subscriptions (connection, source) open on this process.", registry=REGISTRY
)
DELIVERIES = Counter(
    "sheetstream_deliveries",
    "Messages queued to WebSocket connections (changes, snapshots, replies, errors).",
    registry=REGISTRY,
)
CONNECTIONS_CLOSED = Counter(
    "sheetstream_connections_closed",
    "WebSocket connections gone, by the close code the server sent, or `client` when the client left or the socket "
    "dropped.",
    ["code"],
    registry=REGISTRY,
)
SLOW_CONSUMER_CLOSES = Counter(
    "sheetstream_slow_consumer_closes",
    "Connections closed with 4008 because their send queue was full.",
    registry=REGISTRY,
)
PROTOCOL_ERRORS = Counter(
    "sheetstream_protocol_errors",
    "Error messages sent to WebSocket clients, by error code (message_too_big: frames closed with 1009).",
    ["code"],
    registry=REGISTRY,
)
WS_REJECTIONS = Counter(
    "sheetstream_ws_rejections",
    "WebSocket connections, subscriptions and tokens refused, by reason (unauthorized, forbidden_origin, "
    "rate_limited, forbidden_source, token_expired).",
    ["reason"],
    registry=REGISTRY,
)
for _reason in ("unauthorized", "forbidden_origin", "rate_limited", "forbidden_source", "token_expired"):
    WS_REJECTIONS.labels(reason=_reason)  # every series from the start, at 0: alerts need no absent()
STORE_READ_SECONDS = Histogram(
    "sheetstream_store_read_seconds",
    "Store reads of subscriptions (read: snapshot or changes_since), in seconds.",
    ["read"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- monitor ----------------------------------------------------------------------------------------------------

SOURCE_READS = Counter(
    "sheetstream_source_reads",
    "Source reads, by source kind and outcome (ok: data read, not_modified: source said unchanged, error).",
    ["kind", "outcome"],
    registry=REGISTRY,
)
SOURCE_READ_SECONDS = Histogram(
    "sheetstream_source_read_seconds",
    "Time to read a source (fetch and parse, before the diff), by source kind, in seconds.",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CHANGES_DETECTED = Counter(
    "sheetstream_changes_detected",
    "Reads whose diff found changes, by source kind (committed or not).",
    ["kind"],
    registry=REGISTRY,
)
CHANGES_COMMITTED = Counter(
    "sheetstream_changes_committed",
    "Change sets committed to the store, by source kind.",
    ["kind"],
    registry=REGISTRY,
)
CHANGE_OPS = Histogram(
    "sheetstream_change_ops",
    "Operations per committed change set.",
    buckets=_OPS_BUCKETS,
    registry=REGISTRY,
)
COMMIT_REFUSALS = Counter(
    "sheetstream_commit_refusals",
    "Commits refused by the store's version fence (another writer moved the head).",
    registry=REGISTRY,
)
PUBLISH_FAILURES = Counter(
    "sheetstream_publish_failures",
    "Committed change sets whose news could not be published on the bus (gateways fill the gap from the store).",
    registry=REGISTRY,
)

# -- dispatcher -------------------------------------------------------------------------------------------------

BUS_CONSUMED = Counter(
    "sheetstream_bus_messages_consumed", "Messages taken off the bus by this process's dispatcher.", registry=REGISTRY
)
DISPATCH_FAILURES = Counter(
    "sheetstream_dispatch_failures", "Bus messages whose dispatch to the hub failed.", registry=REGISTRY
)
GAP_FILLS = Counter(
    "sheetstream_dispatcher_gap_fills",
    "Changes the dispatcher read from the store because the bus lost their news.",
    registry=REGISTRY,
)

# -- dead letters (runtime/dead_letters.py) ---------------------------------------------------------------------

DEAD_LETTERS = Gauge(
    "sheetstream_dead_letters",
    "Dead letters waiting in the store (read from the store at each scrape: the same number on every process).",
    registry=REGISTRY,
)
DEAD_LETTERS_ADDED = Counter(
    "sheetstream_dead_letters_added",
    "Change sets and hints this process set aside as dead letters, by kind (changeset, hint).",
    ["kind"],
    registry=REGISTRY,
)
for _kind in ("changeset", "hint"):
    DEAD_LETTERS_ADDED.labels(kind=_kind)  # both series from the start, at 0
DEAD_LETTER_COUNT_TIMEOUT_S = 1.0


async def count_dead_letters(store: Store) -> None:
    """Set `sheetstream_dead_letters` from the store; a slow or failing store leaves the last value (the scrape
    must not fail with it: `/readyz` reports the store)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DEAD_LETTER_COUNT_TIMEOUT_S):
            DEAD_LETTERS.set(await store.count_dead_letters())

# -- Google quotas ----------------------------------------------------------------------------------------------

GOOGLE_REQUESTS = Counter(
    "sheetstream_google_requests",
    "Google API requests spent by reads of Google sources, by quota: sheets (values reads) or drive (checks).",
    ["quota"],
    registry=REGISTRY,
)
GOOGLE_RATE_LIMITED = Counter(
    "sheetstream_google_rate_limited",
    "429 RESOURCE_EXHAUSTED answers from Google (the scheduler then pauses that identity's reads).",
    registry=REGISTRY,
)


class _QuotaCollector:
    """`sheetstream_google_quota_available{quota, key}`: requests each scheduler budget may spend now, at scrape."""

    def __init__(self) -> None:
        self.schedulers: weakref.WeakSet[Scheduler] = weakref.WeakSet()

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "sheetstream_google_quota_available",
            "Google requests a scheduler budget may spend now (negative while paused after a 429), by quota "
            "(identity, project, drive) and key (the identity or project).",
            labels=["quota", "key"],
        )

    def collect(self) -> list[GaugeMetricFamily]:
        family = self._family()
        for scheduler in list(self.schedulers):
            for quota, key, available in scheduler.quota_available():
                family.add_metric([quota, key], available)
        return [family]


_QUOTAS = _QuotaCollector()
REGISTRY.register(_QUOTAS)


def track_scheduler(scheduler: Scheduler) -> None:
    """Show `scheduler`'s budgets in `sheetstream_google_quota_available` (until it is garbage collected)."""
    _QUOTAS.schedulers.add(scheduler)


# -- REST API ---------------------------------------------------------------------------------------------------

REST_REJECTIONS = Counter(
    "sheetstream_rest_rejections",
    "REST requests refused by API key checks, by code (unauthorized, forbidden, rate_limited).",
    ["code"],
    registry=REGISTRY,
)

# -- gauges read from the hubs when scraped ---------------------------------------------------------------------

_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()
CONNECTIONS_OPEN.set_function(lambda: sum(hub.connection_count for hub in list(_hubs)))
SUBSCRIPTIONS_OPEN.set_function(lambda: sum(hub.table.subscription_count for hub in list(_hubs)))


def track_hub(hub: Hub) -> None:
    """Count `hub`'s connections and subscriptions in the gauges (until it is garbage collected)."""
    _hubs.add(hub)


# -- one-line helpers for the call sites ------------------------------------------------------------------------

_ERROR_PREFIX = b'{"type":"error"'


def sent(data: bytes) -> None:
    """One message queued to a connection; an `error` message also counts under its code."""
    DELIVERIES.inc()
    if data.startswith(_ERROR_PREFIX):  # errors are rare: decoding them costs nothing on the hot path
        code = str(orjson.loads(data).get("code", "unknown"))
        PROTOCOL_ERRORS.labels(code=code).inc()
        if code == "forbidden_source":
            WS_REJECTIONS.labels(reason=code).inc()


async def read_source(source: Source, previous: Snapshot | None, kind: str) -> Fetched:
    """`source.fetch(previous)`, timed and counted by outcome; its errors are counted and raised unchanged."""
    started = time.perf_counter()
    try:
        fetched = await source.fetch(previous)
    except Exception:  # a cancelled read (the watch stopped) is no failure of the source
        SOURCE_READS.labels(kind=kind, outcome="error").inc()
        raise
    finally:
        SOURCE_READ_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
    SOURCE_READS.labels(kind=kind, outcome="ok" if fetched.snapshot is not None else "not_modified").inc()
    return fetched


def committed(kind: str, ops: int) -> None:
    """A change set of `ops` operations was committed."""
    CHANGES_COMMITTED.labels(kind=kind).inc()
    CHANGE_OPS.observe(ops)


async def timed_store_read(read: str, awaitable: Awaitable[T]) -> T:
    """Await a store read of a subscription, observing its latency under `read` (snapshot or changes_since)."""
    started = time.perf_counter()
    try:
        return await awaitable
    finally:
        STORE_READ_SECONDS.labels(read=read).observe(time.perf_counter() - started)
