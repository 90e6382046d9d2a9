"""The admin API under a real uvicorn server on 127.0.0.1, configuring and test-firing a
tenant backend (the receiver kit) on 127.0.0.1, all over real HTTP."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from vizochok_dispatch import DispatchSettings, SqlConfigStore, TenantDirectory
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.receiver import (
    CartLine,
    CartOperation,
    CartQuery,
    CartReply,
    Product,
    ProductsQuery,
    create_receiver_app,
)
from vizochok_dispatch.receiver.testing import serve_on_loopback

from .support import (
    LOOPBACK_NETWORKS,
    TEST_FIRE,
    WEBHOOKS,
    FakeResolver,
    admin_settings_for,
    bearer,
)

pytestmark = pytest.mark.loopback


class Shop:
    """A tenant backend built on the receiver kit; it refuses anything not signed right."""

    def __init__(self) -> None:
        self.secret = "not-known-yet-000000000000000000"
        self.calls: list[str] = []

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        self.calls.append("products")
        return [Product(sku=sku, price=Decimal("45.90"), in_stock=True) for sku in query.skus]

    async def cart_operation(self, operation: CartOperation) -> CartReply:
        self.calls.append(f"cart:{operation.session_id}")
        return CartReply.accepted()

    async def load_cart(self, query: CartQuery) -> list[CartLine]:
        self.calls.append("cart_get")
        return [CartLine(sku="milk-001", name="Milk", price=Decimal("45.90"), quantity=Decimal(2))]


@pytest.fixture
def settings(database_url: str) -> DispatchSettings:
    return admin_settings_for(database_url, allow_http=True, allowed_networks=LOOPBACK_NETWORKS)


async def test_patch_and_test_fire_over_real_http(settings: DispatchSettings) -> None:
    """Loopback: uvicorn-served admin API configures a real tenant and test-fires it, signed."""
    store = SqlConfigStore(settings.database_url, auto_migrate=True)
    try:
        _, issued = await TenantDirectory.for_store(store).create_tenant("Shop", tenant_id="shop")
    finally:
        await store.close()
    shop = Shop()
    backend = create_receiver_app(
        secret=lambda: shop.secret,
        check_products=shop.check_products,
        cart_operation=shop.cart_operation,
        load_cart=shop.load_cart,
    )
    resolver = FakeResolver()
    admin_app = create_admin_app(settings, resolve=resolver)
    async with (
        serve_on_loopback(backend) as tenant_base,
        serve_on_loopback(admin_app) as admin_base,
        httpx.AsyncClient(base_url=admin_base, headers=bearer(issued.key)) as client,
    ):
        saved = await client.patch(
            WEBHOOKS,
            json={
                "products_url": f"{tenant_base}/api/vizochok/check-products",
                "cart_url": f"{tenant_base}/api/vizochok/cart",
                "cart_get_url": f"{tenant_base}/api/vizochok/cart/items",
                "timeout_seconds": 3,
            },
        )
        assert saved.status_code == 200, saved.text
        shop.secret = saved.json()["secret"]

        report = (await client.post(TEST_FIRE, json={"skus": ["milk-001"]})).json()
        assert report["ok"] is True and report["status"] == 200
        assert report["url"] == f"{tenant_base}/api/vizochok/check-products"
        assert report["result"]["available"][0] == {
            "sku": "milk-001",
            "price": "45.90",
            "promo_price": None,
            "promo_label": None,
        }
        assert report["problems"] == []

        cart = (await client.post(TEST_FIRE, json={"webhook": "cart"})).json()
        assert cart["ok"] is True and cart["result"] == {"ok": True}
        loaded = (await client.post(TEST_FIRE, json={"webhook": "cart_get"})).json()
        assert loaded["ok"] is True and loaded["result"]["loaded"] is True

        rotated = await client.post("/api/v1/admin/webhooks/secret/rotate")
        stale = (await client.post(TEST_FIRE)).json()
        assert stale["ok"] is False and stale["status"] == 401  # the shop still has the old one
        shop.secret = rotated.json()["secret"]
        assert (await client.post(TEST_FIRE)).json()["ok"] is True

        shown = (await client.get(WEBHOOKS)).json()
        assert shown["secret"] is None and shown["secret_masked"].endswith(shop.secret[-4:])
        anonymous = await client.get(WEBHOOKS, headers={"Authorization": "Bearer sk_nope"})
        assert anonymous.status_code == 401
        huge = await client.patch(WEBHOOKS, content=b"{" + b" " * 20_000 + b"}")
        assert huge.status_code == 413
        assert (await client.get("/openapi.json")).status_code == 200
    assert shop.calls[:2] == ["products", shop.calls[1]]
    assert shop.calls[1].startswith("cart:vizochok-test-")
    assert resolver.asked == [], "literal loopback addresses need no DNS"
