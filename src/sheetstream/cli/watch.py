"""`sheetstream watch SOURCE`: print a source's changes live, resuming after a dropped connection."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer

from sheetstream.cli.app import DEFAULT_SERVER, ServerUrl, app
from sheetstream.cli.sources import ID_ARGUMENT


@app.command(context_settings=ID_ARGUMENT)
def watch(
    source: Annotated[str, typer.Argument(help="The source id.")],
    server: ServerUrl = DEFAULT_SERVER,
    json_lines: Annotated[bool, typer.Option("--json", help="Print each message as one JSON line.")] = False,
    since_epoch: Annotated[str | None, typer.Option(help="Resume from this epoch ...")] = None,
    since_version: Annotated[int | None, typer.Option(help="... and version.")] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="SHEETSTREAM_TOKEN", help="WebSocket connection token (see `sheetstream token`)."),
    ] = None,
) -> None:
    """Print a source's changes live; reconnects and resumes after a dropped connection."""
    from sheetstream.client import ClientError, subscribe

    if (since_epoch is None) != (since_version is None):
        raise typer.BadParameter("give both --since-epoch and --since-version, or neither")
    url = server.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/v1/ws"
    since = (since_epoch, since_version) if since_epoch is not None and since_version is not None else None

    async def run() -> None:
        async for event in subscribe(url, source, since=since, token=token):
            if json_lines:
                typer.echo(json.dumps(event.raw or {"type": event.type, "reason": event.reason}))
            elif event.type == "snapshot" and event.snapshot is not None:
                rows = sum(len(t.rows) for t in event.snapshot.tabs)
                typer.echo(f"snapshot v{event.version}: {len(event.snapshot.tabs)} tab(s), {rows} row(s)")
            elif event.type == "change":
                typer.echo(f"change v{event.version}: {len(event.ops)} op(s)")
                for op in event.raw.get("ops", []):
                    typer.echo("  " + json.dumps(op))
            elif event.type == "subscribed":
                typer.echo(f"subscribed at v{event.version} (epoch {event.epoch}, recovered={event.recovered})")
            else:
                typer.echo(f"disconnected ({event.reason}); reconnecting", err=True)
            sys.stdout.flush()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except ClientError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


