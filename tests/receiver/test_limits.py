"""The receiver kit applies the dispatcher's own limits to amounts and text.

A request body outside them gets a 422 naming the field (the callback is not called); a
value a tenant builds outside them fails in the tenant's own code.  Both sides share one
implementation, so what the dispatcher sends the kit accepts, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from vizochok_dispatch import InvalidCall
from vizochok_dispatch.receiver import CartLine, CartReply, Product
from vizochok_dispatch.receiver._parse import InvalidRequest, cart_operation, load_json
from vizochok_dispatch.webhooks import _cart

from ._support import CART_ITEMS_PATH, CART_PATH, PRODUCTS_PATH, RecordingTenant, signed_headers


@pytest.fixture
def tenant() -> RecordingTenant:
    return RecordingTenant()


@pytest.fixture
async def client(tenant: RecordingTenant) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tenant.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as client:
        yield client


def add(**literals: str) -> bytes:
    """A cart add body with the given fields as raw JSON texts."""
    fields = {
        "action": '"add"',
        "store_id": '"s"',
        "session_id": '"u"',
        "sku": '"milk-001"',
        "name": '"Milk"',
        "quantity": "1",
        "price": "45.9",
    } | literals
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


@pytest.mark.parametrize(
    ("literals", "field", "message"),
    [
        ({"quantity": "1E+100000000"}, "quantity", "must be at most 1000000"),
        ({"quantity": "0.0001"}, "quantity", "must have at most 3 decimal places"),
        ({"quantity": "1" * 5000}, "quantity", "must be at most 1000000"),
        ({"price": "1E+100000000"}, "price", "must be at most 1000000000"),
        ({"price": "0.00001"}, "price", "must have at most 4 decimal places"),
        ({"sku": '"\\ud800"'}, "sku", "is not valid Unicode (it holds a lone surrogate)"),
        ({"sku": '"a\\u0000"'}, "sku", "must not contain control characters"),
        ({"sku": '"' + "s" * 257 + '"'}, "sku", "must be at most 256 characters"),
        ({"name": '"' + "n" * 513 + '"'}, "name", "must be at most 512 characters"),
        ({"name": '"\\udfff"'}, "name", "is not valid Unicode (it holds a lone surrogate)"),
        ({"store_id": '"' + "s" * 257 + '"'}, "store_id", "must be at most 256 characters"),
        (
            {"session_id": '"\\ud800"'},
            "session_id",
            "is not valid Unicode (it holds a lone surrogate)",
        ),
    ],
)
async def test_cart_bodies_outside_the_limits_get_422(
    client, tenant, literals, field, message
) -> None:
    """webhooks.md §5 with the documented limits: 422 naming the field; the callback not called."""
    body = add(**literals)
    response = await client.post(CART_PATH, content=body, headers=signed_headers(body))
    assert response.status_code == 422, response.text
    assert {"field": field, "message": message} in response.json()["fields"]
    assert tenant.calls == 0


async def test_products_bodies_outside_the_limits_get_422(client, tenant) -> None:
    """A SKU or store_id outside the text limits is a 422 naming it."""
    body = b'{"skus":["ok","\\ud800","' + b"s" * 257 + b'"],"store_id":"s"}'
    response = await client.post(PRODUCTS_PATH, content=body, headers=signed_headers(body))
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == ["skus[1]", "skus[2]"]
    assert tenant.calls == 0


async def test_cart_queries_outside_the_limits_get_422(client, tenant) -> None:
    """A store_id or session_id longer than 256 characters is a 422."""
    query = "?store_id=" + "s" * 257 + "&session_id=u"
    response = await client.get(CART_ITEMS_PATH + query, headers=signed_headers(b""))
    assert response.status_code == 422
    assert response.json()["fields"] == [
        {"field": "store_id", "message": "must be at most 256 characters"}
    ]
    assert tenant.calls == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Product(sku="a", price=Decimal("1E+100000000"), in_stock=True),
            "price must be at most",
        ),
        (lambda: Product(sku="a", price=Decimal(10**5000), in_stock=True), "price must be at most"),
        (
            lambda: Product(sku="a", price=10**5000, in_stock=True),  # type: ignore[arg-type]
            "price must be at most",  # an int, as the models allow, checked before converting
        ),
        (
            lambda: Product(sku="a", price=Decimal("0.00001"), in_stock=True),
            "price must have at most 4",
        ),
        (
            lambda: Product(
                sku="a", price=Decimal(2), in_stock=True, promo_price=Decimal("1.00001")
            ),
            "promo_price must have at most 4",
        ),
        (
            lambda: Product(sku="\ud800", price=Decimal(1), in_stock=True),
            "sku is not valid Unicode",
        ),
        (lambda: Product(sku="a\x00", price=Decimal(1), in_stock=True), "sku must not contain"),
        (
            lambda: Product(sku="a", price=Decimal(1), in_stock=True, promo_label="\ud800"),
            "promo_label is not valid Unicode",
        ),
        (lambda: CartReply.refused("out\ud800of_stock"), "reason is not valid Unicode"),
        (
            lambda: CartLine(sku="a", name="n", price=Decimal(1), quantity=Decimal("0.0001")),
            "quantity must have at most 3",
        ),
        (
            lambda: CartLine(sku="a", name="n", price=Decimal(1), quantity=Decimal(1_000_001)),
            "quantity must be at most",
        ),
        (
            lambda: CartLine(sku="a", name="n" * 513, price=Decimal(1), quantity=Decimal(1)),
            "name must be at most 512",
        ),
        (
            lambda: CartLine(
                sku="a", name="n", price=Decimal(1), quantity=Decimal(1), unit="u" * 33
            ),
            "unit must be at most 32",
        ),
        (
            lambda: CartLine(
                sku="a", name="n", price=Decimal(1), quantity=Decimal(1), unit="\udfff"
            ),
            "unit is not valid Unicode",
        ),
    ],
)
def test_tenant_values_outside_the_limits_fail_where_they_are_built(build, message) -> None:
    """A Product, CartReply or CartLine outside the limits raises in the tenant's code."""
    with pytest.raises(ValueError, match=message):
        build()


def test_tenant_values_at_the_limits_are_kept() -> None:
    """The edges are inside: 10^9 with 4 places, 10^6 with 3, 256-character SKUs, empty names."""
    product = Product(sku="s" * 256, price=Decimal("999999999.9999"), in_stock=True)
    line = CartLine(sku="a", name="", price=Decimal(10**9), quantity=Decimal("999999.999"))
    assert product.price == Decimal("999999999.9999")
    assert line.quantity == Decimal("999999.999")
    assert CartReply.refused("r" * 200).reason == "r" * 200


AMOUNTS = [
    "1",
    "0.001",
    "0.0001",
    "999999.999",
    "1000000",
    "1000000.001",
    "1E+100000000",
    "1E-100000000",
    "2.5000000",
    "0",
    "-1",
    "NaN",
]


@pytest.mark.parametrize("literal", AMOUNTS)
def test_the_dispatcher_and_the_kit_accept_the_same_quantities_and_prices(literal) -> None:
    """One implementation: a quantity or price is sendable exactly when the kit accepts it."""
    for field in ("quantity", "price"):
        others = {"quantity": 1, "price": 1} | {field: Decimal(literal)}
        try:
            _cart.operation_body("add", store_id="s", session_id="u", sku="a", name="n", **others)
            sendable = True
        except InvalidCall:
            sendable = False
        try:
            cart_operation(load_json(add(**{field: literal})), "d-1")
            accepted = True
        except InvalidRequest:
            accepted = False
        assert sendable == accepted, (field, literal)


def test_what_the_dispatcher_sends_the_kit_reads_back_exactly() -> None:
    """A body built by the dispatcher at the limits is read back to the same values."""
    body = _cart.operation_body(
        "add",
        store_id="s" * 256,
        session_id="u",
        sku="\u0416" * 256,
        name="n" * 512,
        quantity=Decimal("999999.999"),
        price="999999999.9999",
    )
    operation = cart_operation(load_json(body), "d-1")
    assert json.loads(body)["sku"] == operation.sku  # type: ignore[union-attr]
    assert (operation.quantity, operation.price) == (  # type: ignore[union-attr]
        Decimal("999999.999"),
        Decimal("999999999.9999"),
    )
