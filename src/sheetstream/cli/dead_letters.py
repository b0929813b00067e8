"""`sheetstream dead-letters list|show|replay|rm`: the change sets and hints that kept failing, over the REST API."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from sheetstream.cli.app import DEFAULT_SERVER, ApiKey, ServerUrl, app, print_json, request

dead_letters_app = typer.Typer(
    help="Change sets and hints that kept failing: list, show, replay or delete them.", no_args_is_help=True
)
app.add_typer(dead_letters_app, name="dead-letters")

LetterId = Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id (from `list`).")]
_ERROR_CHARS = 100


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _ERROR_CHARS else line[: _ERROR_CHARS - 1] + "…"


@dead_letters_app.command("list")
def dead_letters_list(
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many (default: all).")] = None,
    server: ServerUrl = DEFAULT_SERVER,
    api_key: ApiKey = None,
) -> None:
    """List dead letters, newest first: id, kind, source, attempts, last failure, error."""
    shown = 0
    cursor: str | None = None
    while limit is None or shown < limit:
        params: dict[str, str | int] = {"limit": min(limit - shown, 1000) if limit is not None else 1000}
        if cursor:
            params["cursor"] = cursor
        page = request("GET", server, "/v1/dead-letters", params=params, api_key=api_key)
        for item in page["items"]:
            typer.echo(
                f"{item['id']}\t{item['kind']}\t{item.get('source') or '-'}\t{item['attempts']}\t"
                f"{item['last_failed_at']}\t{_one_line(item['error'])}"
            )
            shown += 1
        cursor = page.get("next_cursor")
        if not cursor:
            return


@dead_letters_app.command("show")
def dead_letters_show(
    letter_id: LetterId, server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None
) -> None:
    """Print one dead letter with its payload."""
    print_json(request("GET", server, f"/v1/dead-letters/{quote(letter_id, safe='')}", api_key=api_key))


@dead_letters_app.command("replay")
def dead_letters_replay(
    letter_id: LetterId, server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None
) -> None:
    """Handle a dead letter again; it is deleted if that works (exit 1 with the error if it fails again)."""
    request("POST", server, f"/v1/dead-letters/{quote(letter_id, safe='')}/replay", api_key=api_key)
    typer.echo(f"replayed {letter_id}")


@dead_letters_app.command("rm")
def dead_letters_rm(letter_id: LetterId, server: ServerUrl = DEFAULT_SERVER, api_key: ApiKey = None) -> None:
    """Delete a dead letter without handling it again."""
    request("DELETE", server, f"/v1/dead-letters/{quote(letter_id, safe='')}", api_key=api_key)
    typer.echo(f"deleted {letter_id}")
