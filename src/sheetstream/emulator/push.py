"""Drive push notifications: watch channels and the webhook POSTs Google sends to them.

A channel gets a `sync` message when it is created, then one message per burst of changes: changes that land
within the coalescing delay of the first are merged into one notification, as Drive does for Sheets edits (there
about every 3 minutes; here `delay_s`, 1 s by default). Like Google, a failed delivery is not retried: push is a
hint. Messages carry no body, only Google's X-Goog-* headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Literal

import httpx

from sheetstream.emulator.errors import ApiError
from sheetstream.emulator.state import ChangeEvent, EmulatorState

if TYPE_CHECKING:
    from sheetstream.emulator.guard import Ctx

log = logging.getLogger(__name__)

DEFAULT_LIFETIME_MS = 3600 * 1000
MAX_LIFETIME_MS = {"file": 86400 * 1000, "changes": 7 * 86400 * 1000}
# Which resource state a file channel reports for each kind of change; stronger states win when coalescing.
FILE_STATES = {
    "content": "update",
    "properties": "update",
    "trash": "trash",
    "untrash": "untrash",
    "remove": "remove",
}
_STRENGTH = ["update", "untrash", "trash", "remove"]


@dataclass
class Channel:
    """A watch channel: where to POST, what it watches, and its message counter."""

    id: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expiration_ms: int
    kind: Literal["file", "changes"]
    file_id: str | None
    identity: str
    message_number: int = 0
    pending: str | None = None
    changed: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None
    last: asyncio.Task[None] | None = None

    def resource(self) -> dict[str, Any]:
        """The Channel resource Drive answers to a watch call."""
        out = {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "expiration": str(self.expiration_ms),
        }
        if self.token is not None:
            out["token"] = self.token
        return out


@dataclass(frozen=True)
class Delivery:
    """One notification sent (or tried): for tests and the admin endpoint."""

    channel_id: str
    number: int
    state: str
    status: int | None
    error: str | None = None


def channel_from_body(
    ctx: Ctx, body: dict[str, Any], *, kind: Literal["file", "changes"], file_id: str | None
) -> Channel:
    """Validate a watch request body into a Channel (400 like Drive for a bad one)."""
    channel_id, address = body.get("id"), body.get("address")
    if body.get("type") not in ("web_hook", "webhook"):
        raise ApiError(400, f"Invalid value for type: {body.get('type')}", reason="invalid", location="type")
    if not channel_id or not address:
        raise ApiError(400, "Required", reason="required", location="id" if not channel_id else "address")
    if not str(address).startswith(("http://", "https://")):
        raise ApiError(400, f"Invalid WebHook address: {address}", reason="push.webhookUrlUnauthorized")
    now_ms = int(ctx.state.clock() * 1000)
    try:
        requested = int(body["expiration"]) if body.get("expiration") else now_ms + DEFAULT_LIFETIME_MS
    except (TypeError, ValueError) as exc:
        raise ApiError(400, "Invalid expiration", reason="invalid", location="expiration") from exc
    expiration = min(requested, now_ms + MAX_LIFETIME_MS[kind])
    base = str(ctx.request.base_url).rstrip("/")
    if kind == "file":
        uri = f"{base}/drive/v3/files/{file_id}?alt=json"
        seed = f"file:{file_id}"
    else:
        uri = f"{base}/drive/v3/changes?alt=json&pageToken={ctx.param('pageToken')}"
        seed = f"changes:{ctx.identity.name}"
    resource_id = hashlib.sha256(seed.encode()).hexdigest()[:27]
    token = body.get("token")
    return Channel(
        str(channel_id),
        resource_id,
        uri,
        str(address),
        None if token is None else str(token),
        expiration,
        kind,
        file_id,
        ctx.identity.name,
    )


class PushHub:
    """The live channels of one emulator; listens to state changes and POSTs notifications."""

    def __init__(self, state: EmulatorState, *, delay_s: float = 1.0, strict: bool = False) -> None:
        self.state = state
        self.delay_s = delay_s
        self.strict = strict
        self.channels: dict[str, Channel] = {}
        self.deliveries: list[Delivery] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Attach to the running event loop and start listening to the state."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=10.0)
        self.state.listeners.append(self._on_change)

    async def aclose(self) -> None:
        """Stop every channel and wait for deliveries in flight."""
        if self._on_change in self.state.listeners:
            self.state.listeners.remove(self._on_change)
        for channel in self.channels.values():
            if channel.timer is not None:
                channel.timer.cancel()
        self.channels.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        self._loop = None

    def watch(self, channel: Channel) -> dict[str, Any]:
        """Register a channel and send its `sync` message; the Channel resource to answer."""
        self.start()
        if channel.id in self.channels:
            raise ApiError(400, f"Channel id {channel.id} not unique", reason="channelIdNotUnique")
        self.channels[channel.id] = channel
        self._send(channel, "sync", set())
        return channel.resource()

    def stop(self, channel_id: str, resource_id: str) -> bool:
        """Stop a channel; False when no such channel (or another resource)."""
        channel = self.channels.get(channel_id)
        if channel is None or channel.resource_id != resource_id:
            return False
        if channel.timer is not None:
            channel.timer.cancel()
        del self.channels[channel_id]
        return True

    def _on_change(self, event: ChangeEvent) -> None:
        # State changes may come from any thread (tests write to the state directly).
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._changed, event)

    def _changed(self, event: ChangeEvent) -> None:
        for channel in list(self.channels.values()):
            state = self._state_for(channel, event)
            if state is None:
                continue
            if channel.pending is None or _STRENGTH.index(state) > _STRENGTH.index(channel.pending):
                channel.pending = state
            if channel.kind == "file" and event.kind in ("content", "properties"):
                channel.changed.add(event.kind)
            if channel.timer is None and self._loop is not None:
                channel.timer = self._loop.call_later(self.delay_s, self._flush, channel.id)

    def _state_for(self, channel: Channel, event: ChangeEvent) -> str | None:
        if channel.kind == "file":
            return FILE_STATES.get(event.kind) if event.file_id == channel.file_id else None
        if self.strict and event.kind != "remove":
            with self.state.lock:
                drive_file = self.state.files.get(event.file_id)
                if drive_file is None or not (
                    channel.identity == drive_file.owner
                    or channel.identity in drive_file.readers
                    or channel.identity in drive_file.writers
                ):
                    return None
        return "update" if channel.kind == "changes" else None

    def _flush(self, channel_id: str) -> None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return
        channel.timer = None
        state = "change" if channel.kind == "changes" else channel.pending or "update"
        changed, channel.pending, channel.changed = channel.changed, None, set()
        self._send(channel, state, changed)

    def _send(self, channel: Channel, state: str, changed: set[str]) -> None:
        channel.message_number += 1
        task = asyncio.ensure_future(
            self._deliver(channel, channel.message_number, state, changed, channel.last)
        )
        channel.last = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        channel: Channel,
        number: int,
        state: str,
        changed: set[str],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # keep each channel's messages in order
        if int(self.state.clock() * 1000) >= channel.expiration_ms:
            self.channels.pop(channel.id, None)
            return
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": formatdate(channel.expiration_ms / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        if changed:
            headers["X-Goog-Changed"] = ",".join(sorted(changed))
        assert self._client is not None
        try:
            response = await self._client.post(channel.address, headers=headers, content=b"")
            self.deliveries.append(Delivery(channel.id, number, state, response.status_code))
        except httpx.HTTPError as exc:
            log.info("push to %s failed: %s", channel.address, exc)
            self.deliveries.append(Delivery(channel.id, number, state, None, str(exc)))
