"""The embedded SQLite key file: never silently replaced while secrets depend on it.

A missing (or swapped) ``<database>.keys`` beside a database whose webhook secrets are
encrypted is refused at startup with what is missing and how to fix it; only a database with
no encrypted secret gets a new key.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import text

from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    SecretBox,
    SecretUnreadable,
    SettingsError,
    SqlConfigStore,
    StoreError,
)
from vizochok_dispatch._cli import main
from vizochok_dispatch.admin import create_admin_app

from .support import KEY_2, absent

PRODUCTS_URL = "https://shop.example/products"
CART_URL = "https://shop.example/cart"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "vizochok.db"


def _url(database: Path) -> str:
    return f"sqlite+aiosqlite:///{database}"


def _keys(database: Path) -> Path:
    return database.with_name(database.name + ".keys")


async def _saved_with_key_file(database: Path) -> str:
    """A database holding one tenant's encrypted secret, its key in the key file."""
    store = SqlConfigStore(_url(database))
    try:
        saved = await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL)
    finally:
        await store.close()
    assert _keys(database).is_file()
    return saved.secret


async def _raw_secret(database: Path) -> str:
    store = SqlConfigStore(_url(database), secret_box=SecretBox.from_keyring(KEY_2))
    try:
        async with store.engine.connect() as conn:
            value = (await conn.execute(text("SELECT secret FROM webhook_configs"))).scalar_one()
    finally:
        await store.close()
    return str(value)


async def test_a_missing_key_file_is_refused_not_replaced(database: Path) -> None:
    """Key file: gone while secrets are encrypted, the store refuses to open and makes none."""
    await _saved_with_key_file(database)
    key_id = (await _raw_secret(database)).split(".")[1]
    _keys(database).unlink()
    store = SqlConfigStore(_url(database))
    try:
        with pytest.raises(SecretUnreadable) as caught:
            await store.open()
    finally:
        await store.close()
    message = str(caught.value)
    assert str(_keys(database)) in message and "is missing" in message
    assert key_id in message and "VIZOCHOK_SECRET_KEYS" in message and "Restore" in message
    assert not _keys(database).exists(), "a new key file was created"


async def test_restoring_the_key_file_makes_the_secrets_readable_again(database: Path) -> None:
    """Key file: put back from a backup, the same secrets read again."""
    secret = await _saved_with_key_file(database)
    backup = database.with_name("backup.keys")
    shutil.move(_keys(database), backup)
    refused = SqlConfigStore(_url(database))
    with pytest.raises(SecretUnreadable):
        await refused.open()
    await refused.close()
    shutil.move(backup, _keys(database))
    store = SqlConfigStore(_url(database))
    try:
        config = await store.get_config("t1")
    finally:
        await store.close()
    assert config is not None and config.secret == secret


async def test_the_key_line_in_the_setting_replaces_a_lost_file(database: Path) -> None:
    """Key file: the advice works: VIZOCHOK_SECRET_KEYS=<the file's line> reads the secrets."""
    secret = await _saved_with_key_file(database)
    line = next(
        entry for entry in _keys(database).read_text().splitlines() if not entry.startswith("#")
    )
    _keys(database).unlink()
    settings = DispatchSettings(database_url=_url(database), secret_keys=SecretStr(line))
    async with Dispatcher.from_settings(settings) as dispatcher:
        config = await dispatcher.store.get_config("t1")
    assert config is not None and config.secret == secret


async def test_a_key_file_with_other_keys_is_refused(database: Path) -> None:
    """Key file: swapped for one whose keys decrypt none of the secrets, it is refused."""
    await _saved_with_key_file(database)
    stored_id = (await _raw_secret(database)).split(".")[1]
    _keys(database).write_text(KEY_2 + "\n")
    _keys(database).chmod(0o600)
    store = SqlConfigStore(_url(database))
    try:
        with pytest.raises(SecretUnreadable) as caught:
            await store.open()
    finally:
        await store.close()
    assert stored_id in str(caught.value) and "holds only k2" in str(caught.value)
    assert absent(KEY_2.split(":")[1], caught.value)


async def test_without_encrypted_secrets_a_new_key_is_still_made(database: Path) -> None:
    """Key file: a database whose secrets are all plaintext (older rows) gets a key file."""
    secret = await _saved_with_key_file(database)
    store = SqlConfigStore(_url(database))
    async with store.engine.begin() as conn:  # as a release before encryption wrote it
        await conn.execute(text("UPDATE webhook_configs SET secret = :s"), {"s": secret})
    await store.close()
    _keys(database).unlink()
    reopened = SqlConfigStore(_url(database))
    try:
        config = await reopened.get_config("t1")
    finally:
        await reopened.close()
    assert config is not None and config.secret == secret
    assert _keys(database).is_file()


async def test_the_dispatcher_and_the_admin_app_refuse_to_start(database: Path) -> None:
    """Key file: missing, neither the dispatcher nor the admin API starts."""
    await _saved_with_key_file(database)
    _keys(database).unlink()
    settings = DispatchSettings(database_url=_url(database))
    with pytest.raises(SecretUnreadable):
        async with Dispatcher.from_settings(settings):
            pass
    app = create_admin_app(settings)
    with pytest.raises(SecretUnreadable):
        async with app.router.lifespan_context(app):
            pass
    assert not _keys(database).exists()


@pytest.mark.parametrize("command", [("tenants", "list"), ("serve", "--port", "0")])
def test_the_cli_says_what_is_missing_in_one_line(
    database: Path, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key file: the CLI (serve included) exits 1 with one line naming the file, no traceback."""
    import uvicorn  # noqa: PLC0415 - patched for this test only

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    asyncio.run(_saved_with_key_file(database))  # the CLI runs its own event loop
    _keys(database).unlink()
    result = CliRunner().invoke(
        main,
        ["--database-url", _url(database), *command],
        env={"VIZOCHOK_SECRET_KEYS": None, "VIZOCHOK_DATABASE_URL": None},
    )
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert str(_keys(database)) in lines[0]
    assert "Traceback" not in result.output
    assert not _keys(database).exists()
    assert served == [], "serve got as far as starting the server"


@pytest.mark.parametrize("encrypted", [True, False], ids=["secrets-encrypted", "no-secrets"])
async def test_a_key_file_that_is_a_directory_is_named_as_one(
    database: Path, encrypted: bool
) -> None:
    """Key file: a directory where <db>.keys belongs is reported as a directory, not missing."""
    if encrypted:
        await _saved_with_key_file(database)
        _keys(database).unlink()
    _keys(database).mkdir()
    store = SqlConfigStore(_url(database))
    try:
        with pytest.raises(StoreError) as caught:
            await store.open()
    finally:
        await store.close()
    message = str(caught.value)
    assert f"{_keys(database)} is a directory, not" in message
    assert "missing" not in message and "IsADirectoryError" not in message
    assert isinstance(caught.value, SecretUnreadable) is encrypted
    assert _keys(database).is_dir()


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n", " , \n"])
async def test_an_empty_key_file_is_named_as_the_file(database: Path, content: str) -> None:
    """Key file: one holding no key names the file (not VIZOCHOK_SECRET_KEYS) and what to do."""
    _keys(database).write_text(content)
    _keys(database).chmod(0o600)
    store = SqlConfigStore(_url(database))
    try:
        with pytest.raises(SettingsError) as caught:
            await store.open()
    finally:
        await store.close()
    message = str(caught.value)
    assert message.startswith(f"the key file {_keys(database)} holds no key")
    assert "VIZOCHOK_SECRET_KEYS" not in message


async def test_a_malformed_key_file_is_named_as_the_file(database: Path) -> None:
    """Key file: a malformed entry is reported against the file, not the setting."""
    _keys(database).write_text("not-a-key-line\n")
    _keys(database).chmod(0o600)
    store = SqlConfigStore(_url(database))
    try:
        with pytest.raises(SettingsError) as caught:
            await store.open()
    finally:
        await store.close()
    assert str(caught.value).startswith(f"the key file {_keys(database)}: every entry must read")
