"""The `sheetstream` command line. Every option also reads a SHEETSTREAM_* environment variable; flags win.

One module per group of commands; importing it registers its commands on the root `app`.
"""

from __future__ import annotations

from sheetstream.cli import (  # noqa: F401  (registers the commands)
    dead_letters,
    emulator,
    keys,
    roles,
    serve,
    sources,
    token,
    watch,
)
from sheetstream.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()
