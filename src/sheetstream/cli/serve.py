"""`sheetstream serve` (every role in one process) and `sheetstream openapi`."""

from __future__ import annotations

import asyncio
import json
import secrets
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sheetstream.cli.app import app

if TYPE_CHECKING:
    from sheetstream.runtime.settings import Settings

DEFAULT_DEMO_CSV = Path("demo/people.csv")


class LogLevel(StrEnum):
    """The levels both the standard library's logging and uvicorn know; anything else is refused before starting."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


def check_urls(settings: Settings) -> None:
    """Refuse an unknown store or bus scheme (ConfigError) before anything is opened or created."""
    from sheetstream.buses.registry import BUSES
    from sheetstream.stores.registry import STORES, lookup

    lookup(STORES, "store", settings.store)
    lookup(BUSES, "bus", settings.bus)


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SHEETSTREAM_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="SHEETSTREAM_PORT", min=0, max=65535, help="Port to listen on (0: any free port).")
    ] = 8000,
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
        bool,
        typer.Option(
            envvar="SHEETSTREAM_DEMO",
            help="Register the demo CSV as a source named 'demo'; without Google credentials, also start the "
            "local Google emulator with a sample spreadsheet, watched as 'demo-sheet'.",
        ),
    ] = False,
    demo_csv: Annotated[
        Path, typer.Option(envvar="SHEETSTREAM_DEMO_CSV", help="The CSV file the demo source watches.")
    ] = DEFAULT_DEMO_CSV,
    log_level: Annotated[
        LogLevel, typer.Option(envvar="SHEETSTREAM_LOG_LEVEL", case_sensitive=False, help="How much to log.")
    ] = LogLevel.info,
    ws_port: Annotated[
        int | None,
        typer.Option(
            envvar="SHEETSTREAM_WS_PORT",
            min=0,
            max=65535,
            help="Also serve /v1/ws on this port with the fast (picows) listener; /v1/ws on --port stays.",
        ),
    ] = None,
    google_reads_per_min: Annotated[
        int,
        typer.Option(envvar="SHEETSTREAM_GOOGLE_READS_PER_MIN", min=1, help="Google Sheets reads/min per identity."),
    ] = 60,
    google_project_reads_per_min: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_PROJECT_READS_PER_MIN", min=1, help="Google Sheets reads/min per project."
        ),
    ] = 300,
    google_target: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_TARGET", min=0.05, max=1.0, help="Share of the Google quotas to use at most."
        ),
    ] = 0.8,
    google_changes_interval_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_CHANGES_INTERVAL_S",
            min=0,
            help="Seconds between Drive changes.list checks per identity (0: off).",
        ),
    ] = 5.0,
    google_idle_max_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_IDLE_MAX_S", min=1, help="Longest interval between reads of an idle sheet."
        ),
    ] = 300.0,
    public_url: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_PUBLIC_URL",
            help="This server's public HTTPS URL; when set, Drive push channels post to <url>/v1/hooks/drive.",
        ),
    ] = "",
    hook_secret: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_HOOK_SECRET", help="Signs Drive channel tokens (default: random per process)."
        ),
    ] = "",
    apps_script_secret: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_APPS_SCRIPT_SECRET",
            help="Shared secret of POST /v1/hooks/apps-script (the hook is off without one).",
        ),
    ] = "",
) -> None:
    """Run every role in one process: REST API, WebSocket gateway, monitor, web page."""
    from sheetstream.errors import ConfigError
    from sheetstream.runtime.settings import Settings

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
        google_reads_per_min=google_reads_per_min,
        google_project_reads_per_min=google_project_reads_per_min,
        google_target=google_target,
        google_changes_interval_s=google_changes_interval_s,
        google_idle_max_s=google_idle_max_s,
        public_url=public_url,
        # Channels opened by this process are verified by it: a random secret will do when there is one process.
        hook_secret=hook_secret or secrets.token_hex(16),
        apps_script_secret=apps_script_secret,
        log_level=log_level.value,
        ws_port=ws_port,
    )
    if demo and not demo_csv.exists():
        raise typer.BadParameter(f"demo CSV {demo_csv} does not exist", param_hint="--demo-csv")
    try:
        check_urls(settings)
    except ConfigError as exc:  # before the (slow) server imports: a typo is answered at once
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    from sheetstream.runtime.logging import configure_logging
    from sheetstream.runtime.server import serve as run_server

    configure_logging(log_level.value)
    try:
        asyncio.run(run_server(settings, demo_path=demo_csv.resolve() if demo else None))
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


