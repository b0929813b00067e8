"""Settings of a sheetstream process. Each has a CLI flag and a SHEETSTREAM_* environment variable (flags win)."""

from __future__ import annotations

from dataclasses import dataclass

from sheetstream.stores.base import Retention


@dataclass(frozen=True)
class Settings:
    """Every knob of `sheetstream serve`; defaults are the embedded mode."""

    host: str = "127.0.0.1"
    port: int = 8000
    store: str = "sqlite:///sheetstream.db"
    bus: str = "memory://"
    retention_max_changes: int = 10_000
    retention_max_age_s: float = 7 * 24 * 3600.0
    max_frame_bytes: int = 64 * 1024
    """Largest client->server WebSocket message accepted; larger ones close the connection with 1009."""
    send_queue_size: int = 1024
    """Outgoing messages queued per connection before it is closed as a slow consumer (4008)."""
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    default_poll_interval_s: float = 5.0
    backoff_max_s: float = 60.0
    demo: bool = False
    log_level: str = "info"
    ws_port: int | None = None
    """Port of the fast WebSocket listener (picows, `/v1/ws`, beside the ASGI app's); None: not started."""

    google_reads_per_min: int = 60
    """Sheets read requests per minute allowed to each Google identity (the scheduler uses `google_target` of it)."""
    google_project_reads_per_min: int = 300
    """Sheets read requests per minute allowed to each Google Cloud project."""
    google_target: float = 0.8
    """Share of the Google quotas the scheduler may use."""
    google_changes_interval_s: float = 5.0
    """Seconds between Drive `changes.list` calls per identity (0: off)."""
    google_idle_max_s: float = 300.0
    """Longest interval between reads of a Google source that shows no change."""
    public_url: str = ""
    """This server's public HTTPS base URL: when set, Drive push channels post to `<public_url>/v1/hooks/drive`."""
    hook_secret: str = ""
    """Signs Drive channel tokens; every process of one deployment needs the same one."""
    apps_script_secret: str = ""
    """Shared secret of `POST /v1/hooks/apps-script` (the hook is off while empty)."""

    @property
    def retention(self) -> Retention:
        """The change-log retention policy."""
        return Retention(max_changes=self.retention_max_changes, max_age_s=self.retention_max_age_s)
