"""Shared pieces of the receiver tests: the signature vectors, a recording tenant, dispatchers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from tests.support import vectors as _vectors
from vizochok_dispatch import (
    Clock,
    ConfigRules,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    signature_headers,
)
from vizochok_dispatch.receiver import (
    CartAdd,
    CartClear,
    CartLine,
    CartOperation,
    CartQuery,
    CartRemove,
    CartReply,
    CartUpdate,
    IdempotencyStore,
    Product,
    ProductsQuery,
    RetryLater,
    create_receiver_app,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_receiver_tests_current_0001"
OLD_SECRET = "whsec_receiver_tests_previous_0000"
TENANT = "tenant-1"
NOW = 1_763_856_000
PRODUCTS_PATH = "/api/vizochok/check-products"
CART_PATH = "/api/vizochok/cart"
CART_ITEMS_PATH = "/api/vizochok/cart/items"


def vectors_path() -> Path:
    """The signature vectors file: ``docs/signature-vectors.json`` unless overridden.

    ``$VIZOCHOK_SIGNATURE_VECTORS`` overrides it (see ``tests/support/vectors.py``).
    """
    return _vectors.vectors_path()


def load_vectors() -> list[dict[str, Any]]:
    """Every case of :func:`vectors_path`'s file."""
    return _vectors.load_vectors()


def signed_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    timestamp: int = NOW,
    delivery_id: str | None = "delivery-0001",
) -> dict[str, str]:
    """Headers the dispatcher would send for ``body`` (signed with the package's signer)."""
    headers = {"Content-Type": "application/json", **signature_headers(secret, timestamp, body)}
    if delivery_id is not None:
        headers["X-VIZOCHOK-Delivery"] = delivery_id
        headers["X-VIZOCHOK-Attempt"] = "1"
    return headers


CATALOG = {
    "milk-001": Product(sku="milk-001", price=Decimal("45.90"), in_stock=True),
    "milk-002": Product(
        sku="milk-002",
        price=Decimal("52.00"),
        in_stock=True,
        promo_price=Decimal("42.00"),
        promo_label="-19%",
    ),
    "milk-003": Product(sku="milk-003", price=Decimal("38.50"), in_stock=False),
}


@dataclass
class RecordingTenant:
    """A tenant backend that records what each callback received and what it applied."""

    products_calls: list[ProductsQuery] = field(default_factory=list)
    cart_calls: list[CartOperation] = field(default_factory=list)
    load_calls: list[CartQuery] = field(default_factory=list)
    applied: list[CartOperation] = field(default_factory=list)
    carts: dict[tuple[str, str], dict[str, CartLine]] = field(default_factory=dict)
    #: How many cart calls answer 503 (RetryLater) before one is applied.
    unavailable_cart_calls: int = 0

    @property
    def calls(self) -> int:
        """Every callback invocation, of any kind."""
        return len(self.products_calls) + len(self.cart_calls) + len(self.load_calls)

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        """Live prices from the fixed catalog."""
        self.products_calls.append(query)
        return [CATALOG[sku] for sku in query.skus if sku in CATALOG]

    async def cart_operation(self, operation: CartOperation) -> CartReply:
        """Apply one operation; out-of-stock goods are refused as the docs show."""
        self.cart_calls.append(operation)
        if self.unavailable_cart_calls > 0:
            self.unavailable_cart_calls -= 1
            raise RetryLater("cart service restarting")
        cart = self.carts.setdefault((operation.store_id, operation.session_id), {})
        match operation:
            case CartAdd(sku=sku) if sku in CATALOG and not CATALOG[sku].in_stock:
                return CartReply.refused("out_of_stock")
            case CartAdd(sku=sku, name=name, quantity=quantity, price=price):
                held = cart.get(sku)
                total = quantity + (held.quantity if held else Decimal(0))
                cart[sku] = CartLine(sku=sku, name=name, price=price, quantity=total)
            case CartUpdate(sku=sku, quantity=quantity):
                line = cart.get(sku)
                if line is None:
                    return CartReply.refused("not_in_cart")
                cart[sku] = CartLine(sku=sku, name=line.name, price=line.price, quantity=quantity)
            case CartRemove(sku=sku):
                cart.pop(sku, None)
            case CartClear():
                cart.clear()
        self.applied.append(operation)
        return CartReply.accepted()

    async def load_cart(self, query: CartQuery) -> list[CartLine]:
        """The session's cart lines."""
        self.load_calls.append(query)
        return list(self.carts.get((query.store_id, query.session_id), {}).values())

    def app(
        self,
        *,
        secret: str | list[str] = SECRET,
        clock: Any = None,
        idempotency: IdempotencyStore | None = None,
        max_body_bytes: int = 1024 * 1024,
    ) -> Starlette:
        """The kit's app around this tenant's callbacks."""
        return create_receiver_app(
            secret=secret,
            check_products=self.check_products,
            cart_operation=self.cart_operation,
            load_cart=self.load_cart,
            clock=clock or (lambda: float(NOW)),
            idempotency=idempotency,
            max_body_bytes=max_body_bytes,
        )


#: Loopback, as the SSRF guard's allow-list spells it.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"


def loopback_settings() -> DispatchSettings:
    """Settings that let a dispatcher call 127.0.0.1 over plain HTTP (SSRF allow-list)."""
    return DispatchSettings.model_validate(
        {"allow_http": True, "allowed_networks": LOOPBACK_NETWORKS}
    )


def loopback_rules(settings: DispatchSettings) -> ConfigRules:
    """The config rules matching ``settings``."""
    return settings.config_rules()


async def no_sleep(_seconds: float) -> None:
    """The retry delay, skipped: tests inject time instead of waiting for it."""


@contextlib.asynccontextmanager
async def dispatcher_for(
    base_url: str,
    *,
    secret: str = SECRET,
    wall: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    cart_get_query: str = "",
) -> AsyncIterator[Dispatcher]:
    """A real dispatcher with ``TENANT`` pointed at ``base_url``; ``wall`` fixes its clock."""
    settings = loopback_settings()
    store = InMemoryConfigStore(rules=loopback_rules(settings))
    await store.save_config(
        TENANT,
        products_url=base_url + PRODUCTS_PATH,
        cart_url=base_url + CART_PATH,
        cart_get_url=base_url + CART_ITEMS_PATH + cart_get_query,
        timeout_seconds=5.0,
        secret=secret,
    )
    clock = Clock() if wall is None else Clock(wall=lambda: wall)
    dispatcher = Dispatcher(
        store,
        settings=settings,
        transport=transport,
        clock=clock,
        sleep=no_sleep,
    )
    try:
        async with dispatcher:
            yield dispatcher
    finally:
        if transport is not None:
            await transport.aclose()
