"""The `sheetstream` command line. Every option also reads a SHEETSTREAM_* environment variable; flags win.

One module per group of commands; importing it registers its commands on the root `app`.
"""

from __future__ import annotations

from sheetstream.cli import emulator, roles, serve, sources, watch  # noqa: F401  (registers the commands)
from sheetstream.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()
