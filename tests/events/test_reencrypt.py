"""``secrets reencrypt`` re-encrypts every encrypted secret under the first key: webhook
configs' and event endpoints' current and pending secrets, so the old key can be dropped; on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy import select

from tests.admin.support import KEY_1, KEY_2
from vizochok_dispatch import Dispatcher, SecretBox, SqlConfigStore
from vizochok_dispatch.events._tables import EventEndpointRow
from vizochok_dispatch.tenants._models import WebhookConfigRow

from .support import TENANT, settings_for

PRODUCTS_URL = "https://shop.example/products"
CART_URL = "https://shop.example/cart"


def _dispatcher(database_url: str, keys: str) -> Dispatcher:
    return Dispatcher.from_settings(
        settings_for(database_url, secret_keys=SecretStr(keys), event_worker="off")
    )


def _sql(d: Dispatcher) -> SqlConfigStore:
    store = d.store.inner
    assert isinstance(store, SqlConfigStore)
    return store


async def _stored(d: Dispatcher) -> list[str]:
    """Every stored secret, as the database holds it."""
    async with _sql(d).engine.connect() as conn:
        rows = [
            *(await conn.execute(select(WebhookConfigRow.secret, WebhookConfigRow.pending_secret))),
            *(await conn.execute(select(EventEndpointRow.secret, EventEndpointRow.pending_secret))),
        ]
    return [value for row in rows for value in row if value is not None]


async def test_reencrypt_covers_event_endpoint_secrets(database_url: str):
    """After reencrypt under k2,k1, all four kinds of secret read with k2 alone."""
    async with _dispatcher(database_url, KEY_1) as old:
        store = _sql(old)
        await store.save_config(TENANT, products_url=PRODUCTS_URL, cart_url=CART_URL)
        config = await store.roll_secret(TENANT, now=datetime.now(UTC))
        assert config is not None and config.pending_secret is not None
        created = await old.events.create_endpoint(
            TENANT, url="https://shop.example/hooks", event_types=["*"]
        )
        rolled = await old.events.roll_secret(TENANT, created.id)
        assert rolled is not None and rolled.pending_secret is not None
        plain = (config.secret, config.pending_secret, rolled.secret, rolled.pending_secret)
        assert all(value.startswith("v1.k1.") for value in await _stored(old))

    async with _dispatcher(database_url, f"{KEY_2},{KEY_1}") as both:
        report = await _sql(both).reencrypt_secrets()
        assert (report.total, report.reencrypted, report.current, report.unreadable) == (
            2,
            2,
            0,
            (),
        )
        stored = await _stored(both)
        assert len(stored) == 4 and all(value.startswith("v1.k2.") for value in stored)
        again = await _sql(both).reencrypt_secrets()
        assert (again.reencrypted, again.current) == (0, 2)

    async with _dispatcher(database_url, KEY_2) as new:
        config = await _sql(new).get_config(TENANT)
        endpoint = await new.events.endpoint(TENANT, created.id)
        assert config is not None and endpoint is not None
        assert (
            config.secret,
            config.pending_secret,
            endpoint.secret,
            endpoint.pending_secret,
        ) == plain


async def test_reencrypt_names_an_unreadable_event_endpoint(database_url: str):
    """An endpoint secret under a key that is gone: reported as tenant/endpoint, kept."""
    async with _dispatcher(database_url, KEY_1) as first:
        await _sql(first).save_config("kept", products_url=PRODUCTS_URL, cart_url=CART_URL)
    async with _dispatcher(database_url, f"{KEY_2},{KEY_1}") as lost:
        created = await lost.events.create_endpoint(
            TENANT, url="https://shop.example/hooks", event_types=["*"]
        )
    # what the CLI command opens: the config store alone
    other = SqlConfigStore(database_url, secret_box=SecretBox.from_keyring(KEY_1))
    try:
        report = await other.reencrypt_secrets()
        async with other.engine.connect() as conn:
            kept = await conn.scalar(select(EventEndpointRow.secret))
    finally:
        await other.close()
    assert report.unreadable == (f"{TENANT}/{created.id}",)
    assert (report.total, report.current) == (2, 1)
    assert kept is not None and kept.startswith("v1.k2.")
