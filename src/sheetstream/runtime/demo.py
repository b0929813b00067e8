"""The Google demo of `sheetstream serve --demo`: a local emulator with a sample spreadsheet, watched as "demo-sheet".

It starts only when no Google credentials are configured (no `GOOGLE_APPLICATION_CREDENTIALS`, no gcloud
Application Default Credentials file): then the emulator runs in this process on 127.0.0.1:8085 (or any free
port if that one is taken), holds the spreadsheet `demo-sheet`, and the source "demo-sheet" reads it like any
Google spreadsheet. Edit it with curl, gspread or google-api-python-client (see docs/google.md) and watch the
browser. The emulator accepts any bearer token in this mode; it forgets its content when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any

import structlog

from sheetstream.runtime.services import Services
from sheetstream.stores.base import NewSource

log = structlog.get_logger("sheetstream.demo")

DEMO_SHEET_NAME = "demo-sheet"
SPREADSHEET_ID = "demo-sheet"
EMULATOR_PORT = 8085
SEED: dict[str, Any] = {
    "spreadsheets": [
        {
            "id": SPREADSHEET_ID,
            "title": "People",
            "sheets": [
                {
                    "title": "People",
                    "sheetId": 0,
                    "rows": [
                        ["name", "team", "score"],
                        ["Ada", "engines", "36"],
                        ["Grace", "compilers", "41"],
                        ["Linus", "kernels", "29"],
                    ],
                },
                {"title": "Notes", "sheetId": 1, "rows": [["note"], ["edit me"]]},
            ],
        }
    ]
}


def google_credentials_configured(env: dict[str, str] | None = None, home: Path | None = None) -> bool:
    """Whether Application Default Credentials are set up (then the demo stays off Google's emulator)."""
    env = dict(os.environ) if env is None else env
    if env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        return True
    config_dir = Path(env["CLOUDSDK_CONFIG"]) if env.get("CLOUDSDK_CONFIG") else (home or Path.home()) / ".config/gcloud"
    return (config_dir / "application_default_credentials.json").exists()


def _start_emulator(stack: contextlib.AsyncExitStack) -> Any:
    from sheetstream.emulator import run_emulator
    from sheetstream.emulator.seed import load_seed

    emulator = stack.enter_context(run_emulator(port=EMULATOR_PORT if _port_free(EMULATOR_PORT) else 0))
    load_seed(emulator.state, SEED)
    return emulator


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def start_google_demo(stack: contextlib.AsyncExitStack, services: Services) -> str | None:
    """Start the emulator and register the "demo-sheet" source (when no Google credentials are configured)."""
    if google_credentials_configured():
        log.info("Google credentials found: the Google demo (local emulator) is not started")
        return None
    emulator = _start_emulator(stack)
    config = {
        "spreadsheet_id": SPREADSHEET_ID,
        "base_url": emulator.base_url,
        "credentials": {"access_token": "demo"},
        "min_interval_s": 0.5,
    }
    from sheetstream.runtime.monitor import utc_now

    existing = None
    cursor: str | None = None
    while existing is None:
        records, cursor = await services.store.list_sources(limit=500, cursor=cursor)
        existing = next((r for r in records if r.name == DEMO_SHEET_NAME), None)
        if cursor is None:
            break
    if existing is None:
        record = await services.store.create_source(
            NewSource(kind="google_sheets", config=config, name=DEMO_SHEET_NAME, poll_interval_s=2.0), now=utc_now()
        )
    else:  # the emulator may be on another port than last time
        record = await services.store.update_source(existing.id, {"config": config}, now=utc_now())
    log.info("Google demo", emulator=emulator.base_url, spreadsheet=SPREADSHEET_ID, source=record.id)
    return record.id
