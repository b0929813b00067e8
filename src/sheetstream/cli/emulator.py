"""`sheetstream emulator`: a local Google Sheets v4 + Drive v3 emulator (see docs/emulator.md)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from sheetstream.cli.app import app


@app.command()
def emulator(
    host: Annotated[
        str, typer.Option(envvar="SHEETSTREAM_EMULATOR_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SHEETSTREAM_EMULATOR_PORT", help="Port to listen on.")] = 8085,
    strict: Annotated[
        bool,
        typer.Option(
            envvar="SHEETSTREAM_EMULATOR_STRICT",
            help="Accept only tokens from the emulator's /token endpoint and configured API keys; check sharing.",
        ),
    ] = False,
    seed_file: Annotated[
        Path | None,
        typer.Option(
            envvar="SHEETSTREAM_EMULATOR_SEED_FILE", help="JSON or YAML file of spreadsheets, accounts, keys."
        ),
    ] = None,
    push_delay_s: Annotated[
        float,
        typer.Option(
            envvar="SHEETSTREAM_EMULATOR_PUSH_DELAY_S",
            min=0,
            help="Coalescing delay of Drive push notifications.",
        ),
    ] = 1.0,
) -> None:
    """Serve Google Sheets v4 and Drive v3 locally, under Google's own paths (any bearer token unless --strict)."""
    from sheetstream.emulator.app import create_emulator_app
    from sheetstream.emulator.seed import SeedError, load_seed, read_seed
    from sheetstream.emulator.server import serve
    from sheetstream.emulator.state import EmulatorState

    state = EmulatorState()
    created: list[str] = []
    if seed_file is not None:
        if not seed_file.exists():
            raise typer.BadParameter(f"{seed_file} does not exist", param_hint="--seed-file")
        try:
            created = load_seed(state, read_seed(seed_file), base_dir=seed_file.parent)
        except (SeedError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    base = f"http://{host}:{port}"
    typer.echo(f"Google emulator on {base} ({'strict' if strict else 'any bearer token accepted'})")
    for book_id in created:
        typer.echo(f"  spreadsheet {book_id}: {base}/v4/spreadsheets/{book_id}")
    with contextlib.suppress(KeyboardInterrupt):
        serve(create_emulator_app(state, strict=strict, push_delay_s=push_delay_s), host, port)
