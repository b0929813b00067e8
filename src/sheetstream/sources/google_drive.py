"""Drive v3 as a hint for `google_sheets` sources: file versions, the change log, and push channels.

None of these say what changed in a spreadsheet, only that something may have: the values are always read and
diffed. Drive calls spend Drive's quota, not the Sheets read quota (GOOGLE.md, "Quotas").

- `file_version`: ``files.get?fields=version``; the version goes up with every change to the file, including
  ones no user sees, so an unchanged version means the values read can be skipped.
- `list_changes`: ``changes.list`` from a page token; one call covers every file the identity can see.
- `watch_file` / `stop_channel`: a push channel (``files.watch``) whose notifications reach `/v1/hooks/drive`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sheetstream.sources.google_api import GoogleApi


@dataclass(frozen=True)
class Channel:
    """A Drive push channel: its id, Google's resource id (needed to stop it), and its expiry (epoch seconds)."""

    id: str
    resource_id: str
    expires_at: float


async def file_version(api: GoogleApi, file_id: str) -> int:
    """The Drive `version` of a file."""
    body = await api.drive(
        "GET", f"files/{quote(file_id, safe='')}", f"checking the Drive version of {file_id}",
        params=[("fields", "version"), ("supportsAllDrives", "true")],
    )
    return int(body["version"])


async def start_page_token(api: GoogleApi) -> str:
    """The page token from which `list_changes` reports changes."""
    body = await api.drive("GET", "changes/startPageToken", "starting the Drive change log",
                           params=[("supportsAllDrives", "true")])
    return str(body["startPageToken"])


async def list_changes(api: GoogleApi, page_token: str) -> tuple[set[str], str]:
    """File ids changed since `page_token` (every page), and the token to continue from."""
    changed: set[str] = set()
    token = page_token
    while True:
        body = await api.drive(
            "GET", "changes", "listing Drive changes",
            params=[
                ("pageToken", token),
                ("fields", "nextPageToken,newStartPageToken,changes(fileId)"),
                ("pageSize", "1000"),
                ("supportsAllDrives", "true"),
                ("includeItemsFromAllDrives", "true"),
            ],
        )
        changed.update(str(c["fileId"]) for c in body.get("changes", []) if c.get("fileId"))
        if body.get("newStartPageToken"):
            return changed, str(body["newStartPageToken"])
        token = str(body["nextPageToken"])


async def watch_file(
    api: GoogleApi, file_id: str, *, address: str, channel_id: str, token: str, expires_at: float
) -> Channel:
    """Open a push channel on a file; Google posts to `address` (HTTPS at Google) with `token` in each message."""
    body = await api.drive(
        "POST", f"files/{quote(file_id, safe='')}/watch", f"opening a Drive push channel on {file_id}",
        params=[("supportsAllDrives", "true")],
        body={
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "expiration": str(int(expires_at * 1000)),
        },
    )
    return Channel(str(body["id"]), str(body["resourceId"]), int(body.get("expiration", 0)) / 1000)


async def stop_channel(api: GoogleApi, channel: Channel) -> None:
    """Stop a push channel."""
    await api.drive("POST", "channels/stop", f"stopping Drive channel {channel.id}",
                    body={"id": channel.id, "resourceId": channel.resource_id})
