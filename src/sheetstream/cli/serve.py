"""`sheetstream serve` (every role in one process) and `sheetstream openapi`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from sheetstream.cli.app import app

DEFAULT_DEMO_CSV = Path("demo/people.csv")


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


