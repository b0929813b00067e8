"""The Source port: read a data source's current content as a Snapshot."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sheetstream.core.model import Snapshot


@dataclass(frozen=True, slots=True)
class Fetched:
    """The result of a fetch: a snapshot, or None when the source reports it unchanged (304, same mtime)."""

    snapshot: Snapshot | None
    revision: str | None = None


class Source(ABC):
    """A readable data source. One instance per configured source; `fetch` is never called concurrently."""

    kind: str

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @abstractmethod
    async def fetch(self, previous: Snapshot | None) -> Fetched:
        """Read the source; raise SourceError on failure. `previous` lets the source keep tab ids stable."""

    async def hints(self) -> AsyncIterator[None]:
        """Yield whenever the source may have changed (file events, push notifications). Default: never."""
        return
        yield  # pragma: no cover

    async def aclose(self) -> None:  # noqa: B027 (optional: most sources hold nothing to release)
        """Release resources (HTTP clients, watchers)."""
