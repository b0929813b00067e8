"""Everything the emulator remembers, behind one lock: files, the Drive change log, accounts, tokens, quotas, faults.

Tests may read and change the state directly (from any thread) while the app serves requests: take `state.lock`
for multi-step changes. Every write to a file goes through `commit`, which bumps the file's `version` and
`modifiedTime`, appends to the Drive change log and tells the listeners (push notifications).
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sheetstream.emulator.faults import Faults
from sheetstream.emulator.model import SPREADSHEET_MIME, DriveFile, Sheet
from sheetstream.emulator.quota import Quotas

Clock = Callable[[], float]
ChangeKind = Literal["content", "properties", "add", "remove", "trash", "untrash"]
_ID_CHARS = string.ascii_letters + string.digits + "-_"


@dataclass(frozen=True)
class ChangeEvent:
    """One committed write: which file, its change number in the Drive log, what kind of change."""

    file_id: str
    number: int
    kind: ChangeKind
    time: float


@dataclass
class Token:
    """An access token issued by `/token`: whose it is, until when, with which scopes."""

    identity: str
    expires: float
    scopes: frozenset[str] = field(default_factory=frozenset)


def rfc3339(ts: float) -> str:
    """A timestamp as Drive writes it: 2024-05-01T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


class EmulatorState:
    """The in-memory Google: files by id, the change log, service accounts, API keys, tokens, quotas, faults."""

    def __init__(self, *, clock: Clock = time.time, seed: int | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.rng = random.Random(seed)
        self.files: dict[str, DriveFile] = {}
        self.changes: list[ChangeEvent] = []
        self.service_accounts: dict[str, str] = {}  # email -> public key (PEM) or X.509 certificate
        self.api_keys: set[str] = set()
        self.tokens: dict[str, Token] = {}
        self.quotas = Quotas()
        self.faults = Faults(seed)
        self.listeners: list[Callable[[ChangeEvent], None]] = []

    # ids -----------------------------------------------------------------------------------------------

    def new_id(self, length: int = 44) -> str:
        """A fresh file id shaped like Google's."""
        with self.lock:
            while True:
                file_id = "".join(self.rng.choice(_ID_CHARS) for _ in range(length))
                if file_id not in self.files and file_id[0] not in "-_":
                    return file_id

    def new_sheet_id(self, book: DriveFile) -> int:
        """A fresh sheetId for a tab added to `book`."""
        taken = {s.sheet_id for s in book.tabs()}
        while True:
            sheet_id = self.rng.randrange(1, 2**31 - 1)
            if sheet_id not in taken:
                return sheet_id

    # files -----------------------------------------------------------------------------------------------

    def create_spreadsheet(
        self,
        title: str = "Untitled spreadsheet",
        *,
        owner: str | None = None,
        file_id: str | None = None,
        sheets: list[Sheet] | None = None,
    ) -> DriveFile:
        """Create a spreadsheet (one 1000x26 tab "Sheet1" with sheetId 0 unless `sheets` are given)."""
        with self.lock:
            now = self.clock()
            file_id = file_id or self.new_id()
            if file_id in self.files:
                raise ValueError(f"file {file_id!r} already exists")
            tabs = sheets if sheets else [Sheet(0, "Sheet1")]
            book = DriveFile(
                file_id, title, SPREADSHEET_MIME, created=now, modified=now, owner=owner, sheets=tabs
            )
            book.reindex()
            self.files[file_id] = book
            self.commit(book, "add")
            return book

    def create_file(self, name: str, mime_type: str, *, owner: str | None = None) -> DriveFile:
        """Create a Drive file that is not a spreadsheet (metadata only)."""
        if mime_type == SPREADSHEET_MIME:
            return self.create_spreadsheet(name, owner=owner)
        with self.lock:
            now = self.clock()
            drive_file = DriveFile(self.new_id(33), name, mime_type, created=now, modified=now, owner=owner)
            self.files[drive_file.id] = drive_file
            self.commit(drive_file, "add")
            return drive_file

    def delete_file(self, file_id: str) -> None:
        """Delete a file for good."""
        with self.lock:
            drive_file = self.files.pop(file_id)
            self.commit(drive_file, "remove")

    def share(
        self, file_id: str, identity: str, role: Literal["reader", "writer", "owner"] = "reader"
    ) -> None:
        """Let `identity` read (or write) a file; identity "anyone" turns on link sharing for reading."""
        with self.lock:
            drive_file = self.files[file_id]
            if identity == "anyone":
                drive_file.anyone_with_link = True
            elif role == "owner":
                drive_file.owner = identity
            elif role == "writer":
                drive_file.writers.add(identity)
            else:
                drive_file.readers.add(identity)
            self.commit(drive_file, "properties")

    def commit(self, drive_file: DriveFile, kind: ChangeKind = "content") -> ChangeEvent:
        """Record a write: bump version and modifiedTime, log the change, notify listeners."""
        with self.lock:
            now = self.clock()
            if kind != "add":
                drive_file.version += 1
            drive_file.modified = now
            event = ChangeEvent(drive_file.id, len(self.changes) + 1, kind, now)
            self.changes.append(event)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(event)
        return event

    def next_change_number(self) -> int:
        """The page token that lists changes from now on."""
        with self.lock:
            return len(self.changes) + 1

    def reset(self) -> None:
        """Forget every file, change, token, fault and count (accounts and API keys stay)."""
        with self.lock:
            self.files.clear()
            self.changes.clear()
            self.tokens.clear()
            self.quotas.reset()
            self.faults.reset()
