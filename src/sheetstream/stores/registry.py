"""Choose a store adapter by the scheme of its URL; adapters are imported only when asked for."""

from __future__ import annotations

import difflib
import importlib
from urllib.parse import urlsplit

from sheetstream.errors import ConfigError
from sheetstream.stores.base import Store

# scheme -> "module:class"; the class has `from_url(url)`. Add a backend with one line here.
STORES: dict[str, str] = {
    "memory": "sheetstream.stores.memory:MemoryStore",
    "sqlite": "sheetstream.stores.sqlite:SqliteStore",
    "postgresql": "sheetstream.stores.postgres:PostgresStore",
    "postgres": "sheetstream.stores.postgres:PostgresStore",
}


def lookup(table: dict[str, str], family: str, url: str) -> type:
    """The adapter class for `url`'s scheme in `table`; ConfigError naming the closest scheme if none fits."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in table:
        known = sorted(table)
        close = difflib.get_close_matches(scheme, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else f" Known: {', '.join(known)}."
        if not scheme:
            raise ConfigError(f"{family} URL {url!r} has no scheme (like 'sqlite:///sheetstream.db').{hint}")
        raise ConfigError(f"no such {family}: {scheme!r}.{hint}")
    module_name, _, class_name = table[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"the {scheme!r} {family} is not available: {exc}; install its extra dependencies"
        ) from exc
    cls: type = getattr(module, class_name)
    return cls


def open_store(url: str) -> Store:
    """The store for `url` (not yet opened: `await store.open()`)."""
    store: Store = lookup(STORES, "store", url).from_url(url)  # type: ignore[attr-defined]
    return store
