"""Acceptance: `serve --tls-cert --tls-key` serves HTTPS and wss:// on its port and on `--ws-port`; bad TLS or key
settings stop the command with exit code 2 and a message saying what is wrong."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect

from tests.cli.harness import run_cli
from tests.e2e.harness import ServerProcess, free_port

pytestmark = pytest.mark.slow


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, signed by its own key; the paths of both PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TlsServer(ServerProcess):
    """`sheetstream serve` over TLS, checked against its self-signed certificate."""

    def __init__(self, workdir: Path, cert: Path, key: Path) -> None:
        self.ws_port = free_port()
        super().__init__(
            workdir,
            "--anonymous",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--ws-port",
            str(self.ws_port),
        )
        self.trust = ssl.create_default_context(cafile=str(cert))

    @property
    def http(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.http + "/readyz", verify=self.trust, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


async def subscribe(url: str, source: str, trust: ssl.SSLContext) -> list[str]:
    """Subscribe over wss:// and return the types of the first two messages (subscribed, snapshot)."""
    async with connect(url, ssl=trust, open_timeout=10) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "id": "s1", "source": source}).decode())
        return [orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] for _ in range(2)]


async def test_https_and_wss_on_the_rest_port_and_the_fast_listener(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    data = tmp_path / "people.csv"
    data.write_text("name,age\nada,36\n")
    server = TlsServer(tmp_path, cert, key)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http, verify=server.trust, timeout=10) as client:
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            created = await client.post("/v1/sources", json={"kind": "file", "config": {"path": str(data)}})
            assert created.status_code == 201, created.text
            source_id = created.json()["id"]

            async def read() -> bool:
                return bool((await client.get(f"/v1/sources/{source_id}")).json()["version"] >= 1)

            deadline = asyncio.get_running_loop().time() + 15
            while not await read():
                assert asyncio.get_running_loop().time() < deadline, "the source was never read"
                await asyncio.sleep(0.05)

        for url in (f"wss://127.0.0.1:{server.port}/v1/ws", f"wss://127.0.0.1:{server.ws_port}/v1/ws"):
            assert await subscribe(url, source_id, server.trust) == ["subscribed", "snapshot"], url
        # Plain HTTP is not answered on the TLS port.
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("serve", ["--tls-cert", "{cert}"], "--tls-cert needs --tls-key"),
        ("gateway", ["--tls-key", "{key}"], "--tls-key needs --tls-cert"),
        ("serve", ["--tls-cert", "{missing}", "--tls-key", "{key}"], "cannot read the --tls-cert file"),
        ("api", ["--tls-cert", "{key}", "--tls-key", "{key}"], "cannot use the TLS certificate"),
        ("serve", ["--secret-key", "n0t-a-fernet-key"], "not a Fernet key"),
        ("monitor", ["--secret-key-file", "{missing}"], "cannot read the secret key file"),
        ("serve", ["--jwt-secret", "n0t-a-fernet-key"], "an HS256 key needs at least 32"),
        ("gateway", ["--jwt-public-key", "{missing}"], "cannot read PEM file"),
        ("serve", ["--jwt-public-key", "{cert}"], "is not a PEM public key"),
    ],
)
def test_bad_tls_or_key_settings_exit_2_with_a_message_before_anything_starts(
    tmp_path: Path, command: str, args: list[str], expected: str
) -> None:
    cert, key = self_signed(tmp_path)
    paths = {"cert": str(cert), "key": str(key), "missing": str(tmp_path / "missing.pem")}
    argv = [arg.format(**paths) for arg in args]
    result = run_cli(command, "--store", "memory://", "--port", "0", *argv, cwd=tmp_path, timeout_s=30)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "n0t-a-fernet-key" not in result.stderr  # a key, even a malformed one, is never printed


def test_a_bad_token_key_is_refused_before_the_store_is_created(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    result = run_cli("serve", "--store", f"sqlite:///{db}", "--port", "0", "--jwt-secret", "short", cwd=tmp_path)
    assert result.returncode == 2 and "at least 32" in result.stderr, result.stderr
    assert not db.exists()
