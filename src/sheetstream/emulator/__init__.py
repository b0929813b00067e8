"""A local emulator of the Google Sheets v4 and Drive v3 REST APIs (and Google's OAuth2 token endpoint).

See docs/emulator.md. `create_emulator_app` builds the ASGI app; `run_emulator` serves it in-process.
"""

from __future__ import annotations

from sheetstream.emulator.app import create_emulator_app
from sheetstream.emulator.server import RunningEmulator, run_emulator
from sheetstream.emulator.state import EmulatorState

__all__ = ["EmulatorState", "RunningEmulator", "create_emulator_app", "run_emulator"]
