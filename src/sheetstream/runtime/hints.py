"""Hints for Google sources: Drive change feeds, Drive push channels, and routing hook calls to the sources.

Hints only decide what to read first; the values are always read and diffed (Google has no change feed for
Sheets values, and Drive notifications are coalesced and lossy).

- `GoogleHints` is a scheduler extension. For every identity with Drive access it runs one ``changes.list`` every
  `changes_interval_s` (one call covers every file that identity sees) and hints the sources whose spreadsheet
  changed. Given a public HTTPS address it also opens a Drive push channel (``files.watch``) per source, renews it
  before it expires, and stops it when the source is deleted or its watch ends.
- Channel tokens are stateless: ``<spreadsheet id>.<HMAC>`` under the hook secret, so any process holding the
  secret can verify a notification (`verify_channel_token`) without remembering channels.
- `sources_reading` finds the sources of a spreadsheet for the hook receivers (`api/hooks.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sheetstream.runtime.scheduler import Job, Scheduler, Slot
from sheetstream.stores.base import Store

log = structlog.get_logger("sheetstream.hints")

HOOK_PATH = "/v1/hooks/drive"
CHANNEL_LIFETIME_S = 24 * 3600.0  # Drive's longest for files.watch
RENEW_AT = 0.8  # renew when 80 % of a channel's life has passed
_STOP_TIMEOUT_S = 5.0


def channel_token(secret: str, spreadsheet_id: str) -> str:
    """The token a push channel on `spreadsheet_id` carries: the id and its HMAC-SHA256 under `secret`."""
    mac = hmac.new(secret.encode(), spreadsheet_id.encode(), hashlib.sha256).hexdigest()[:40]
    return f"{spreadsheet_id}.{mac}"


def verify_channel_token(secret: str, token: str | None) -> str | None:
    """The spreadsheet id a genuine channel token names; None for a forged, foreign or missing one."""
    if not token or not secret or "." not in token:
        return None
    spreadsheet_id = token.rpartition(".")[0]
    return spreadsheet_id if hmac.compare_digest(channel_token(secret, spreadsheet_id), token) else None


async def sources_reading(store: Store, spreadsheet_id: str) -> list[str]:
    """Ids of the google_sheets sources that read `spreadsheet_id`."""
    found: list[str] = []
    cursor: str | None = None
    while True:
        records, cursor = await store.list_sources(limit=500, cursor=cursor)
        found.extend(
            r.id for r in records if r.kind == "google_sheets" and r.config.get("spreadsheet_id") == spreadsheet_id
        )
        if cursor is None:
            return found


@dataclass
class ChangeFeed:
    """One identity's Drive change log: the page token, and the slots it hints."""

    key: str
    slots: set[Slot] = field(default_factory=set)
    token: str | None = None
    job: Job | None = None
    polls: int = 0

    async def poll(self) -> None:
        """One `changes.list`: hint the sources whose spreadsheet changed."""
        if not self.slots:
            return
        source: Any = next(iter(self.slots)).source
        if self.token is None:
            self.token = await source.start_changes()
            return
        changed, self.token = await source.changes_since(self.token)
        self.polls += 1
        for slot in list(self.slots):
            if slot.source.resource_id in changed:  # type: ignore[attr-defined]
                slot.hint()


@dataclass
class PushChannel:
    """A Drive push channel on one source's spreadsheet, renewed by its job."""

    slot: Slot
    address: str
    secret: str
    wall_clock: Callable[[], float]
    channel: Any = None
    job: Job | None = None

    async def renew(self) -> None:
        """Open a new channel, then stop the old one (so no notification falls between them)."""
        source: Any = self.slot.source
        expires_at = self.wall_clock() + CHANNEL_LIFETIME_S
        new = await source.open_channel(
            self.address, f"sheetstream-{uuid.uuid4().hex}", channel_token(self.secret, source.resource_id), expires_at
        )
        old, self.channel = self.channel, new
        if self.job is not None:
            life = (new.expires_at or expires_at) - self.wall_clock()
            self.job.interval_s = max(60.0, life * RENEW_AT)
        if old is not None:
            await self.stop(old)

    async def stop(self, channel: Any) -> None:
        """Stop `channel`; failures are logged (the channel then expires by itself)."""
        try:
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await self.slot.source.close_channel(channel)  # type: ignore[attr-defined]
        except Exception as exc:
            log.warning("could not stop Drive channel", channel=channel.id, error=str(exc))


class GoogleHints:
    """Drive change feeds and push channels for the governed Google sources of a scheduler."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        changes_interval_s: float = 5.0,
        public_url: str = "",
        secret: str = "",
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.scheduler = scheduler
        self.changes_interval_s = changes_interval_s
        self.address = public_url.rstrip("/") + HOOK_PATH if public_url else ""
        self.secret = secret
        self.wall_clock = wall_clock
        self.feeds: dict[str, ChangeFeed] = {}
        self.channels: dict[str, PushChannel] = {}
        scheduler.extensions.append(self)

    def attach(self, slot: Slot) -> None:
        """A governed source joined: follow its identity's change log, open its push channel."""
        source: Any = slot.source
        key = getattr(source, "feed_key", None)
        if key is None:
            return
        if self.changes_interval_s > 0:
            feed = self.feeds.get(key)
            if feed is None:
                feed = self.feeds[key] = ChangeFeed(key)
                feed.job = self.scheduler.every(f"changes:{key}", self.changes_interval_s, feed.poll, key=key)
                feed.job.trigger()  # learn the start token now: changes from here on are seen
            feed.slots.add(slot)
        if self.address and self.secret:
            push = PushChannel(slot, self.address, self.secret, self.wall_clock)
            push.job = self.scheduler.every(f"channel:{slot.source_id}", CHANNEL_LIFETIME_S * RENEW_AT, push.renew, key=key)
            push.job.trigger()
            self.channels[slot.source_id] = push

    def detach(self, slot: Slot) -> Awaitable[None] | None:
        """A source left (deleted, paused, edited, or the monitor stops): leave its feed; stop its channel."""
        for key, feed in list(self.feeds.items()):
            feed.slots.discard(slot)
            if not feed.slots:
                if feed.job is not None:
                    feed.job.cancel()
                del self.feeds[key]
        push = self.channels.get(slot.source_id)
        if push is not None and push.slot is slot:
            del self.channels[slot.source_id]
            if push.job is not None:
                push.job.cancel()
            if push.channel is not None:
                return push.stop(push.channel)
        return None


def google_scheduler(settings: Any, is_watched: Callable[[str], bool] = lambda source_id: False) -> Scheduler:
    """The scheduler and Google hints a process runs, from its `Settings` (quota budgets, feeds, push address)."""
    from sheetstream.runtime.scheduler import QuotaSettings

    scheduler = Scheduler(
        QuotaSettings(
            reads_per_identity_per_min=settings.google_reads_per_min,
            reads_per_project_per_min=settings.google_project_reads_per_min,
            target=settings.google_target,
            idle_max_s=settings.google_idle_max_s,
        ),
        is_watched=is_watched,
    )
    GoogleHints(
        scheduler,
        changes_interval_s=settings.google_changes_interval_s,
        public_url=settings.public_url,
        secret=settings.hook_secret,
    )
    return scheduler
