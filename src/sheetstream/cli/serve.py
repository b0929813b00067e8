"""`sheetstream serve` (every role in one process) and `sheetstream openapi`."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from dataclasses import fields
from enum import Enum, StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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


def settings_from_options(options: Mapping[str, Any]) -> Settings:
    """The Settings named by command-line options (options that are not settings are ignored)."""
    from sheetstream.runtime.settings import Settings

    names = {f.name for f in fields(Settings)}
    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in options.items() if k in names}
    values["allowed_origins"] = tuple(options.get("allowed_origins") or ())
    return Settings(**values)


def check_urls(settings: Settings) -> None:
    """Refuse an unknown store or bus scheme (ConfigError) before anything is opened or created."""
    from sheetstream.buses.registry import BUSES
    from sheetstream.stores.registry import STORES, lookup

    lookup(STORES, "store", settings.store)
    lookup(BUSES, "bus", settings.bus)


def check_settings(settings: Settings) -> None:
    """`check_urls`, and refuse half a TLS pair, unreadable TLS files, a malformed secret key, or token keys that
    cannot verify anything (a short HS256 secret, a public key that is not PEM) (ConfigError)."""
    from sheetstream.auth.tokens import TokenVerifier
    from sheetstream.runtime.tls import server_ssl_context
    from sheetstream.stores.sealed import explicit_secret_box

    check_urls(settings)
    server_ssl_context(settings.tls_cert, settings.tls_key)
    explicit_secret_box(secret_key=settings.secret_key, secret_key_file=settings.secret_key_file)
    TokenVerifier(settings)  # keys fetched from a JWKS URL are not: it may be down for now


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="SHEETSTREAM_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_PORT", min=0, max=65535, help="Port to listen on (0: any free port)."
        ),
    ] = 8000,
    store: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_STORE", help="Store URL: sqlite:///path.db or memory://.")
    ] = "sqlite:///sheetstream.db",
    bus: Annotated[str, typer.Option(envvar="SHEETSTREAM_BUS", help="Bus URL: memory://.")] = "memory://",
    retention_max_changes: Annotated[
        int, typer.Option(envvar="SHEETSTREAM_RETENTION_MAX_CHANGES", min=1, help="Changes kept per source.")
    ] = 10_000,
    retention_max_age_s: Annotated[
        float,
        typer.Option(envvar="SHEETSTREAM_RETENTION_MAX_AGE_S", min=1, help="Oldest change kept, in seconds."),
    ] = 7 * 24 * 3600.0,
    max_frame_bytes: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_MAX_FRAME_BYTES", min=256, help="Largest client message (close 1009)."
        ),
    ] = 64 * 1024,
    send_queue_size: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_SEND_QUEUE_SIZE", min=1, help="Messages queued per connection (close 4008)."
        ),
    ] = 1024,
    ping_interval_s: Annotated[
        float, typer.Option(envvar="SHEETSTREAM_PING_INTERVAL_S", help="Keepalive ping interval.")
    ] = 20.0,
    ping_timeout_s: Annotated[
        float,
        typer.Option(envvar="SHEETSTREAM_PING_TIMEOUT_S", help="Close if a ping is unanswered this long."),
    ] = 20.0,
    default_poll_interval_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_DEFAULT_POLL_INTERVAL_S",
            min=0.01,
            help="Seconds between reads of a source created without its own poll_interval_s.",
        ),
    ] = 5.0,
    backoff_max_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_BACKOFF_MAX_S", help="Longest wait between reads of a failing source."
        ),
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
    ws_deflate: Annotated[
        bool,
        typer.Option(
            envvar="SHEETSTREAM_WS_DEFLATE",
            help="Let clients of the fast listener negotiate permessage-deflate; each message is compressed once "
            "and the frame shared by all of them.",
        ),
    ] = False,
    google_reads_per_min: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_READS_PER_MIN", min=1, help="Google Sheets reads/min per identity."
        ),
    ] = 60,
    google_project_reads_per_min: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_PROJECT_READS_PER_MIN",
            min=1,
            help="Google Sheets reads/min per project.",
        ),
    ] = 300,
    google_target: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_GOOGLE_TARGET",
            min=0.05,
            max=1.0,
            help="Share of the Google quotas to use at most.",
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
            envvar="SHEETSTREAM_GOOGLE_IDLE_MAX_S",
            min=1,
            help="Longest interval between reads of an idle sheet.",
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
    anonymous: Annotated[
        bool,
        typer.Option(
            envvar="SHEETSTREAM_ANONYMOUS",
            help="Accept WebSocket connections and REST calls without credentials (full access): for demos only. "
            "The demo turns it on.",
        ),
    ] = False,
    jwt_secret: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_JWT_SECRET", help="HS256 key of WebSocket connection tokens.")
    ] = "",
    jwt_public_key: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_JWT_PUBLIC_KEY",
            help="RS256 public key of connection tokens: PEM text or a PEM file.",
        ),
    ] = "",
    jwt_jwks_url: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_JWT_JWKS_URL", help="JWKS URL of the keys of RS256 connection tokens."
        ),
    ] = "",
    jwt_audience: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_JWT_AUDIENCE", help="Required 'aud' of connection tokens.")
    ] = "",
    jwt_issuer: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_JWT_ISSUER", help="Required 'iss' of connection tokens.")
    ] = "",
    token_grace_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_TOKEN_GRACE_S",
            min=0,
            help="Seconds a connection whose token expired has to send a fresh one (then close 4001).",
        ),
    ] = 30.0,
    allowed_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-origin",
            envvar="SHEETSTREAM_ALLOWED_ORIGINS",
            help="A browser origin allowed to open WebSockets (repeat it; '*': any). Default: the server's own host.",
        ),
    ] = None,
    secret_key: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_SECRET_KEY",
            help="Fernet key encrypting source credentials at rest; comma-separated keys rotate (the first "
            "encrypts). Default: a key file beside a SQLite store.",
        ),
    ] = "",
    secret_key_file: Annotated[
        str,
        typer.Option(
            envvar="SHEETSTREAM_SECRET_KEY_FILE", help="File holding the key of source credentials."
        ),
    ] = "",
    tls_cert: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_TLS_CERT", help="PEM certificate chain: serve HTTPS and WSS.")
    ] = "",
    tls_key: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_TLS_KEY", help="PEM private key of --tls-cert.")
    ] = "",
    max_subscriptions: Annotated[
        int, typer.Option(envvar="SHEETSTREAM_MAX_SUBSCRIPTIONS", min=1, help="Subscriptions per connection.")
    ] = 100,
    max_messages_per_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_MAX_MESSAGES_PER_S",
            min=0,
            help="Client messages/s per connection on average (close 4029); 0: no limit.",
        ),
    ] = 50.0,
    max_messages_burst: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_MAX_MESSAGES_BURST", min=1, help="Client messages at once above the rate."
        ),
    ] = 100,
    connections_per_ip_per_min: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_CONNECTIONS_PER_IP_PER_MIN",
            min=0,
            help="New WebSocket connections/min per IP address (close 4029); 0: no limit.",
        ),
    ] = 600,
    rest_requests_per_min: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_REST_REQUESTS_PER_MIN",
            min=0,
            help="REST requests/min per API key, or per IP without one (429); 0: no limit.",
        ),
    ] = 600,
    max_deliveries: Annotated[
        int,
        typer.Option(
            envvar="SHEETSTREAM_MAX_DELIVERIES",
            min=1,
            help="Tries of a change set or hint before it is a dead letter.",
        ),
    ] = 5,
) -> None:
    """Run every role in one process: REST API, WebSocket gateway, monitor, web page."""
    from sheetstream.errors import ConfigError

    options = dict(locals())
    # Channels opened by this process are verified by it: a random secret will do when there is one process.
    options["hook_secret"] = hook_secret or secrets.token_hex(16)
    options["anonymous"] = anonymous or demo  # the demo page works without credentials
    settings = settings_from_options(options)
    if demo and not demo_csv.exists():
        raise typer.BadParameter(f"demo CSV {demo_csv} does not exist", param_hint="--demo-csv")
    try:
        check_settings(settings)
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
