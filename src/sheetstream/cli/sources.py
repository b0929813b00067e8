"""`sheetstream sources add|list|show|update|rm`: manage data sources through a running server's REST API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from sheetstream.cli.app import DEFAULT_SERVER, ApiKey, ServerUrl, app, print_json, request

sources_app = typer.Typer(help="Manage data sources through a running server's REST API.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


# Source ids are url-safe base64, so some start with "-": take an unknown option-like word as the id, not an error.
ID_ARGUMENT = {"ignore_unknown_options": True}


def _config_object(config_json: str) -> dict[str, Any]:
    """The `--config` JSON as a dict; a usage error (exit 2) naming the problem if it is not a JSON object."""
    try:
        config = json.loads(config_json)
    except ValueError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--config") from exc
    if not isinstance(config, dict):
        raise typer.BadParameter('expected a JSON object, like \'{"path": "data.csv"}\'', param_hint="--config")
    return config


def _parse_config(pairs: list[str], config_json: str | None) -> dict[str, Any]:
    config: dict[str, Any] = _config_object(config_json) if config_json else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        config[key] = value
    return config


_SHEET_URL = re.compile(r"/spreadsheets/d/([A-Za-z0-9_-]+)")


def spreadsheet_id(id_or_url: str) -> str:
    """A spreadsheet id, given itself or the sheet's address as the browser shows it (`.../spreadsheets/d/ID/edit`)."""
    found = _SHEET_URL.search(id_or_url)
    return found.group(1) if found else id_or_url


@sources_app.command("add")
def sources_add(
    kind: Annotated[str, typer.Argument(help="file, http_csv or http_json.")],
    path_or_url: Annotated[
        str | None,
        typer.Argument(help="The file path (file), URL (http_*) or spreadsheet id or URL (google_sheets)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name to show for the source.")] = None,
    key_column: Annotated[str | None, typer.Option(help="Align rows by this column (index or header).")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Seconds between reads.")] = None,
    config_json: Annotated[str | None, typer.Option("--config", help="The whole config as JSON.")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Config KEY=VALUE, repeatable.")] = [],  # noqa: B006
    server: ServerUrl = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """Register a data source and print it."""
    config = _parse_config(set_, config_json)
    if path_or_url is not None:
        if kind == "file":
            config["path"] = str(Path(path_or_url).resolve())
        elif kind == "google_sheets":
            config["spreadsheet_id"] = spreadsheet_id(path_or_url)
        else:
            config["url"] = path_or_url
    if key_column is not None:
        config["key_column"] = int(key_column) if key_column.isdigit() else key_column
    body: dict[str, Any] = {"kind": kind, "config": config}
    if name is not None:
        body["name"] = name
    if poll_interval_s is not None:
        body["poll_interval_s"] = poll_interval_s
    print_json(request("POST", server, "/v1/sources", json=body, api_key=api_key))


@sources_app.command("list")
def sources_list(server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None) -> None:
    """List data sources: id, kind, status, version, name."""
    cursor: str | None = None
    while True:
        params = {"cursor": cursor} if cursor else None
        page = request("GET", server, "/v1/sources", params=params, api_key=api_key)
        for item in page["items"]:
            status = item["status"]["state"]
            typer.echo(f"{item['id']}\t{item['kind']}\t{status}\tv{item['version']}\t{item.get('name') or ''}")
        cursor = page.get("next_cursor")
        if not cursor:
            return


@sources_app.command("show", context_settings=ID_ARGUMENT)
def sources_show(source: str, server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None) -> None:
    """Print one source."""
    print_json(request("GET", server, f"/v1/sources/{source}", api_key=api_key))


@sources_app.command("update", context_settings=ID_ARGUMENT)
def sources_update(
    source: str,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(help="Seconds between reads.")] = None,
    paused: Annotated[bool | None, typer.Option("--paused/--active", help="Stop or resume watching.")] = None,
    config_json: Annotated[str | None, typer.Option("--config", help="Replace the config with this JSON.")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    api_key: ApiKey = None,
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
        body["config"] = _config_object(config_json)
    if not body:
        raise typer.BadParameter("nothing to change: give --name, --poll-interval-s, --paused/--active or --config")
    print_json(request("PATCH", server, f"/v1/sources/{source}", json=body, api_key=api_key))


@sources_app.command("rm", context_settings=ID_ARGUMENT)
def sources_rm(source: str, server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None) -> None:
    """Delete a source with its history."""
    request("DELETE", server, f"/v1/sources/{source}", api_key=api_key)
    typer.echo(f"deleted {source}")


