"""The `sheetstream` command line. Every option also reads a SHEETSTREAM_* environment variable; flags win."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from sheetstream import __version__

app = typer.Typer(
    help="sheetstream: watch spreadsheets and stream cell-level changes over WebSockets.",
    no_args_is_help=True,
    add_completion=False,
)
sources_app = typer.Typer(help="Manage data sources through a running server's REST API.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")

DEFAULT_DEMO_CSV = Path("demo/people.csv")

ServerUrl = Annotated[
    str, typer.Option("--server", envvar="SHEETSTREAM_SERVER", help="Base URL of a running sheetstream server.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sheetstream {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sheetstream: watch spreadsheets and stream cell-level changes over WebSockets."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SHEETSTREAM_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SHEETSTREAM_PORT", help="Port to listen on (0: any free port).")] = 8000,
    store: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_STORE", help="Store URL: sqlite:///path.db or memory://.")
    ] = "sqlite:///sheetstream.db",
    bus: Annotated[str, typer.Option(envvar="SHEETSTREAM_BUS", help="Bus URL: memory://.")] = "memory://",
    retention_max_changes: Annotated[
        int, typer.Option(envvar="SHEETSTREAM_RETENTION_MAX_CHANGES", min=1, help="Changes kept per source.")
    ] = 10_000,
    retention_max_age_s: Annotated[
        float, typer.Option(envvar="SHEETSTREAM_RETENTION_MAX_AGE_S", min=1, help="Oldest change kept, in seconds.")
    ] = 7 * 24 * 3600.0,
    max_frame_bytes: Annotated[
        int, typer.Option(envvar="SHEETSTREAM_MAX_FRAME_BYTES", min=256, help="Largest client message (close 1009).")
    ] = 64 * 1024,
    send_queue_size: Annotated[
        int,
        typer.Option(envvar="SHEETSTREAM_SEND_QUEUE_SIZE", min=1, help="Messages queued per connection (close 4008)."),
    ] = 1024,
    ping_interval_s: Annotated[
        float, typer.Option(envvar="SHEETSTREAM_PING_INTERVAL_S", help="Keepalive ping interval.")
    ] = 20.0,
    ping_timeout_s: Annotated[
        float, typer.Option(envvar="SHEETSTREAM_PING_TIMEOUT_S", help="Close if a ping is unanswered this long.")
    ] = 20.0,
    backoff_max_s: Annotated[
        float, typer.Option(envvar="SHEETSTREAM_BACKOFF_MAX_S", help="Longest wait between reads of a failing source.")
    ] = 60.0,
    demo: Annotated[
        bool, typer.Option(envvar="SHEETSTREAM_DEMO", help="Register the demo CSV as a source named 'demo'.")
    ] = False,
    demo_csv: Annotated[
        Path, typer.Option(envvar="SHEETSTREAM_DEMO_CSV", help="The CSV file the demo source watches.")
    ] = DEFAULT_DEMO_CSV,
    log_level: Annotated[str, typer.Option(envvar="SHEETSTREAM_LOG_LEVEL", help="debug, info, warning, error.")] = "info",
) -> None:
    """Run every role in one process: REST API, WebSocket gateway, monitor, web page."""
    from sheetstream.runtime.logging import configure_logging
    from sheetstream.runtime.server import serve as run_server
    from sheetstream.runtime.settings import Settings

    configure_logging(log_level)
    settings = Settings(
        host=host,
        port=port,
        store=store,
        bus=bus,
        retention_max_changes=retention_max_changes,
        retention_max_age_s=retention_max_age_s,
        max_frame_bytes=max_frame_bytes,
        send_queue_size=send_queue_size,
        ping_interval_s=ping_interval_s,
        ping_timeout_s=ping_timeout_s,
        backoff_max_s=backoff_max_s,
        demo=demo,
        log_level=log_level,
    )
    if demo and not demo_csv.exists():
        raise typer.BadParameter(f"demo CSV {demo_csv} does not exist", param_hint="--demo-csv")
    try:
        asyncio.run(run_server(settings, demo_path=demo_csv if demo else None))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # a clear one-line error for bad URLs, unreachable stores ...
        from sheetstream.errors import SheetstreamError

        if isinstance(exc, SheetstreamError):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        raise


@app.command()
def openapi() -> None:
    """Print the REST API's OpenAPI document (what docs/openapi.json holds)."""
    from sheetstream.api import openapi_document

    typer.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


# --- sources ---------------------------------------------------------------------------------------------------


def _request(method: str, server: str, path: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, server.rstrip("/") + path, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
            for detail in error.get("details") or []:
                message += f"\n  {detail.get('field', '')}: {detail.get('message', '')}"
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        typer.echo(f"error ({response.status_code}): {message}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _parse_config(pairs: list[str], config_json: str | None) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(config_json) if config_json else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        config[key] = value
    return config


@sources_app.command("add")
def sources_add(
    kind: Annotated[str, typer.Argument(help="file, http_csv or http_json.")],
    path_or_url: Annotated[str | None, typer.Argument(help="The file path (file) or URL (http_*).")] = None,
    name: Annotated[str | None, typer.Option(help="A name to show for the source.")] = None,
    key_column: Annotated[str | None, typer.Option(help="Align rows by this column (index or header).")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Seconds between reads.")] = None,
    config_json: Annotated[str | None, typer.Option("--config", help="The whole config as JSON.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Config KEY=VALUE, repeatable.")] = [],  # noqa: B006
    server: ServerUrl = "http://127.0.0.1:8000",
) -> None:
    """Register a data source and print it."""
    config = _parse_config(set_, config_json)
    if path_or_url is not None:
        if kind == "file":
            config["path"] = str(Path(path_or_url).resolve())
        else:
            config["url"] = path_or_url
    if key_column is not None:
        config["key_column"] = int(key_column) if key_column.isdigit() else key_column
    body: dict[str, Any] = {"kind": kind, "config": config}
    if name is not None:
        body["name"] = name
    if poll_interval_s is not None:
        body["poll_interval_s"] = poll_interval_s
    _print(_request("POST", server, "/v1/sources", json=body))


@sources_app.command("list")
def sources_list(server: ServerUrl = "http://127.0.0.1:8000") -> None:
    """List data sources: id, kind, status, version, name."""
    cursor: str | None = None
    while True:
        page = _request("GET", server, "/v1/sources", params={"cursor": cursor} if cursor else None)
        for item in page["items"]:
            status = item["status"]["state"]
            typer.echo(f"{item['id']}\t{item['kind']}\t{status}\tv{item['version']}\t{item.get('name') or ''}")
        cursor = page.get("next_cursor")
        if not cursor:
            return


@sources_app.command("show")
def sources_show(source: str, server: ServerUrl = "http://127.0.0.1:8000") -> None:
    """Print one source."""
    _print(_request("GET", server, f"/v1/sources/{source}"))


@sources_app.command("update")
def sources_update(
    source: str,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Seconds between reads.")] = None,
    paused: Annotated[bool | None, typer.Option("--paused/--active", help="Stop or resume watching.")] = None,
    config_json: Annotated[str | None, typer.Option("--config", help="Replace the config with this JSON.")] = None,
    server: ServerUrl = "http://127.0.0.1:8000",
) -> None:
    """Change a source's name, poll interval, paused state or config."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if poll_interval_s is not None:
        body["poll_interval_s"] = poll_interval_s
    if paused is not None:
        body["paused"] = paused
    if config_json is not None:
        body["config"] = json.loads(config_json)
    if not body:
        raise typer.BadParameter("nothing to change: give --name, --poll-interval-s, --paused/--active or --config")
    _print(_request("PATCH", server, f"/v1/sources/{source}", json=body))


@sources_app.command("rm")
def sources_rm(source: str, server: ServerUrl = "http://127.0.0.1:8000") -> None:
    """Delete a source with its history."""
    _request("DELETE", server, f"/v1/sources/{source}")
    typer.echo(f"deleted {source}")


@app.command()
def watch(
    source: Annotated[str, typer.Argument(help="The source id.")],
    server: ServerUrl = "http://127.0.0.1:8000",
    json_lines: Annotated[bool, typer.Option("--json", help="Print each message as one JSON line.")] = False,
    since_epoch: Annotated[str | None, typer.Option(help="Resume from this epoch ...")] = None,
    since_version: Annotated[int | None, typer.Option(help="... and version.")] = None,
) -> None:
    """Print a source's changes live; reconnects and resumes after a dropped connection."""
    from sheetstream.client import ClientError, subscribe

    url = server.replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/v1/ws"
    since = (since_epoch, since_version) if since_epoch is not None and since_version is not None else None

    async def run() -> None:
        async for event in subscribe(url, source, since=since):
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


def main() -> None:
    """Console-script entry point."""
    app()
