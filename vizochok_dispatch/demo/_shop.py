"""The demo's tenant side: grocery backends built on the receiver kit, in one ASGI app.

Four retailers share one uvicorn server under their own path prefixes:

- ``fresh-market``: the well-behaved shop (catalog, stock, a promotion, a cart per session);
- ``flaky-market``: its products endpoint answers 503 once, then 200 (the retry rule);
- ``hung-market``: its products endpoint never answers (the timeout rule);
- ``sloppy-market``: signed requests are checked, but its hand-written replies break the
  contract here and there (a price as a string): what a test-fire is for.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ..receiver import (
    CartAdd,
    CartClear,
    CartLine,
    CartOperation,
    CartQuery,
    CartRemove,
    CartReply,
    CartUpdate,
    Product,
    ProductsQuery,
    RetryLater,
    VerificationError,
    create_receiver_app,
    verify_request,
)

FRESH, FLAKY, HUNG, SLOPPY = "fresh-market", "flaky-market", "hung-market", "sloppy-market"
#: What the sloppy shop answers to every products call, mistakes included.
SLOPPY_REPLY = {
    "products": [
        {"sku": "milk-001", "price": 45.9, "in_stock": True},
        {"sku": "milk-002", "price": "52.00", "in_stock": True},
        {"sku": "bread-042", "price": 32, "in_stock": "yes"},
    ]
}


@dataclass(frozen=True, slots=True)
class Item:
    """One catalog entry: what the shop sells, at what price, and how many are left."""

    name: str
    price: Decimal
    stock: int
    unit: str | None = None
    promo_price: Decimal | None = None
    promo_label: str | None = None


CATALOG: dict[str, Item] = {
    "milk-001": Item("Молоко Lactel 2.5%", Decimal("45.90"), stock=12),
    "milk-002": Item(
        "Milk Halychyna 2.5%",
        Decimal("52.00"),
        stock=8,
        promo_price=Decimal("42.00"),
        promo_label="-19%",
    ),
    "kefir-003": Item("Kefir Yagotynske 1%", Decimal("38.50"), stock=0),
    "bread-042": Item("Bread Kyivkhlib", Decimal("32.00"), stock=20),
    "apples-kg": Item("Golden apples", Decimal("54.90"), stock=40, unit="kg"),
}


@dataclass
class GroceryBackend:
    """A retailer's own systems, as its webhook callbacks see them."""

    catalog: dict[str, Item] = field(default_factory=lambda: dict(CATALOG))
    carts: dict[tuple[str, str], dict[str, CartLine]] = field(default_factory=dict)
    products_deliveries: list[str | None] = field(default_factory=list)
    cart_calls: int = 0

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        """Live price and stock for each SKU the shop sells; unknown SKUs are left out."""
        self.products_deliveries.append(query.delivery_id)
        return [self._product(sku) for sku in query.skus if sku in self.catalog]

    def _product(self, sku: str) -> Product:
        item = self.catalog[sku]
        return Product(
            sku=sku,
            price=item.price,
            in_stock=item.stock > 0,
            promo_price=item.promo_price,
            promo_label=item.promo_label,
        )

    async def cart_operation(self, operation: CartOperation) -> CartReply:
        """Apply one cart change; goods out of stock are refused with the docs' reason."""
        self.cart_calls += 1
        cart = self.carts.setdefault((operation.store_id, operation.session_id), {})
        match operation:
            case CartAdd(sku=sku, quantity=quantity, price=price):
                item = self.catalog.get(sku)
                if item is None or item.stock <= 0:
                    return CartReply.refused("out_of_stock")
                held = cart[sku].quantity if sku in cart else Decimal(0)
                cart[sku] = CartLine(
                    sku=sku, name=item.name, price=price, quantity=held + quantity, unit=item.unit
                )
            case CartUpdate(sku=sku, quantity=quantity):
                if sku not in cart:
                    return CartReply.refused("not_in_cart")
                line = cart[sku]
                cart[sku] = CartLine(
                    sku=sku, name=line.name, price=line.price, quantity=quantity, unit=line.unit
                )
            case CartRemove(sku=sku):
                cart.pop(sku, None)
            case CartClear():
                cart.clear()
        return CartReply.accepted()

    async def load_cart(self, query: CartQuery) -> list[CartLine]:
        """The session's cart, line by line."""
        return list(self.carts.get((query.store_id, query.session_id), {}).values())


@dataclass
class FlakyBackend(GroceryBackend):
    """A shop whose price service is restarting: the first products call gets a 503."""

    failures_left: int = 1

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        """503 (``RetryLater``) while ``failures_left``, then the normal answer."""
        if self.failures_left > 0:
            self.failures_left -= 1
            self.products_deliveries.append(query.delivery_id)
            raise RetryLater("price service restarting")
        return await super().check_products(query)


@dataclass
class HungBackend(GroceryBackend):
    """A shop whose price service hangs: its products call never answers."""

    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        """Wait until the demo shuts down (the dispatcher gives up long before)."""
        self.products_deliveries.append(query.delivery_id)
        await self.released.wait()
        return []


@dataclass
class TenantBackends:
    """The three shops, their secrets (learned when VIZOCHOK generates them), one ASGI app."""

    fresh: GroceryBackend = field(default_factory=GroceryBackend)
    flaky: FlakyBackend = field(default_factory=FlakyBackend)
    hung: HungBackend = field(default_factory=HungBackend)
    secrets: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        """Each shop's receiver kit mounted under ``/<tenant id>``; the sloppy shop's own code."""
        kits = ((FRESH, self.fresh), (FLAKY, self.flaky), (HUNG, self.hung))
        return Starlette(
            routes=[
                *(
                    Mount(f"/{tenant}", app=self._receiver(tenant, backend))
                    for tenant, backend in kits
                ),
                Route(
                    f"/{SLOPPY}/api/vizochok/check-products",
                    self._sloppy_products,
                    methods=["POST"],
                ),
            ]
        )

    async def _sloppy_products(self, request: Request) -> JSONResponse:
        """Verifies the signature like everyone, then answers by hand, mistakes and all."""
        body = await request.body()
        try:
            verify_request(request.headers, body, self.secrets[SLOPPY])
        except VerificationError as exc:
            return JSONResponse({"error": exc.code}, status_code=401)
        return JSONResponse(SLOPPY_REPLY)

    def _receiver(self, tenant: str, backend: GroceryBackend) -> Starlette:
        return create_receiver_app(
            secret=lambda: self.secrets[tenant],
            check_products=backend.check_products,
            cart_operation=backend.cart_operation,
            load_cart=backend.load_cart,
        )
