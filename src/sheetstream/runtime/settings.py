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
    ws_deflate: bool = False
    """Let the fast listener's clients negotiate permessage-deflate: each message is compressed once for all."""

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

    # -- security (docs/security.md) --
    anonymous: bool = False
    """Accept WebSocket connections and REST calls without credentials (every source, read and write): demos only."""
    jwt_secret: str = ""
    """HS256 key of WebSocket connection tokens."""
    jwt_public_key: str = ""
    """RS256 public key of connection tokens: PEM text or the path of a PEM file."""
    jwt_jwks_url: str = ""
    """JWKS URL whose keys (chosen by the token's `kid`) verify RS256 connection tokens."""
    jwt_audience: str = ""
    """Required `aud` claim of connection tokens (not checked while empty)."""
    jwt_issuer: str = ""
    """Required `iss` claim of connection tokens (not checked while empty)."""
    token_grace_s: float = 30.0
    """Seconds a connection whose token expired has to send a fresh one before it is closed with 4001."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to open WebSockets (`*`: any); empty: same host as the server, or no Origin at all."""
    secret_key: str = ""
    """Fernet key(s) encrypting source credentials at rest, comma-separated: the first encrypts, all decrypt."""
    secret_key_file: str = ""
    """File holding the key that encrypts source credentials at rest."""
    tls_cert: str = ""
    """PEM certificate chain: serve HTTPS and WSS (with `tls_key`)."""
    tls_key: str = ""
    """PEM private key of `tls_cert`."""

    # -- limits (docs/security.md) --
    max_subscriptions: int = 100
    """Subscriptions per WebSocket connection (more: error `too_many_subscriptions`)."""
    max_messages_per_s: float = 50.0
    """Client messages per second per connection, on average (more: close 4029); 0: no limit."""
    max_messages_burst: int = 100
    """Client messages a connection may send at once above the average rate."""
    connections_per_ip_per_min: int = 600
    """New WebSocket connections per minute from one IP address (more: close 4029); 0: no limit."""
    rest_requests_per_min: int = 600
    """REST requests per minute per API key, or per IP address without one (more: 429); 0: no limit."""

    # -- dead letters --
    max_deliveries: int = 5
    """Tries of a change set or hint before it is set aside as a dead letter."""

    @property
    def retention(self) -> Retention:
        """The change-log retention policy."""
        return Retention(max_changes=self.retention_max_changes, max_age_s=self.retention_max_age_s)
