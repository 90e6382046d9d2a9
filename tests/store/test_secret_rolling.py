"""Rolling a webhook secret in every store (docs/webhooks.md §7): roll makes a pending secret
beside the current one, promote switches, the overlap promotes by itself where the secret is
read, a rotate drops the pending one; the pending secret is encrypted at rest and never shown
in a repr or an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from vizochok_dispatch import (
    ConfigStore,
    InvalidConfig,
    NoPendingSecret,
    SecretBox,
    SecretUnreadable,
    SqlConfigStore,
)
from vizochok_dispatch.tenants._models import WebhookConfigRow
from vizochok_dispatch.tenants._rotation import in_effect

from .helpers import OWN_SECRET, TENANT, leaks, save_minimal

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = 24 * 3600.0
NEW_SECRET = "tenant-next-secret-0123456789abcdef"


async def test_a_roll_keeps_the_current_secret_and_stores_a_pending_one(store: ConfigStore) -> None:
    """Roll: the current secret stays, the new one is pending since now, due after the overlap."""
    saved = await save_minimal(store)
    rolled = await store.roll_secret(TENANT, now=NOW, overlap_seconds=DAY)
    assert rolled is not None
    assert rolled.secret == saved.secret
    assert rolled.pending_secret is not None and rolled.pending_secret.startswith("whsec_")
    assert rolled.pending_secret != saved.secret
    assert rolled.pending_since == NOW
    assert rolled.pending_promotes_at == NOW + timedelta(days=1)
    assert rolled.version == saved.version + 1
    assert await store.get_config(TENANT) == rolled


async def test_promote_switches_signing_and_then_has_nothing_to_promote(store: ConfigStore) -> None:
    """Promote: the pending secret becomes current; a second promote is NoPendingSecret."""
    await save_minimal(store)
    rolled = await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    assert rolled is not None
    promoted = await store.promote_secret(TENANT, now=NOW + timedelta(minutes=5))
    assert promoted is not None
    assert promoted.secret == NEW_SECRET
    assert (promoted.pending_secret, promoted.pending_since, promoted.pending_promotes_at) == (
        None,
        None,
        None,
    )
    assert await store.get_config(TENANT) == promoted
    with pytest.raises(NoPendingSecret, match="no secret is pending"):
        await store.promote_secret(TENANT, now=NOW + timedelta(minutes=6))


async def test_the_overlap_promotes_where_the_secret_is_read(store: ConfigStore) -> None:
    """Overlap: at its end the stored config is in effect with the new secret, nothing written."""
    saved = await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, overlap_seconds=60, secret=NEW_SECRET)
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert in_effect(stored, NOW + timedelta(seconds=59)).secret == saved.secret
    after = in_effect(stored, NOW + timedelta(seconds=60))
    assert after.secret == NEW_SECRET and after.pending_secret is None
    assert after.version == stored.version
    with pytest.raises(NoPendingSecret):
        await store.promote_secret(TENANT, now=NOW + timedelta(seconds=61))


async def test_rolling_after_the_overlap_keeps_the_promoted_secret(store: ConfigStore) -> None:
    """Roll again: a pending secret whose overlap ended is current first, then a new one waits."""
    await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, overlap_seconds=60, secret=NEW_SECRET)
    again = await store.roll_secret(TENANT, now=NOW + timedelta(hours=1), overlap_seconds=60)
    assert again is not None
    assert again.secret == NEW_SECRET
    assert again.pending_secret not in (None, NEW_SECRET)


async def test_rolling_twice_replaces_the_pending_secret(store: ConfigStore) -> None:
    """Roll again within the overlap: the current secret stays, the pending one is replaced."""
    saved = await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    again = await store.roll_secret(TENANT, now=NOW + timedelta(minutes=1), secret=OWN_SECRET)
    assert again is not None
    assert (again.secret, again.pending_secret) == (saved.secret, OWN_SECRET)
    assert again.pending_since == NOW + timedelta(minutes=1)


@pytest.mark.parametrize("own", [None, OWN_SECRET])
async def test_a_rotate_replaces_at_once_and_drops_the_pending_secret(
    store: ConfigStore, own: str | None
) -> None:
    """Rotate: save_config(secret=...) replaces the secret and clears the pending one."""
    await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    rotated = await store.save_config(TENANT, secret=own)
    assert rotated.secret not in (NEW_SECRET,) and (own is None or rotated.secret == own)
    assert (rotated.pending_secret, rotated.pending_since, rotated.pending_promotes_at) == (
        None,
        None,
        None,
    )
    assert await store.get_config(TENANT) == rotated
    with pytest.raises(NoPendingSecret):
        await store.promote_secret(TENANT, now=NOW)


async def test_saving_other_fields_keeps_the_pending_secret(store: ConfigStore) -> None:
    """A save without a secret (a new timeout) leaves the pending secret and its times alone."""
    await save_minimal(store)
    rolled = await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    assert rolled is not None
    changed = await store.save_config(TENANT, timeout_seconds=2.5)
    assert changed.pending_secret == NEW_SECRET
    assert changed.pending_promotes_at == rolled.pending_promotes_at


@pytest.mark.parametrize(
    ("secret", "says"),
    [("short", "at least 24 characters"), ("two words " * 4, "whitespace")],
)
async def test_a_refused_own_secret_names_the_field_not_the_value(
    store: ConfigStore, secret: str, says: str
) -> None:
    """Roll: an own secret breaking §1 is InvalidConfig on ``secret``, the value never shown."""
    saved = await save_minimal(store)
    with pytest.raises(InvalidConfig, match=says) as caught:
        await store.roll_secret(TENANT, now=NOW, secret=secret)
    assert [e.field for e in caught.value.errors] == ["secret"]
    assert not leaks(secret, caught.value)
    assert await store.get_config(TENANT) == saved


async def test_rolling_to_the_current_secret_is_refused(store: ConfigStore) -> None:
    """Roll: the secret that signs already is refused (nothing would change)."""
    await store.save_config(
        TENANT,
        products_url="https://a.example/p",
        cart_url="https://a.example/c",
        secret=OWN_SECRET,
    )
    with pytest.raises(InvalidConfig, match="must differ from the current secret") as caught:
        await store.roll_secret(TENANT, now=NOW, secret=OWN_SECRET)
    assert not leaks(OWN_SECRET, caught.value)


async def test_a_tenant_without_config_has_nothing_to_roll(store: ConfigStore) -> None:
    """Roll and promote of an unknown tenant return None and store nothing."""
    assert await store.roll_secret("nobody", now=NOW) is None
    assert await store.promote_secret("nobody", now=NOW) is None
    assert await store.get_config("nobody") is None


async def test_the_pending_secret_is_in_no_repr(store: ConfigStore) -> None:
    """Secrecy: neither the current nor the pending secret is in a config's repr."""
    saved = await save_minimal(store)
    rolled = await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    assert rolled is not None
    shown = repr(rolled) + str(rolled)
    assert saved.secret not in shown and NEW_SECRET not in shown
    assert "pending_since" in shown


# -- at rest ---------------------------------------------------------------------------------


async def _stored_pending(store: SqlConfigStore) -> str | None:
    async with store.engine.connect() as conn:
        return (
            await conn.execute(
                select(WebhookConfigRow.pending_secret).where(WebhookConfigRow.tenant_id == TENANT)
            )
        ).scalar_one()


async def test_the_pending_secret_is_encrypted_at_rest(database_url: str) -> None:
    """At rest: the pending column holds ciphertext bound to the tenant, read back as given."""
    box, _ = SecretBox.generate("k1")
    store = SqlConfigStore(database_url, auto_migrate=True, secret_box=box)
    try:
        await save_minimal(store)
        await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
        stored = await _stored_pending(store)
        assert stored is not None and stored.startswith("v1.k1.") and NEW_SECRET not in stored
        assert box.decrypt(TENANT, stored) == NEW_SECRET
    finally:
        await store.close()


async def test_reencrypt_covers_the_pending_secret(database_url: str) -> None:
    """secrets reencrypt: a pending secret under an older key is re-encrypted with the first."""
    old, old_line = SecretBox.generate("old")
    store = SqlConfigStore(database_url, auto_migrate=True, secret_box=old)
    await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    await store.close()
    _, new_line = SecretBox.generate("new")
    both = SecretBox.from_keyring(f"{new_line},{old_line}")
    store = SqlConfigStore(database_url, auto_migrate=True, secret_box=both)
    try:
        report = await store.reencrypt_secrets()
        assert (report.total, report.reencrypted, report.unreadable) == (1, 1, ())
        stored = await _stored_pending(store)
        assert stored is not None and stored.startswith("v1.new.")
        config = await store.get_config(TENANT)
        assert config is not None and config.pending_secret == NEW_SECRET
    finally:
        await store.close()


async def test_a_lost_key_file_is_refused_for_a_pending_secret_alone(tmp_path: Path) -> None:
    """Key file: a database whose only encrypted value is a pending secret is still checked."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'only-pending.db'}"
    store = SqlConfigStore(url)
    await save_minimal(store)
    await store.roll_secret(TENANT, now=NOW, secret=NEW_SECRET)
    async with store.engine.begin() as conn:  # a current secret stored before encryption
        await conn.execute(
            WebhookConfigRow.__table__.update().values(secret=OWN_SECRET)  # type: ignore[attr-defined]
        )
    await store.close()
    key_file = tmp_path / "only-pending.db.keys"
    key_file.unlink()
    again = SqlConfigStore(url)
    try:
        with pytest.raises(SecretUnreadable, match=r"key file .* is missing"):
            await again.open()
        assert not key_file.exists(), "a new key was made over an encrypted pending secret"
    finally:
        await again.close()
