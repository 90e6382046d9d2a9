"""A tenant that copied the public docs' FastAPI verifier (seed 001) accepts our requests.

Everything between the ``--- seed 001 ---`` markers is the docs' example as published, with
only ``db`` supplied (the docs leave it to the reader) and the secret set.  It runs under
uvicorn on 127.0.0.1 and the real dispatcher calls it with real clocks.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

import pytest
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import TENANT, dispatcher_for

pytestmark = pytest.mark.loopback


@dataclass
class _Row:
    price: float
    stock: int
    promo_price: float | None = None
    promo_label: str | None = None


class _Db:
    """The docs' ``db``: three products, one out of stock, one on promotion."""

    rows: ClassVar[dict[str, _Row]] = {
        "milk-001": _Row(45.90, 10),
        "milk-002": _Row(52.00, 5, 42.00, "-19%"),
        "milk-003": _Row(38.50, 0),
    }

    async def get_product(self, sku: str, store_id: str) -> _Row | None:
        del store_id
        return self.rows.get(sku)


db = _Db()

# --- seed 001 (the public docs' FastAPI handler example) ----------------------------------
app = FastAPI()

WEBHOOK_SECRET = "whsec_docs_example_secret_0001"


def verify_signature(request: Request, body: bytes):
    sig_header = request.headers.get("x-vizochok-signature", "")
    timestamp = request.headers.get("x-vizochok-timestamp", "")

    if not sig_header.startswith("sha256="):
        raise HTTPException(401, "Missing signature")

    # Check timestamp (5-minute tolerance)
    if timestamp:
        if abs(time.time() - int(timestamp)) > 300:
            raise HTTPException(401, "Timestamp expired")
        signed_payload = f"{timestamp}.".encode() + body
    else:
        signed_payload = body

    expected = hmac.new(WEBHOOK_SECRET.encode(), signed_payload, hashlib.sha256).hexdigest()

    if not hmac.compare_digest(sig_header[7:], expected):
        raise HTTPException(401, "Invalid signature")


class CheckProductsRequest(BaseModel):
    skus: list[str]
    store_id: str


@app.post("/api/vizochok/check-products")
async def check_products(req: CheckProductsRequest, request: Request):
    body = await request.body()
    verify_signature(request, body)

    # Look up products in your database
    products = []
    for sku in req.skus:
        product = await db.get_product(sku, store_id=req.store_id)
        if product:
            item = {
                "sku": sku,
                "price": product.price,
                "in_stock": product.stock > 0,
            }
            if product.promo_price:
                item["promo_price"] = product.promo_price
                item["promo_label"] = product.promo_label
            products.append(item)

    return {"products": products}


# --- end of seed 001 ----------------------------------------------------------------------


@app.get("/api/vizochok/cart/items")
async def cart_items(request: Request):
    """Not in seed 001: the same ``verify_signature`` applied to the cart GET's empty body."""
    verify_signature(request, await request.body())
    return {"items": [{"sku": "milk-001", "name": "Молоко", "price": 45.90, "quantity": 2}]}


@app.post("/api/vizochok/cart")
async def cart(request: Request):
    """Not in seed 001: the same ``verify_signature`` on a cart body."""
    verify_signature(request, await request.body())
    return {"ok": True}


async def test_the_docs_verifier_accepts_the_dispatchers_products_call() -> None:
    """Seed 001's verifier accepts a real products request; the reply is read per webhooks.md §4."""
    async with (
        serve_on_loopback(app) as base,
        dispatcher_for(base, secret=WEBHOOK_SECRET) as dispatcher,
    ):
        result, delivery = await dispatcher.check_products_with_delivery(
            TENANT, skus=["milk-001", "milk-002", "milk-003", "milk-404"], store_id="store-1"
        )
    assert delivery is not None
    assert [a.status for a in delivery.attempts] == [200]
    assert [(o.sku, o.price, o.promo_price) for o in result.available] == [
        ("milk-001", Decimal("45.9"), None),
        ("milk-002", Decimal("52.0"), Decimal("42.0")),
    ]
    assert result.unavailable == ("milk-003", "milk-404")


async def test_the_docs_verifier_accepts_cart_calls_and_the_empty_get_body() -> None:
    """The same verifier accepts a signed cart POST (UTF-8 name) and a GET over ``"{ts}."``."""
    async with (
        serve_on_loopback(app) as base,
        dispatcher_for(base, secret=WEBHOOK_SECRET) as dispatcher,
    ):
        added = await dispatcher.cart_add(
            TENANT,
            store_id="store-1",
            session_id="user-123",
            sku="milk-001",
            name="Молоко Lactel 2.5%",
            quantity=1,
            price="45.90",
        )
        loaded = await dispatcher.load_cart(TENANT, store_id="store-1", session_id="user-123")
    assert added.as_payload() == {"ok": True}
    assert loaded.loaded
    assert [(i.sku, i.quantity) for i in loaded.items] == [("milk-001", Decimal(2))]


async def test_the_docs_verifier_refuses_another_secret() -> None:
    """Control: with a different secret the docs' verifier answers 401, so the check is real."""
    async with (
        serve_on_loopback(app) as base,
        dispatcher_for(base, secret="whsec_someone_elses_secret_01") as dispatcher,
    ):
        result, delivery = await dispatcher.check_products_with_delivery(
            TENANT, skus=["milk-001"], store_id="store-1"
        )
    assert delivery is not None
    assert [a.status for a in delivery.attempts] == [401]
    assert result.unavailable == ("milk-001",)
