"""Garbage-collector settings for a server holding thousands of connections.

CPython's full collection walks every object the collector tracks. A server with 5,000 open connections holds
a million of them (its modules, plus each connection's session, socket and task objects), and a full
collection then stops the whole process for one to three seconds on a small machine: every delivery in flight
waits, which is what p99 latencies showed. Two changes:

- `gc.freeze()` once start-up is done: the objects of modules, settings and the app (hundreds of thousands)
  move to a permanent generation that no collection walks again. They are never garbage, so nothing is lost.
- a higher threshold for the youngest generation: a delivery makes only short-lived objects, which reference
  counting frees at once; collecting less often lets fewer of them be caught alive and promoted, so the old
  generation (and the next full collection) grows more slowly.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Allocations (net of frees) between collections of the youngest generation; CPython's default is 700."""


def tune_collector(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Collect once, freeze what survives (start-up's objects) and raise the youngest generation's threshold."""
    gc.collect()  # start-up's garbage is freed now rather than frozen for good
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
