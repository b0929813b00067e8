"""`sheetstream keys create|list|revoke`: REST API keys, kept in the store itself.

These commands open the store named by `--store` (SHEETSTREAM_STORE, default as `serve`'s) directly, not a
server, so the first key can be made before any server runs. A server checks keys in the store on every request:
a key works at once and a revoked one is refused from the next request on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from sheetstream.cli.app import app

if TYPE_CHECKING:
    from sheetstream.stores.base import ApiKeyRecord, Store

T = TypeVar("T")

DEFAULT_STORE = "sqlite:///sheetstream.db"
"""`serve`'s default store."""

keys_app = typer.Typer(
    help="REST API keys, kept in the store: create, list and revoke them (no server needed).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


class Scope(StrEnum):
    """What a key may do: `read` (GET) and/or `write` (POST, PATCH, DELETE)."""

    read = "read"
    write = "write"


StoreUrl = Annotated[
    str,
    typer.Option("--store", envvar="SHEETSTREAM_STORE", help="The store the server uses (its --store)."),
]


def _run(store_url: str, action: Callable[[Store], Awaitable[T]], *, create: bool = False) -> T:
    """Open the store, run `action` on it, close it; print a clear error and exit non-zero on failure."""
    from sheetstream.errors import ApiKeyNotFound, ConfigError, SheetstreamError
    from sheetstream.stores.registry import open_store

    async def run() -> T:
        store = open_store(store_url)
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        _check_store(store_url, create=create)
        return asyncio.run(run())
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ApiKeyNotFound as exc:
        typer.echo(f"error: {exc} in {store_url}; `sheetstream keys list` shows the ids", err=True)
        raise typer.Exit(1) from exc
    except SheetstreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _check_store(store_url: str, *, create: bool) -> None:
    """ConfigError for a store no server could share, or (unless creating) a SQLite file that does not exist."""
    from sheetstream.errors import ConfigError
    from sheetstream.stores.registry import STORES, lookup

    lookup(STORES, "store", store_url)  # an unknown scheme, before anything is made
    scheme = store_url.partition(":")[0].lower()
    if scheme == "memory" or store_url.lower().startswith("sqlite:///:memory:"):
        raise ConfigError(
            f"{store_url!r} lives inside one process: a key made here would vanish at once; "
            "give the store of your server with --store or SHEETSTREAM_STORE"
        )
    if scheme == "sqlite" and not create:
        path = Path(store_url[len("sqlite:///") :])
        if not path.exists():
            raise ConfigError(
                f"no SQLite store at {path}: give the store of your server with --store or SHEETSTREAM_STORE"
            )


def _when(at: datetime | None) -> str | None:
    from sheetstream.core.codec import format_at

    return None if at is None else format_at(at)


def _as_json(record: ApiKeyRecord) -> dict[str, Any]:
    """A key's record as `list --json` shows it: never the secret nor its hash."""
    return {
        "id": record.id,
        "name": record.name,
        "scopes": sorted(record.scopes),
        "created_at": _when(record.created_at),
        "revoked_at": _when(record.revoked_at),
    }


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key (shown by `keys list`).")],
    scope: Annotated[
        list[Scope],
        typer.Option("--scope", help="read (GET) and/or write (POST, PATCH, DELETE); repeat for both."),
    ],
    store: StoreUrl = DEFAULT_STORE,
) -> None:
    """Make a key and print it: this is the only time it is shown."""
    from sheetstream.auth.keys import mint_key

    async def create(opened: Store) -> tuple[str, ApiKeyRecord]:
        text, record = mint_key(name, [s.value for s in scope], now=datetime.now(UTC))
        await opened.create_api_key(record)
        return text, record

    text, record = _run(store, create, create=True)
    typer.echo(text)
    typer.echo(
        f"created API key {record.id} ({record.name!r}, scopes: {', '.join(sorted(record.scopes))}). "
        "Store it now: it cannot be shown again. Send it as `Authorization: Bearer <key>`.",
        err=True,
    )


@keys_app.command("list")
def keys_list(
    store: StoreUrl = DEFAULT_STORE,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of lines.")] = False,
) -> None:
    """List keys, oldest first: id, scopes, active or revoked, created, name (never the key itself)."""

    async def read(opened: Store) -> list[ApiKeyRecord]:
        return await opened.list_api_keys()

    records = _run(store, read)
    if json_out:
        typer.echo(json.dumps([_as_json(record) for record in records], indent=2))
        return
    for record in records:
        state = "active" if record.revoked_at is None else f"revoked {_when(record.revoked_at)}"
        scopes = ",".join(sorted(record.scopes))
        typer.echo(f"{record.id}\t{scopes}\t{state}\t{_when(record.created_at)}\t{record.name}")
    if not records:
        typer.echo(f"no API keys in {store}", err=True)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (from `keys list`).")],
    store: StoreUrl = DEFAULT_STORE,
) -> None:
    """Revoke a key: servers refuse it from their next request on. It stays listed, as revoked."""
    from sheetstream.auth.keys import parse_key

    presented = parse_key(key_id.strip())
    wanted = presented.key_id if presented is not None else key_id.strip()  # the whole key will do too
    now = datetime.now(UTC)

    async def revoke(opened: Store) -> ApiKeyRecord:
        return await opened.revoke_api_key(wanted, now=now)

    record = _run(store, revoke)
    if record.revoked_at != now:
        typer.echo(f"API key {record.id} ({record.name!r}) was already revoked at {_when(record.revoked_at)}")
    else:
        typer.echo(f"revoked API key {record.id} ({record.name!r})")
