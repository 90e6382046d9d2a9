"""Webhook secrets at rest: AES-256-GCM bound to the tenant, key rotation, the embedded key
file, legacy plaintext, and the production rule (no keys, no start)."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from structlog.testing import capture_logs

from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    SecretBox,
    SecretUnreadable,
    SettingsError,
    SqlConfigStore,
)
from vizochok_dispatch.admin import create_admin_app

from .support import KEY_1, KEY_2, absent

OWN = "tenant-own-secret-0123456789abcdef"
PRODUCTS_URL = "https://shop.example/products"
CART_URL = "https://shop.example/cart"


async def _raw_secret(store: SqlConfigStore, tenant_id: str) -> str:
    async with store.engine.connect() as conn:
        value = (
            await conn.execute(
                text("SELECT secret FROM webhook_configs WHERE tenant_id = :t"), {"t": tenant_id}
            )
        ).scalar_one()
    return str(value)


async def _set_raw_secret(store: SqlConfigStore, tenant_id: str, value: str) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_configs SET secret = :s WHERE tenant_id = :t"),
            {"s": value, "t": tenant_id},
        )


async def _save(store: SqlConfigStore, tenant_id: str, secret: str | None = None) -> str:
    saved = await store.save_config(
        tenant_id, products_url=PRODUCTS_URL, cart_url=CART_URL, secret=secret
    )
    return saved.secret


def _store(url: str, keys: str | None) -> SqlConfigStore:
    box = SecretBox.from_keyring(keys) if keys else None
    return SqlConfigStore(url, auto_migrate=True, secret_box=box)


# -- the box ------------------------------------------------------------------------------------


def test_envelope_is_versioned_keyed_and_fresh_every_time() -> None:
    """Crypto: `v1.<key_id>.<base64url>`, a new nonce per encryption, round trip exact."""
    box = SecretBox.from_keyring(KEY_1)
    first, second = box.encrypt("t1", OWN), box.encrypt("t1", OWN)
    assert first.startswith("v1.k1.") and len(first.split(".")) == 3
    assert first != second
    assert box.decrypt("t1", first) == box.decrypt("t1", second) == OWN
    assert absent(OWN, first)


def test_a_ciphertext_only_decrypts_for_its_own_tenant() -> None:
    """Crypto: the tenant id is associated data; the same ciphertext fails for another tenant."""
    box = SecretBox.from_keyring(KEY_1)
    sealed = box.encrypt("tenant-a", OWN)
    with pytest.raises(SecretUnreadable, match="tenant-b") as caught:
        box.decrypt("tenant-b", sealed)
    assert absent(OWN, caught.value) and absent(sealed, caught.value)


def test_a_tampered_ciphertext_is_refused() -> None:
    """Crypto: a changed byte fails authentication instead of decrypting to garbage."""
    box = SecretBox.from_keyring(KEY_1)
    sealed = box.encrypt("t1", OWN)
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable):
        box.decrypt("t1", flipped)


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    """Rotation: a keyring `k2,k1` encrypts with k2 and still reads k1's ciphertexts."""
    old = SecretBox.from_keyring(KEY_1)
    both = SecretBox.from_keyring(f"{KEY_2},{KEY_1}")
    sealed_old = old.encrypt("t1", OWN)
    assert both.decrypt("t1", sealed_old) == OWN
    assert both.encrypt("t1", OWN).startswith("v1.k2.")
    assert both.needs_reencryption(sealed_old) and not both.needs_reencryption(
        both.encrypt("t1", OWN)
    )
    with pytest.raises(SecretUnreadable, match="'k2', which is not configured"):
        old.decrypt("t1", both.encrypt("t1", OWN))


def test_plaintext_from_before_encryption_is_read_and_flagged() -> None:
    """Legacy: a plain whsec_ value passes through and is marked for re-encryption."""
    box = SecretBox.from_keyring(KEY_1)
    assert (
        box.decrypt("t1", "whsec_legacy_plaintext_value_000") == "whsec_legacy_plaintext_value_000"
    )
    assert box.needs_reencryption("whsec_legacy_plaintext_value_000")


@pytest.mark.parametrize(
    ("keyring", "fragment"),
    [
        ("k1", "key_id:base64key"),
        ("k1:" + base64.b64encode(b"short").decode(), "32 bytes"),
        ("k1:!!!not-base64!!!", "not valid base64"),
        (f"{KEY_1},{KEY_1}", "appears twice"),
        ("bad.id:" + KEY_1.split(":")[1], "key_id:base64key"),
        (KEY_1.split(":")[1] + ":k1", "key_id:base64key"),
        ("", "at least one key"),
    ],
)
def test_a_bad_keyring_is_refused_without_echoing_it(keyring: str, fragment: str) -> None:
    """Settings: a malformed VIZOCHOK_SECRET_KEYS refuses to load and never shows the key."""
    with pytest.raises(ValidationError) as caught:
        DispatchSettings(secret_keys=SecretStr(keyring))
    message = str(caught.value)
    assert fragment in message
    material = [part for part in keyring.replace(",", ":").split(":") if len(part) > 8]
    assert all(absent(part, message, repr(caught.value)) for part in material)


def test_reprs_never_show_keys() -> None:
    """Secrecy: the settings' and the box's reprs name key ids only."""
    settings = DispatchSettings(secret_keys=SecretStr(f"{KEY_2},{KEY_1}"))
    box = settings.secret_box()
    material = [KEY_1.split(":")[1], KEY_2.split(":")[1]]
    assert repr(box) == "SecretBox(key_ids=['k2', 'k1'])"
    assert all(absent(m, repr(settings), str(settings), repr(box)) for m in material)


# -- in the store ---------------------------------------------------------------------------


async def test_the_secret_column_holds_only_ciphertext(database_url: str) -> None:
    """At rest: generated and own secrets are stored as v1 envelopes; configs hold plaintext."""
    store = _store(database_url, KEY_1)
    try:
        generated = await _save(store, "t-gen")
        own = await _save(store, "t-own", OWN)
        for tenant_id, plain in (("t-gen", generated), ("t-own", own)):
            raw = await _raw_secret(store, tenant_id)
            assert raw.startswith("v1.k1.") and absent(plain, raw)
            config = await store.get_config(tenant_id)
            assert config is not None and config.secret == plain
    finally:
        await store.close()


async def test_a_ciphertext_copied_to_another_tenants_row_does_not_decrypt(
    database_url: str,
) -> None:
    """At rest: copying A's secret column into B's row makes B unreadable, not A's secret."""
    store = _store(database_url, KEY_1)
    try:
        secret_a = await _save(store, "tenant-a")
        await _save(store, "tenant-b")
        await _set_raw_secret(store, "tenant-b", await _raw_secret(store, "tenant-a"))
        with pytest.raises(SecretUnreadable, match="tenant-b") as caught:
            await store.get_config("tenant-b")
        assert absent(secret_a, caught.value)
        config_a = await store.get_config("tenant-a")
        assert config_a is not None and config_a.secret == secret_a
    finally:
        await store.close()


async def test_an_unreadable_secret_fails_the_call_not_the_chat(database_url: str) -> None:
    """At rest: the dispatcher turns an undecryptable secret into a store_error failure value."""
    store = _store(database_url, KEY_1)
    await _save(store, "tenant-a")
    await _save(store, "tenant-b")
    await _set_raw_secret(store, "tenant-b", await _raw_secret(store, "tenant-a"))
    async with Dispatcher(store, owns_store=True) as dispatcher:
        result = await dispatcher.check_products("tenant-b", skus=["a"], store_id="s")
    assert result.failure == "store_error" and result.unavailable == ("a",)


async def test_key_rotation_and_reencrypt(database_url: str) -> None:
    """Rotation: with `k2,k1` old rows read; `reencrypt_secrets` moves them all to k2; k1 can go."""
    old = _store(database_url, KEY_1)
    secrets = {tenant: await _save(old, tenant) for tenant in ("a", "b", "c")}
    await old.close()

    rotated = _store(database_url, f"{KEY_2},{KEY_1}")
    try:
        for tenant, plain in secrets.items():
            config = await rotated.get_config(tenant)
            assert config is not None and config.secret == plain
        secrets["d"] = await _save(rotated, "d")
        assert (await _raw_secret(rotated, "d")).startswith("v1.k2.")
        report = await rotated.reencrypt_secrets()
        assert (report.total, report.reencrypted, report.current, report.unreadable) == (
            4,
            3,
            1,
            (),
        )
        stored = [await _raw_secret(rotated, tenant) for tenant in secrets]
        assert all(value.startswith("v1.k2.") for value in stored)
        again = await rotated.reencrypt_secrets()
        assert (again.reencrypted, again.current) == (0, 4)
    finally:
        await rotated.close()

    only_new = _store(database_url, KEY_2)
    try:
        for tenant, plain in secrets.items():
            config = await only_new.get_config(tenant)
            assert config is not None and config.secret == plain
    finally:
        await only_new.close()


async def test_plaintext_rows_are_read_then_reencrypted(database_url: str) -> None:
    """Legacy: a row written before encryption (plain text) is read, then re-encrypted."""
    store = _store(database_url, KEY_1)
    try:
        await _save(store, "old-tenant")
        await _set_raw_secret(store, "old-tenant", OWN)  # as the store wrote it before
        config = await store.get_config("old-tenant")
        assert config is not None and config.secret == OWN
        report = await store.reencrypt_secrets()
        assert (report.reencrypted, report.current) == (1, 0)
        assert (await _raw_secret(store, "old-tenant")).startswith("v1.k1.")
        config = await store.get_config("old-tenant")
        assert config is not None and config.secret == OWN
    finally:
        await store.close()


async def test_reencrypt_reports_rows_it_cannot_read(database_url: str) -> None:
    """Rotation: a row under a key that is gone is reported by tenant, never overwritten."""
    first = _store(database_url, KEY_1)
    await _save(first, "kept")
    await first.close()
    store = _store(database_url, f"{KEY_2},{KEY_1}")
    await _save(store, "lost")
    await store.close()
    other = _store(database_url, KEY_1)
    try:
        report = await other.reencrypt_secrets()
        assert report.unreadable == ("lost",)
        assert (await _raw_secret(other, "lost")).startswith("v1.k2.")
    finally:
        await other.close()


# -- the embedded default and the production rule -------------------------------------------


async def test_sqlite_default_creates_a_0600_key_file_with_a_warning(tmp_path: Path) -> None:
    """Embedded default: no keys on SQLite creates `<db>.keys` (0600) once, logging a warning."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'vizochok.db'}"
    with capture_logs() as logs:
        first = SqlConfigStore(url)
        plain = await _save(first, "t1")
        await first.close()
    key_file = tmp_path / "vizochok.db.keys"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["secrets.key_file_created"]
    assert all(absent(key_file.read_text().split(":")[-1].strip(), e) for e in logs)

    with capture_logs() as later:
        second = SqlConfigStore(url)
        config = await second.get_config("t1")
        raw = await _raw_secret(second, "t1")
        await second.close()
    assert config is not None and config.secret == plain
    assert raw.startswith("v1.local-") and absent(plain, raw)
    assert not [e for e in later if e["log_level"] == "warning"]


async def test_stores_opening_a_new_database_at_once_share_one_key(tmp_path: Path) -> None:
    """Embedded default: concurrent first opens race to create the key file; one key wins."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'race.db'}"
    stores = [SqlConfigStore(url) for _ in range(6)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        ids = {store.secret_box.primary_key_id for store in stores if store.secret_box}
        assert len(ids) == 1
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize(
    "overrides",
    [
        {"database_url": "postgresql+asyncpg://vizochok@db.internal/vizochok"},
        {"environment": "production"},
    ],
)
def test_production_without_keys_refuses_to_start(overrides: dict[str, str]) -> None:
    """Production rule: no VIZOCHOK_SECRET_KEYS on PostgreSQL (or ENVIRONMENT=production) raises."""
    settings = DispatchSettings(**overrides)  # type: ignore[arg-type]
    assert settings.is_production()
    with pytest.raises(SettingsError, match="VIZOCHOK_SECRET_KEYS is not set"):
        settings.secret_box()
    with pytest.raises(SettingsError):
        create_admin_app(settings)
    with pytest.raises(SettingsError):
        Dispatcher.from_settings(settings)


def test_production_with_keys_starts() -> None:
    """Production rule: with keys, the admin app and the dispatcher are built."""
    settings = DispatchSettings(
        database_url="postgresql+asyncpg://vizochok@db.internal/vizochok",
        secret_keys=SecretStr(KEY_1),
    )
    assert settings.secret_box() is not None
    assert create_admin_app(settings) is not None


def test_development_sqlite_without_keys_uses_the_key_file() -> None:
    """Embedded default: SQLite in development needs no keys (the store uses its key file)."""
    settings = DispatchSettings(database_url="sqlite+aiosqlite:///./dev.db")
    assert not settings.is_production()
    assert settings.secret_box() is None


async def test_keys_that_read_no_stored_secret_are_refused_at_open(database_url: str) -> None:
    """Keys none of which reads any stored secret: the store refuses to open, naming the ids."""
    store = _store(database_url, KEY_2)
    plain = await _save(store, "t1")
    await store.close()
    wrong = _store(database_url, KEY_1)
    try:
        with pytest.raises(SecretUnreadable) as caught:
            await wrong.get_config("t1")
        message = str(caught.value)
        assert "k2" in message and "VIZOCHOK_SECRET_KEYS holds only k1" in message
        assert absent(plain, message) and absent(KEY_1.split(":")[1], message)
    finally:
        await wrong.close()
    right = _store(database_url, KEY_2)
    try:
        config = await right.get_config("t1")
        assert config is not None and config.secret == plain
    finally:
        await right.close()
