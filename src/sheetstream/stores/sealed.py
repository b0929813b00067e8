"""A Store that keeps source credentials and header values encrypted at rest, around any other store.

`SealedStore(inner, box)` seals the secret parts of a config (see auth/secretbox.py) on `create_source` and
`update_source`, and unseals them in every SourceRecord it returns; every other call goes to `inner` unchanged.
A source whose secrets cannot be decrypted (a wrong key) is still returned, its secrets left sealed and its status
`error` with a message saying why, so the API and the other sources keep working.

`open_sealed_store(url, secret_key=..., secret_key_file=...)` is how every process opens its store; the key is
found by `resolve_secret_box`:

1. `secret_key` (SHEETSTREAM_SECRET_KEY), else the content of `secret_key_file` (SHEETSTREAM_SECRET_KEY_FILE);
2. else, for `sqlite:///path`, the key file `path.key` beside the database, made (mode 0600) on first start;
3. else, for `memory://` (and `sqlite:///:memory:`), a random key: nothing outlives the process;
4. else (PostgreSQL) no key: configs with secrets are refused (SecretKeyRequired), others are stored as they are.
"""

from __future__ import annotations

import abc
import os
import stat
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from sheetstream.auth.secretbox import (
    KEY_ENV,
    KEY_FILE_ENV,
    SecretBox,
    holds_secrets,
    key_required,
    still_sealed,
    unreadable_message,
)
from sheetstream.core.model import ChangeSet, Snapshot, VersionedSnapshot
from sheetstream.errors import ConfigError, SecretUnreadable
from sheetstream.stores.base import (
    ApiKeyRecord,
    ChangesSince,
    DeadLetter,
    NewDeadLetter,
    NewSource,
    Retention,
    SourceRecord,
    SourceStatus,
    Store,
)
from sheetstream.stores.registry import open_store

log = structlog.get_logger("sheetstream.secrets")

_SQLITE = "sqlite:///"


class SealedStore(Store):
    """Seals source secrets on the way into `inner`, unseals them on the way out; `box` None: no key (refuse)."""

    def __init__(self, inner: Store, box: SecretBox | None) -> None:
        self.inner = inner
        self.box = box
        self._reported: set[str] = set()

    # -- the calls that carry configs --

    async def create_source(self, new: NewSource, *, now: datetime) -> SourceRecord:
        """Create the source with its secrets sealed."""
        what = f"source {new.name!r}" if new.name else f"this {new.kind} source"
        sealed = replace(new, config=self._seal(new.config, what))
        return self._unseal(await self.inner.create_source(sealed, now=now))

    async def update_source(self, source_id: str, changes: dict[str, Any], *, now: datetime) -> SourceRecord:
        """Change the source; a new config is stored with its secrets sealed."""
        if isinstance(changes.get("config"), dict):
            changes = {**changes, "config": self._seal(changes["config"], f"source {source_id!r}")}
        return self._unseal(await self.inner.update_source(source_id, changes, now=now))

    async def get_source(self, source_id: str) -> SourceRecord:
        """The source with its secrets unsealed."""
        return self._unseal(await self.inner.get_source(source_id))

    async def list_sources(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[SourceRecord], str | None]:
        """A page of sources with their secrets unsealed."""
        records, next_cursor = await self.inner.list_sources(limit=limit, cursor=cursor)
        return [self._unseal(record) for record in records], next_cursor

    async def reset_history(self, source_id: str, *, now: datetime) -> SourceRecord:
        """Start a new epoch; the source with its secrets unsealed."""
        return self._unseal(await self.inner.reset_history(source_id, now=now))

    def _seal(self, config: dict[str, Any], what: str) -> dict[str, Any]:
        if self.box is not None:
            return self.box.seal(config)
        if holds_secrets(config):
            raise key_required(what)
        return config

    def _unseal(self, record: SourceRecord) -> SourceRecord:
        try:
            if self.box is not None:
                return replace(record, config=self.box.unseal(record.config, source_id=record.id))
            if still_sealed(record.config):
                raise SecretUnreadable(unreadable_message(record.id, have_key=False), source_id=record.id)
        except SecretUnreadable as exc:
            if record.id not in self._reported:  # monitors reread every source often: say it once per process
                self._reported.add(record.id)
                log.error("source credentials unreadable", source=record.id, error=str(exc))
            # The record still comes back (the API lists it, the monitor marks it failed); its secrets stay sealed.
            since = record.status.since or record.updated_at
            return replace(record, status=SourceStatus(state="error", message=str(exc), since=since))
        return record

    # -- everything else goes to the wrapped store as it is --

    async def open(self) -> None:
        """Open the wrapped store."""
        await self.inner.open()

    async def close(self) -> None:
        """Close the wrapped store."""
        await self.inner.close()

    async def delete_source(self, source_id: str) -> None:
        """Delete the source."""
        await self.inner.delete_source(source_id)

    async def set_status(self, source_id: str, status: SourceStatus) -> None:
        """Record how the last read went."""
        await self.inner.set_status(source_id, status)

    async def commit(self, snapshot: Snapshot, changeset: ChangeSet, *, retention: Retention) -> None:
        """Commit through the wrapped store."""
        await self.inner.commit(snapshot, changeset, retention=retention)

    async def snapshot(self, source_id: str) -> VersionedSnapshot:
        """The latest snapshot."""
        return await self.inner.snapshot(source_id)

    async def changes_since(
        self, source_id: str, epoch: str, version: int, *, limit: int = 1000
    ) -> ChangesSince:
        """Change sets after `version`."""
        return await self.inner.changes_since(source_id, epoch, version, limit=limit)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float, *, now: datetime) -> bool:
        """Take or renew a lease."""
        return await self.inner.acquire_lease(name, holder, ttl_s, now=now)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give a lease up."""
        await self.inner.release_lease(name, holder)

    async def lease_holders(self, prefix: str, *, now: datetime) -> dict[str, str]:
        """The live leases under `prefix`."""
        return await self.inner.lease_holders(prefix, now=now)

    async def acquire_leases(
        self, names: Collection[str], holder: str, ttl_s: float, *, now: datetime
    ) -> set[str]:
        """Take or renew many leases with the wrapped store's one write."""
        return await self.inner.acquire_leases(names, holder, ttl_s, now=now)

    async def release_leases(self, names: Collection[str], holder: str) -> None:
        """Give many leases up with the wrapped store's one write."""
        await self.inner.release_leases(names, holder)

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new API key."""
        await self.inner.create_api_key(record)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord:
        """The API key."""
        return await self.inner.get_api_key(key_id)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every API key."""
        return await self.inner.list_api_keys()

    async def revoke_api_key(self, key_id: str, *, now: datetime) -> ApiKeyRecord:
        """Revoke the API key."""
        return await self.inner.revoke_api_key(key_id, now=now)

    async def add_dead_letter(self, new: NewDeadLetter, *, now: datetime) -> DeadLetter:
        """Set a letter aside."""
        return await self.inner.add_dead_letter(new, now=now)

    async def list_dead_letters(
        self, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """A page of dead letters."""
        return await self.inner.list_dead_letters(limit=limit, cursor=cursor)

    async def get_dead_letter(self, letter_id: str) -> DeadLetter:
        """The dead letter."""
        return await self.inner.get_dead_letter(letter_id)

    async def delete_dead_letter(self, letter_id: str) -> None:
        """Delete the dead letter."""
        await self.inner.delete_dead_letter(letter_id)

    async def count_dead_letters(self) -> int:
        """How many letters are set aside."""
        return await self.inner.count_dead_letters()

    def __getattr__(self, name: str) -> Any:
        # What only some adapters have (a path, a pool): the wrapped store's.
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: SealedStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"`{name}` of the wrapped store."
    return method


# A method added to the Store port goes to the wrapped store until SealedStore has to know about it.
for _name, _value in vars(Store).items():
    if callable(_value) and not _name.startswith("_") and _name not in vars(SealedStore):
        setattr(SealedStore, _name, _delegate(_name))
abc.update_abstractmethods(SealedStore)


def resolve_secret_box(
    store_url: str, *, secret_key: str = "", secret_key_file: str = ""
) -> SecretBox | None:
    """The key that seals this store's secrets (see the module docstring for the order); None: no key."""
    explicit = explicit_secret_box(secret_key=secret_key, secret_key_file=secret_key_file)
    if explicit is not None:
        return explicit
    scheme = store_url.split("://", 1)[0].lower()
    if scheme == "memory" or store_url.lower() == _SQLITE + ":memory:":
        return SecretBox.generate()
    if store_url[: len(_SQLITE)].lower() == _SQLITE:
        return SecretBox.from_text(_key_file_beside(Path(store_url[len(_SQLITE) :] + ".key")))
    return None


def explicit_secret_box(*, secret_key: str = "", secret_key_file: str = "") -> SecretBox | None:
    """The box of `secret_key`, else of the file `secret_key_file`; None if neither is set; ConfigError if bad."""
    if secret_key.strip():
        return SecretBox.from_text(secret_key, origin=KEY_ENV)
    if secret_key_file:
        try:
            text = Path(secret_key_file).read_text()
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not text"
            raise ConfigError(
                f"cannot read the secret key file {secret_key_file} ({KEY_FILE_ENV}): {reason}"
            ) from exc
        return SecretBox.from_text(text, origin=f"secret key file {secret_key_file}")
    return None


def _key_file_beside(path: Path) -> str:
    """The key in `path`, made (mode 0600) if the file does not exist yet."""
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    # Written under a temporary name, then linked into place: two processes starting together agree on one key,
    # and none reads a half-written file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(SecretBox.new_key() + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key_file(path)
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the secret key file {path} beside the SQLite store: {exc.strerror}; "
            f"set {KEY_ENV} or {KEY_FILE_ENV} instead"
        ) from exc
    log.warning(
        "created the key that encrypts source credentials; keep it with the database", path=os.path.abspath(path)
    )
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise  # the caller makes the file
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise ConfigError(f"cannot read the secret key file {path}: {reason}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the secret key file can be read by other users: chmod 600 it", path=str(path))
    return text


def open_sealed_store(url: str, *, secret_key: str = "", secret_key_file: str = "") -> SealedStore:
    """The store for `url` (not yet opened), sealing source secrets with the key `resolve_secret_box` finds."""
    inner = open_store(url)  # a bad URL is refused before any key file is made
    return SealedStore(inner, resolve_secret_box(url, secret_key=secret_key, secret_key_file=secret_key_file))
