"""Partial updates, versions and tenants, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import pytest

from vizochok_dispatch import UNSET, ConfigStore, InvalidConfig, WebhookConfig

from .helpers import (
    CART_GET_URL,
    CART_URL,
    OWN_SECRET,
    PRODUCTS_URL,
    TENANT,
    error_fields,
    save_minimal,
)


async def _full(store: ConfigStore) -> WebhookConfig:
    return await store.save_config(
        TENANT,
        products_url=PRODUCTS_URL,
        cart_url=CART_URL,
        cart_get_url=CART_GET_URL,
        timeout_seconds=7.5,
        secret=OWN_SECRET,
    )


def _fields(config: WebhookConfig) -> dict[str, object]:
    return {
        "products_url": config.products_url,
        "cart_url": config.cart_url,
        "cart_get_url": config.cart_get_url,
        "timeout_seconds": config.timeout_seconds,
        "secret_matches": config.secret == OWN_SECRET,
    }


# -- reading ----------------------------------------------------------------------------------


async def test_unknown_tenant_has_no_config(store: ConfigStore) -> None:
    """get_config: a tenant that never saved gets None."""
    assert await store.get_config("nobody") is None


async def test_saved_config_reads_back_equal(store: ConfigStore) -> None:
    """save_config returns exactly what get_config reads back afterwards."""
    saved = await _full(store)
    assert await store.get_config(TENANT) == saved
    assert saved.tenant_id == TENANT
    assert _fields(saved) == {
        "products_url": PRODUCTS_URL,
        "cart_url": CART_URL,
        "cart_get_url": CART_GET_URL,
        "timeout_seconds": 7.5,
        "secret_matches": True,
    }


async def test_updated_at_is_timezone_aware(store: ConfigStore) -> None:
    """updated_at is an aware datetime on every store (SQLite keeps no zone; we add UTC)."""
    saved = await save_minimal(store)
    stored = await store.get_config(TENANT)
    for config in (saved, stored):
        assert config is not None
        assert isinstance(config.updated_at, datetime)
        assert config.updated_at.utcoffset() is not None


# -- first save -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({}, {"products_url", "cart_url"}),
        ({"products_url": PRODUCTS_URL}, {"cart_url"}),
        ({"cart_url": CART_URL}, {"products_url"}),
        ({"cart_get_url": CART_GET_URL, "timeout_seconds": 3.0}, {"products_url", "cart_url"}),
    ],
    ids=["nothing", "no-cart-url", "no-products-url", "optional-fields-only"],
)
async def test_first_save_requires_products_and_cart_url(
    store: ConfigStore, given: dict[str, object], missing: set[str]
) -> None:
    """First save: products_url and cart_url are required; without them nothing is stored."""
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(TENANT, **given)  # type: ignore[arg-type]
    assert error_fields(caught.value) == missing
    assert all(problem.message == "is required" for problem in caught.value.errors)
    assert await store.get_config(TENANT) is None


async def test_first_save_defaults(store: ConfigStore) -> None:
    """First save: version 1, no cart_get_url, timeout 5.0."""
    saved = await save_minimal(store)
    assert saved.version == 1
    assert saved.cart_get_url is None
    assert saved.timeout_seconds == 5.0


# -- later saves ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"products_url": "https://other.example/products"},
        {"cart_url": "https://other.example/cart"},
        {"cart_get_url": "https://other.example/cart/get"},
        {"timeout_seconds": 0.25},
    ],
    ids=lambda change: next(iter(change)),
)
async def test_omitted_fields_are_kept(store: ConfigStore, change: dict[str, object]) -> None:
    """Partial update: only the given field changes; every omitted one (and the secret) stays."""
    before = await _full(store)
    after = await store.save_config(TENANT, **change)  # type: ignore[arg-type]
    expected = _fields(before) | change
    assert _fields(after) == expected
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert _fields(stored) == expected


async def test_explicit_unset_is_the_same_as_omitting(store: ConfigStore) -> None:
    """Partial update: passing UNSET keeps the stored value, like leaving the keyword out."""
    before = await _full(store)
    after = await store.save_config(
        TENANT,
        products_url=UNSET,
        cart_url=UNSET,
        cart_get_url=UNSET,
        timeout_seconds=UNSET,
        secret=UNSET,
    )
    assert _fields(after) == _fields(before)


async def test_explicit_none_clears_cart_get_url(store: ConfigStore) -> None:
    """Partial update: cart_get_url=None clears it (omitting it would keep it)."""
    await _full(store)
    kept = await store.save_config(TENANT, timeout_seconds=3.0)
    assert kept.cart_get_url == CART_GET_URL
    cleared = await store.save_config(TENANT, cart_get_url=None)
    assert cleared.cart_get_url is None
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.cart_get_url is None
    assert stored.products_url == PRODUCTS_URL


@pytest.mark.parametrize("field", ["products_url", "cart_url"])
async def test_required_url_cannot_be_cleared(store: ConfigStore, field: str) -> None:
    """Partial update: None for products_url or cart_url is refused (they are required)."""
    before = await _full(store)
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config(TENANT, **{field: None})  # type: ignore[arg-type]
    assert error_fields(caught.value) == {field}
    assert await store.get_config(TENANT) == before


async def test_version_increments_on_every_save(store: ConfigStore) -> None:
    """Every accepted save increments the version by one; a refused one does not."""
    assert (await save_minimal(store)).version == 1
    assert (await store.save_config(TENANT, timeout_seconds=2.0)).version == 2
    assert (await store.save_config(TENANT, secret=None)).version == 3
    with pytest.raises(InvalidConfig):
        await store.save_config(TENANT, timeout_seconds=0)
    assert (await store.save_config(TENANT, cart_get_url=None)).version == 4
    stored = await store.get_config(TENANT)
    assert stored is not None
    assert stored.version == 4


async def test_tenants_are_independent(store: ConfigStore) -> None:
    """Saving, rotating or deleting one tenant's config never touches another's."""
    other = await store.save_config(
        "tenant-2", products_url="https://two.example/p", cart_url="https://two.example/c"
    )
    await _full(store)
    await store.save_config(TENANT, secret=None, timeout_seconds=1.0)
    assert await store.delete_config(TENANT) is True
    assert await store.get_config("tenant-2") == other


# -- delete -----------------------------------------------------------------------------------


async def test_delete_reports_whether_there_was_a_config(store: ConfigStore) -> None:
    """delete_config: True when a config was removed, False when there was none."""
    await save_minimal(store)
    assert await store.delete_config(TENANT) is True
    assert await store.get_config(TENANT) is None
    assert await store.delete_config(TENANT) is False


async def test_save_after_delete_is_a_first_save(store: ConfigStore) -> None:
    """After delete_config the next save is a first save again: version 1, URLs required."""
    old = await save_minimal(store)
    await store.save_config(TENANT, timeout_seconds=9.0)
    await store.delete_config(TENANT)
    with pytest.raises(InvalidConfig):
        await store.save_config(TENANT, timeout_seconds=9.0)
    again = await save_minimal(store)
    assert again.version == 1
    assert again.timeout_seconds == 5.0
    assert again.secret != old.secret


# -- tenant ids -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tenant_id",
    ["", "   ", "t" * 129, "tenant\x00one", "tenant\none", "tenant-\ud800"],
    ids=["empty", "blank", "129-chars", "nul", "newline", "surrogate"],
)
async def test_unusable_tenant_id_is_refused_the_same_everywhere(
    store: ConfigStore, tenant_id: str
) -> None:
    """tenant_id: a blank, over-long or control-character id is InvalidConfig, not a DB error."""
    with pytest.raises(InvalidConfig) as caught:
        await save_minimal(store, tenant_id)
    assert error_fields(caught.value) == {"tenant_id"}
    assert await store.get_config(tenant_id) is None
    assert await store.delete_config(tenant_id) is False


async def test_tenant_id_of_128_chars_and_unicode_is_accepted(store: ConfigStore) -> None:
    """tenant_id: up to 128 printable characters, any script, round-trips unchanged."""
    for tenant_id in ("t" * 128, "магазин-Київ-№1"):
        saved = await save_minimal(store, tenant_id)
        assert saved.tenant_id == tenant_id
        assert await store.get_config(tenant_id) == saved
