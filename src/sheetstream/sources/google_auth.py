"""Credentials of a `google_sheets` source: who reads, which quota it spends, and the headers each request needs.

The `credentials` field of the source config is one of:

| value | means |
|---|---|
| absent or ``"adc"`` | Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, the metadata server) |
| ``{"service_account_file": "/path/key.json"}`` | a service-account key file |
| ``{"service_account_json": {...}}`` | the key file's content (an object or its JSON text) |
| ``{"api_key": "..."}`` | an API key: link-shared sheets only, spends the key's project quota |
| ``{"access_token": "..."}`` | a bearer token obtained elsewhere (never refreshed; for short jobs and the emulator) |
| ``"none"`` | no credentials: a link-shared sheet read through its CSV export (see docs/google.md for the limits) |

Tokens are refreshed by google-auth in a worker thread (its refresh is synchronous) over a small httpx-based
transport, so sheetstream needs neither `requests` nor `httplib2`. The API answers `credentials` nowhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from sheetstream.errors import ConfigError, SourceError

Mode = Literal["adc", "service_account", "api_key", "access_token", "none"]
READ_SCOPES = (
    "https://www.googleapis.com/auth/spreadsheets.readonly",
    "https://www.googleapis.com/auth/drive.readonly",
)
_TOKEN_TIMEOUT_S = 30.0


class HttpxRequest:
    """google-auth's transport interface (`google.auth.transport.Request`) over a synchronous httpx client."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(timeout=_TOKEN_TIMEOUT_S)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        """Send one request for google-auth; transport failures become google-auth's TransportError."""
        from google.auth import exceptions

        try:
            response = self.client.request(
                method, url, content=body, headers=headers, timeout=timeout or _TOKEN_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{method} {url}: {exc}") from exc  # type: ignore[no-untyped-call]
        return _Response(response.status_code, dict(response.headers), response.content)


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    data: bytes


def credentials_mode(value: Any) -> Mode:
    """Which kind of credentials a config's `credentials` value names; ConfigError for anything else."""
    if value is None or value == "adc":
        return "adc"
    if value == "none":
        return "none"
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "service_account_file" and isinstance(inner, str) and inner:
            return "service_account"
        if key == "service_account_json" and isinstance(inner, dict | str) and inner:
            return "service_account"
        if key == "api_key" and isinstance(inner, str) and inner:
            return "api_key"
        if key == "access_token" and isinstance(inner, str) and inner:
            return "access_token"
    raise ConfigError(
        'google_sheets source: "credentials" must be "adc", "none", or an object with one of '
        "service_account_file, service_account_json, api_key, access_token"
    )


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class GoogleAuth:
    """Request headers and query parameters for one source's credentials, and the quota they spend."""

    def __init__(self, value: Any, *, token_uri: str | None = None) -> None:
        self.mode: Mode = credentials_mode(value)
        self._value = value
        self._creds: Any = None
        self._lock = asyncio.Lock()
        self._transport: HttpxRequest | None = None
        self.identity = "anonymous"
        self.project = "public"
        if self.mode == "service_account":
            info = self._service_account_info()
            if token_uri:
                info = {**info, "token_uri": token_uri}
            from google.oauth2 import service_account

            try:
                self._creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    info, scopes=list(READ_SCOPES)
                )
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"google_sheets source: not a usable service-account key: {exc}") from exc
            self.identity = str(info.get("client_email", "service-account"))
            self.project = str(info.get("project_id") or self.identity.partition("@")[2] or "default")
        elif self.mode == "api_key":
            self.identity = self.project = f"api-key:{_short_hash(value['api_key'])}"
        elif self.mode == "access_token":
            self.identity = f"token:{_short_hash(value['access_token'])}"
            self.project = "default"
        elif self.mode == "adc":
            self.identity, self.project = "adc", "default"

    def _service_account_info(self) -> dict[str, Any]:
        if "service_account_file" in self._value:
            path = self._value["service_account_file"]
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except OSError as exc:
                raise ConfigError(f"google_sheets source: cannot read service-account file {path}: {exc}") from exc
            except ValueError as exc:
                raise ConfigError(f"google_sheets source: {path} is not JSON: {exc}") from exc
        else:
            data = self._value["service_account_json"]
            if isinstance(data, str):
                try:
                    data = json.loads(data)
                except ValueError as exc:
                    raise ConfigError(f"google_sheets source: service_account_json is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("type", "service_account") != "service_account":
            raise ConfigError("google_sheets source: the service-account key must be a service_account JSON object")
        return {k: v for k, v in data.items() if k != "public_key_pem"}

    @property
    def uses_api(self) -> bool:
        """Whether the Sheets and Drive APIs can be called (every mode but "none")."""
        return self.mode != "none"

    @property
    def can_use_drive(self) -> bool:
        """Whether Drive calls (version checks, changes, push channels) are possible: OAuth credentials only."""
        return self.mode in ("adc", "service_account", "access_token")

    def params(self) -> dict[str, str]:
        """Query parameters every request carries (the API key)."""
        return {"key": self._value["api_key"]} if self.mode == "api_key" else {}

    async def headers(self) -> dict[str, str]:
        """Authorization headers, refreshing the access token first when it is missing or about to expire."""
        if self.mode == "access_token":
            return {"Authorization": f"Bearer {self._value['access_token']}"}
        if self.mode not in ("adc", "service_account"):
            return {}
        async with self._lock:
            if self._creds is None:
                await asyncio.to_thread(self._load_adc)
            if not self._creds.valid:
                await self._refresh()
            token = self._creds.token
        return {"Authorization": f"Bearer {token}"}

    async def invalidate(self) -> None:
        """Forget the current token (after a 401): the next `headers()` gets a new one."""
        async with self._lock:
            if self._creds is not None and getattr(self._creds, "token", None):
                self._creds.token = None

    def _load_adc(self) -> None:
        import google.auth
        from google.auth import exceptions

        try:
            creds, _project = google.auth.default(scopes=list(READ_SCOPES))
        except exceptions.DefaultCredentialsError as exc:
            raise SourceError(
                "no Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account "
                'key file, give the source "credentials", or use "credentials": "none" for a link-shared sheet',
                retryable=False,
            ) from exc
        # The quota key stays "adc": it was handed to the scheduler before the credentials were found.
        self._creds = creds

    async def _refresh(self) -> None:
        from google.auth import exceptions

        if self._transport is None:
            self._transport = HttpxRequest()
        try:
            await asyncio.to_thread(self._creds.refresh, self._transport)
        except exceptions.RefreshError as exc:
            raise SourceError(
                f"Google refused the credentials of {self.identity}: {exc} (check the key, or that it was not deleted)"
            ) from exc
        except exceptions.TransportError as exc:
            raise SourceError(f"cannot reach Google's token endpoint: {exc}") from exc

    async def aclose(self) -> None:
        """Close the token transport."""
        if self._transport is not None:
            await asyncio.to_thread(self._transport.client.close)
