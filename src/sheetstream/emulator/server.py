"""Running the emulator: in-process on a free port for tests (`run_emulator`), or in the foreground (`serve`).

```python
with run_emulator() as emu:          # emu.base_url == "http://127.0.0.1:<port>"
    emu.state.create_spreadsheet("Demo")
```
The server runs in a background thread with its own event loop, so synchronous clients (gspread,
google-api-python-client) and asyncio tests can both call it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette

from sheetstream.emulator.app import create_emulator_app
from sheetstream.emulator.guard import Emulator
from sheetstream.emulator.push import PushHub
from sheetstream.emulator.state import Clock, EmulatorState

START_TIMEOUT_S = 10.0


@dataclass
class RunningEmulator:
    """A running emulator: its base URL, state and app."""

    base_url: str
    app: Starlette

    @property
    def state(self) -> EmulatorState:
        """The state it serves (change it freely; take `state.lock` for multi-step changes)."""
        return self.emulator.state

    @property
    def emulator(self) -> Emulator:
        """The state, mode and push hub."""
        return self.app.state.emulator  # type: ignore[no-any-return]

    @property
    def hub(self) -> PushHub:
        """The push-notification hub (channels and deliveries)."""
        return self.emulator.hub

    @property
    def token_uri(self) -> str:
        """Where service-account credentials get their tokens."""
        return f"{self.base_url}/token"


@contextmanager
def run_asgi(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve any ASGI app in a background thread on `port` (0: a free one); yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:  # the port is taken: nothing was started, leave nothing open
        sock.close()
        raise
    bound_port = sock.getsockname()[1]
    # Long keep-alive: clients that pool connections (httplib2) must not find them closed between calls.
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", ws="none", access_log=False, timeout_keep_alive=300
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="asgi-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the server on {host}:{bound_port} did not start")
        time.sleep(0.005)  # polling with a deadline: uvicorn offers no start event
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=START_TIMEOUT_S)
        sock.close()


@contextmanager
def run_emulator(
    state: EmulatorState | None = None,
    *,
    strict: bool = False,
    clock: Clock | None = None,
    push_delay_s: float = 1.0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[RunningEmulator]:
    """Serve an emulator in a background thread on `port` (0: a free one); stop it on exit."""
    app = create_emulator_app(state, strict=strict, clock=clock, push_delay_s=push_delay_s)
    with run_asgi(app, host, port) as base_url:
        yield RunningEmulator(base_url, app)


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve in the foreground until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level="info", ws="none", timeout_keep_alive=300)
