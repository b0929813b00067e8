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

    @property
    def retention(self) -> Retention:
        """The change-log retention policy."""
        return Retention(max_changes=self.retention_max_changes, max_age_s=self.retention_max_age_s)
