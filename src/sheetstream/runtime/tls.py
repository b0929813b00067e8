"""TLS of `serve` and the role commands: `--tls-cert` and `--tls-key` turn HTTP into HTTPS and ws:// into wss://.

uvicorn loads the two PEM files itself (`ssl_certfile`, `ssl_keyfile`); the fast WebSocket listener (`--ws-port`)
gets the `SSLContext` made here. `server_ssl_context` is also the check run before anything starts: half a pair,
an unreadable file or a key that does not fit the certificate is a ConfigError saying which.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from sheetstream.errors import ConfigError


def _no_password() -> bytes:
    # Without this callback OpenSSL would prompt on the terminal for the password of an encrypted key.
    raise ConfigError("the TLS key (--tls-key) is encrypted with a password: give an unencrypted PEM key")


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext | None:
    """The server's SSLContext for the PEM files `cert` and `key`; None when neither is set; ConfigError if bad."""
    if not cert and not key:
        return None
    if not cert or not key:
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise ConfigError(
            f"{given} needs {missing} too: give both (SHEETSTREAM_TLS_CERT and SHEETSTREAM_TLS_KEY) or neither"
        )
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the {flag} file {path}: {exc.strerror}") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot use the TLS certificate {cert} with the key {key} ({exc.reason or exc}): both must be PEM, "
            "the certificate first in its file, and the key the certificate's own"
        ) from exc
    return context
