"""Pointing Google's own clients at the emulator, and making service-account keys it accepts.

gspread builds its URLs from constants (`https://sheets.googleapis.com/...`, `https://www.googleapis.com/...`); a
requests transport adapter mounted on those prefixes sends the same requests to the emulator, so gspread itself
stays unmodified. google-api-python-client takes the base URL through `client_options={"api_endpoint": ...}`.
gspread and google-api-python-client are development dependencies: they are imported only when used.
"""

from __future__ import annotations

import json
from typing import Any

from sheetstream.emulator.state import EmulatorState

GOOGLE_PREFIXES = (
    "https://sheets.googleapis.com/",
    "https://www.googleapis.com/",
    "https://docs.google.com/",
)
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive")


def service_account_info(
    email: str, base_url: str, state: EmulatorState | None = None, *, key_size: int = 2048
) -> dict[str, str]:
    """A service-account JSON (fresh RSA key) whose token_uri is the emulator; registered in `state` when given."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    if state is not None:
        with state.lock:
            state.service_accounts[email] = public_pem
    return {
        "type": "service_account",
        "project_id": "emulator",
        "private_key_id": "emulator-key-1",
        "private_key": private_pem,
        "client_email": email,
        "client_id": "100000000000000000000",
        "token_uri": f"{base_url.rstrip('/')}/token",
        "public_key_pem": public_pem,
    }


def credentials(info: dict[str, str], scopes: tuple[str, ...] = DEFAULT_SCOPES) -> Any:
    """google.oauth2 service-account Credentials from `service_account_info`."""
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        {k: v for k, v in info.items() if k != "public_key_pem"}, scopes=list(scopes)
    )


def redirecting_adapter(base_url: str) -> Any:
    """A requests transport adapter that sends requests for Google's hosts to `base_url` instead."""
    from requests.adapters import HTTPAdapter

    base = base_url.rstrip("/") + "/"

    class EmulatorAdapter(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            for prefix in GOOGLE_PREFIXES:
                if request.url.startswith(prefix):
                    request.url = base + request.url[len(prefix) :]
                    break
            return super().send(request, *args, **kwargs)

    return EmulatorAdapter()


def gspread_client(base_url: str, creds: Any) -> Any:
    """An unmodified gspread Client whose requests go to the emulator."""
    import gspread
    from google.auth.transport.requests import AuthorizedSession

    session = AuthorizedSession(creds)  # type: ignore[no-untyped-call]
    adapter = redirecting_adapter(base_url)
    for prefix in GOOGLE_PREFIXES:
        session.mount(prefix, adapter)
    return gspread.Client(auth=None, session=session)  # type: ignore[arg-type]


def discovery_service(name: str, base_url: str, creds: Any) -> Any:
    """A google-api-python-client service ("sheets" or "drive") built from the bundled discovery document."""
    from importlib import resources

    from googleapiclient import discovery

    version = {"sheets": "v4", "drive": "v3"}[name]
    document = (
        resources.files("googleapiclient") / "discovery_cache" / "documents" / f"{name}.{version}.json"
    ).read_text()
    path = {"sheets": "/", "drive": "/drive/v3/"}[name]
    return discovery.build_from_document(
        json.loads(document),
        credentials=creds,
        client_options={"api_endpoint": base_url.rstrip("/") + path},
    )
