"""The root `sheetstream` command, and what its subcommands share: the server URL option and REST calls."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from sheetstream import __version__

app = typer.Typer(
    help="sheetstream: watch spreadsheets and stream cell-level changes over WebSockets.",
    no_args_is_help=True,
    add_completion=False,
)

DEFAULT_SERVER = "http://127.0.0.1:8000"

ServerUrl = Annotated[
    str, typer.Option("--server", envvar="SHEETSTREAM_SERVER", help="Base URL of a running sheetstream server.")
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="SHEETSTREAM_API_KEY",
        help="REST API key (`sheetstream keys create`), sent as a bearer token.",
        show_default=False,
    ),
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


def request(method: str, server: str, path: str, *, api_key: str | None = None, **kwargs: Any) -> Any:
    """Call the server's REST API with `api_key` if given; print its error and exit non-zero on failure."""
    if api_key:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {api_key.strip()}"}
    try:
        response = httpx.request(method, server.rstrip("/") + path, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {server}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            message = f"{error['code']}: {error['message']}"
            details = error.get("details")
            # Field errors come as a list; other errors may carry an object (like {"source": id}) that adds nothing.
            for detail in details if isinstance(details, list) else []:
                message += f"\n  {detail.get('field', '')}: {detail.get('message', '')}"
        except (ValueError, KeyError, TypeError, AttributeError):
            message = response.text[:500]
        if response.status_code == 401:
            message += "\n  give a valid key with --api-key or SHEETSTREAM_API_KEY (see `sheetstream keys --help`)"
        typer.echo(f"error ({response.status_code}): {message}", err=True)
        raise typer.Exit(1)
    try:
        return response.json() if response.content else None
    except ValueError as exc:
        typer.echo(f"error: {server} did not answer with JSON: is it a sheetstream server?", err=True)
        raise typer.Exit(2) from exc


def print_json(data: Any) -> None:
    """Pretty-print a JSON document."""
    typer.echo(json.dumps(data, indent=2))
