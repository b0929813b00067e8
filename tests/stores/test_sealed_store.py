"""SealedStore: what SQLite and PostgreSQL keep holds no secret, readers get them back, a wrong key fails one source.

Also where the key comes from (`resolve_secret_box`): the setting, a key file, a key file made beside a SQLite
database, a random key for memory://, and none for PostgreSQL, which then refuses configs with secrets.
"""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from sheetstream.auth.secretbox import SEALED, SecretBox
from sheetstream.buses.memory import MemoryBus
from sheetstream.errors import ConfigError, SecretKeyRequired
from sheetstream.runtime.monitor import Monitor
from sheetstream.stores.base import NewSource, Retention, Store
from sheetstream.stores.memory import MemoryStore
from sheetstream.stores.postgres_schema import parse_url
from sheetstream.stores.registry import open_store
from sheetstream.stores.sealed import SealedStore, open_sealed_store, resolve_secret_box
from tests.contracts.conftest import require_service
from tests.stores.postgres_schemas import POSTGRES_DEFAULT, POSTGRES_ENV, drop_test_schema, fresh_schema_url

T0 = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
KEY = Fernet.generate_key().decode()
HEADER_SECRET = "Bearer first-s3cr3t-t0ken"
HEADER_SECRET_2 = "Bearer second-s3cr3t-t0ken"
CREDENTIAL_SECRET = "ya29.first-access-t0ken"
CREDENTIAL_SECRET_2 = "ya29.second-access-t0ken"
SECRETS = (HEADER_SECRET, HEADER_SECRET_2, CREDENTIAL_SECRET, CREDENTIAL_SECRET_2)
HTTP_CONFIG = {"url": "http://127.0.0.1:9/data.csv", "headers": {"Authorization": HEADER_SECRET}}
SHEET_CONFIG = {"spreadsheet_id": "abc123", "credentials": {"access_token": CREDENTIAL_SECRET}}


# -- what is at rest --------------------------------------------------------------------------------------------


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def postgres_url(_tmp_path: Path) -> str:
    return fresh_schema_url(require_service(POSTGRES_ENV, POSTGRES_DEFAULT), max_size=2)


def sqlite_raw(tmp_path: Path, *, files: bool) -> str:
    """The stored configs as SQLite has them, and with `files` the bytes of the database and its log too."""
    with sqlite3.connect(tmp_path / "store.db") as conn:
        rows = conn.execute("SELECT config FROM sources").fetchall()
    text = "\n".join(bytes(row[0]).decode() if not isinstance(row[0], str) else row[0] for row in rows)
    if files:  # a value must not be anywhere in the database or its write-ahead log
        text += b"".join(path.read_bytes() for path in tmp_path.glob("store.db*")).decode("latin-1")
    return text


async def raw_configs(url: str, tmp_path: Path, *, files: bool = True) -> str:
    """The stored configs as the database itself has them (for SQLite also the bytes of its files)."""
    if url.startswith("sqlite"):
        return sqlite_raw(tmp_path, files=files)
    parsed = parse_url(url)
    conn = await asyncpg.connect(parsed.dsn)
    try:
        rows = await conn.fetch(f"SELECT config FROM {parsed.schema}.sources")
    finally:
        await conn.close()
    return "\n".join(row["config"] for row in rows)


@pytest.fixture(params=[pytest.param(sqlite_url, id="sqlite"), pytest.param(postgres_url, id="postgres")])
async def at_rest(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, SealedStore]]:
    url = request.param(tmp_path)
    store = SealedStore(open_store(url), SecretBox.from_text(KEY))
    await store.open()
    try:
        yield url, store
    finally:
        await store.close()
        await drop_test_schema(url)


async def test_the_database_holds_no_secret_after_create_and_update(
    at_rest: tuple[str, SealedStore], tmp_path: Path
) -> None:
    url, store = at_rest
    http = await store.create_source(NewSource(kind="http_csv", config=HTTP_CONFIG), now=T0)
    sheet = await store.create_source(NewSource(kind="google_sheets", config=SHEET_CONFIG), now=T0)
    assert http.config == HTTP_CONFIG and sheet.config == SHEET_CONFIG  # the caller gets what it wrote
    raw = await raw_configs(url, tmp_path)
    assert SEALED in raw and "127.0.0.1:9/data.csv" in raw and "abc123" in raw  # the rest stays readable
    for secret in SECRETS:
        assert secret not in raw

    new_http = {**HTTP_CONFIG, "headers": {"Authorization": HEADER_SECRET_2}}
    new_sheet = {**SHEET_CONFIG, "credentials": {"access_token": CREDENTIAL_SECRET_2}}
    assert (await store.update_source(http.id, {"config": new_http}, now=T0)).config == new_http
    assert (
        await store.update_source(sheet.id, {"config": new_sheet, "name": "n"}, now=T0)
    ).config == new_sheet
    raw = await raw_configs(url, tmp_path)
    for secret in SECRETS:
        assert secret not in raw

    # What the monitor and the API read: the plaintext.
    assert (await store.get_source(http.id)).config == new_http
    listed, _ = await store.list_sources()
    assert {r.id: r.config for r in listed} == {http.id: new_http, sheet.id: new_sheet}
    assert (await store.reset_history(sheet.id, now=T0)).config == new_sheet


async def test_a_config_stored_in_plain_text_is_read_and_sealed_at_its_next_write(
    at_rest: tuple[str, SealedStore], tmp_path: Path
) -> None:
    url, store = at_rest
    legacy = await store.inner.create_source(NewSource(kind="http_csv", config=HTTP_CONFIG), now=T0)
    assert HEADER_SECRET in await raw_configs(url, tmp_path, files=False)  # as a store before sealing kept it
    assert (await store.get_source(legacy.id)).config == HTTP_CONFIG
    await store.update_source(legacy.id, {"config": HTTP_CONFIG}, now=T0)
    assert HEADER_SECRET not in await raw_configs(url, tmp_path, files=False)
    assert (await store.inner.get_source(legacy.id)).config["headers"]["Authorization"].keys() == {SEALED}
    assert (await store.get_source(legacy.id)).config == HTTP_CONFIG


# -- a wrong key ------------------------------------------------------------------------------------------------


async def test_a_wrong_key_marks_that_source_failed_and_the_others_still_work() -> None:
    inner = MemoryStore()
    right = SealedStore(inner, SecretBox.from_text(KEY))
    secret = await right.create_source(NewSource(kind="http_csv", config=HTTP_CONFIG, name="secret"), now=T0)
    plain = await right.create_source(
        NewSource(kind="file", config={"path": "/tmp/x.csv"}, name="plain"), now=T0
    )
    token = (await inner.get_source(secret.id)).config["headers"]["Authorization"][SEALED]

    wrong = SealedStore(inner, SecretBox.generate())
    with capture_logs() as logs:
        record = await wrong.get_source(secret.id)
        listed, _ = await wrong.list_sources()
    assert record.status.state == "error"
    assert record.status.message is not None and secret.id in record.status.message
    assert "SHEETSTREAM_SECRET_KEY" in record.status.message
    assert {r.id for r in listed} == {secret.id, plain.id}  # the list still answers
    assert next(r for r in listed if r.id == plain.id).status.state == "pending"
    assert (await wrong.get_source(plain.id)).config == {"path": "/tmp/x.csv"}
    shown = repr(record.status) + repr(logs)
    assert HEADER_SECRET not in shown and token[:40] not in shown and token[-20:] not in shown
    assert [entry["event"] for entry in logs] == ["source credentials unreadable"]  # once, not per read


async def test_the_monitor_does_not_read_a_source_it_cannot_decrypt_and_keeps_watching_the_rest(
    tmp_path: Path,
) -> None:
    data = tmp_path / "good.csv"
    data.write_text("a,b\n1,2\n")
    inner = MemoryStore()
    right = SealedStore(inner, SecretBox.from_text(KEY))
    secret = await right.create_source(NewSource(kind="http_csv", config=HTTP_CONFIG), now=T0)
    good = await right.create_source(NewSource(kind="file", config={"path": str(data)}), now=T0)

    wrong = SealedStore(inner, SecretBox.generate())
    monitor = Monitor(wrong, MemoryBus(), retention=Retention())
    await monitor.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while (await inner.get_source(good.id)).version < 1 or (
            await inner.get_source(secret.id)
        ).status.state != "error":
            assert asyncio.get_running_loop().time() < deadline, "the monitor did not settle"
            await asyncio.sleep(0.01)
    finally:
        await monitor.stop()
    status = (await inner.get_source(secret.id)).status
    # Refused before any request: not "cannot connect to 127.0.0.1:9", which a read with the sealed header would say.
    assert status.message is not None and "could not be decrypted" in status.message
    assert (await inner.get_source(good.id)).status.state == "ok"


# -- no key: PostgreSQL refuses secrets -------------------------------------------------------------------------


@pytest.fixture
async def keyless_postgres() -> AsyncIterator[Store]:
    url = postgres_url(Path())
    store = open_sealed_store(url)  # neither secret_key nor secret_key_file
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_test_schema(url)


async def test_postgres_without_a_key_refuses_secrets_and_stores_the_rest(keyless_postgres: Store) -> None:
    store = keyless_postgres
    with pytest.raises(SecretKeyRequired, match="SHEETSTREAM_SECRET_KEY"):
        await store.create_source(NewSource(kind="http_csv", config=HTTP_CONFIG), now=T0)
    with pytest.raises(SecretKeyRequired):
        await store.create_source(NewSource(kind="google_sheets", config=SHEET_CONFIG), now=T0)
    public = {"spreadsheet_id": "abc123", "credentials": "none"}
    sheet = await store.create_source(NewSource(kind="google_sheets", config=public), now=T0)
    plain = await store.create_source(NewSource(kind="http_csv", config={"url": "http://x/y.csv"}), now=T0)
    assert (await store.get_source(sheet.id)).config == public
    with pytest.raises(SecretKeyRequired):
        await store.update_source(plain.id, {"config": HTTP_CONFIG}, now=T0)
    assert (await store.get_source(plain.id)).config == {"url": "http://x/y.csv"}
    assert len((await store.list_sources())[0]) == 2


# -- where the key comes from -----------------------------------------------------------------------------------


def roundtrips(first: SecretBox | None, second: SecretBox | None) -> bool:
    """Whether `second` unseals what `first` sealed."""
    assert first is not None and second is not None
    try:
        return second.unseal(first.seal(HTTP_CONFIG), source_id="s") == HTTP_CONFIG
    except Exception:
        return False


def test_a_sqlite_store_gets_a_key_file_made_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    with capture_logs() as logs:
        first = resolve_secret_box(url)
        second = resolve_secret_box(url)  # a restart
    key_file = tmp_path / "data.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert roundtrips(first, second)
    key = key_file.read_text().strip()
    assert [entry["path"] for entry in logs] == [str(key_file)]  # logged once, with the path only
    assert key not in repr(logs)
    assert [p.name for p in tmp_path.iterdir()] == ["data.db.key"]  # no temporary file left behind


def test_the_setting_wins_over_the_file_and_the_file_over_the_key_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    key_file = tmp_path / "secret.key"
    other = Fernet.generate_key().decode()
    key_file.write_text(f"{other}\n{KEY}\n")  # a new key first, the old one after it
    from_setting = resolve_secret_box(url, secret_key=KEY, secret_key_file=str(key_file))
    from_file = resolve_secret_box(url, secret_key_file=str(key_file))
    assert roundtrips(from_setting, SecretBox.from_text(KEY))
    assert roundtrips(from_file, SecretBox.from_text(other))
    assert roundtrips(SecretBox.from_text(KEY), from_file)  # the old key still decrypts
    assert not (tmp_path / "data.db.key").exists()


def test_memory_gets_a_random_key_and_postgres_none() -> None:
    assert not roundtrips(resolve_secret_box("memory://"), resolve_secret_box("memory://"))
    assert resolve_secret_box("sqlite:///:memory:") is not None
    assert resolve_secret_box("postgresql://127.0.0.1/test") is None


def test_unreadable_or_malformed_keys_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the secret key file"):
        resolve_secret_box("memory://", secret_key_file=str(tmp_path / "missing.key"))
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a Fernet key"):
        resolve_secret_box("memory://", secret_key_file=str(bad))
    with pytest.raises(ConfigError, match="SHEETSTREAM_SECRET_KEY"):
        resolve_secret_box("postgresql://127.0.0.1/test", secret_key="nope")
    with pytest.raises(ConfigError, match="cannot create the secret key file"):
        resolve_secret_box(f"sqlite:///{tmp_path / 'no-such-dir' / 'data.db'}")
