"""Test-fire against a tenant whose reply holds a lone surrogate or a huge number: HTTP 200
with the report (the entry judged by the documented limits), never a 500."""

from __future__ import annotations

import httpx
import pytest
import respx

from .support import SHOP_A, TEST_FIRE, Admin, bearer

PRODUCTS = f"{SHOP_A}/vizochok/products"
CART = f"{SHOP_A}/vizochok/cart"
CART_ITEMS = f"{SHOP_A}/vizochok/cart/items"

LABEL = "milk-001: promo_label is not valid Unicode (it holds a lone surrogate); label dropped"


@pytest.mark.parametrize(
    ("reply", "available", "problems"),
    [
        (
            b'{"products":[{"sku":"milk-001","price":45.9,"in_stock":true,'
            b'"promo_price":40,"promo_label":"\\ud800"}]}',
            [{"sku": "milk-001", "price": "45.9", "promo_price": "40", "promo_label": None}],
            [LABEL],
        ),
        (
            b'{"products":[{"sku":"milk-001","price":1E+100000000,"in_stock":true},'
            b'{"sku":"bread-042","price":12.5,"in_stock":true}]}',
            [{"sku": "bread-042", "price": "12.5", "promo_price": None, "promo_label": None}],
            ["milk-001: price must be at most 1000000000"],
        ),
        (
            b'{"products":[{"sku":"\\ud800\\u0000","price":1,"in_stock":true}]}',
            [],
            ["products[0]: sku '\\ud800\\x00' was not requested; ignored"],
        ),
    ],
    ids=["lone surrogate label", "price 1E+100000000", "lone surrogate sku"],
)
async def test_products_test_fire_reports_a_hostile_reply(
    admin: Admin, router: respx.Router, reply: bytes, available: list[object], problems: list[str]
) -> None:
    """Test-fire: the hostile products reply is reported with 200, its problems named."""
    issued, _ = await admin.configured("shop-a")
    router.post(PRODUCTS).mock(return_value=httpx.Response(200, content=reply))
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True and report["detail"] is None
    assert report["result"]["available"] == available
    assert report["problems"] == problems


async def test_cart_test_fire_reports_a_lone_surrogate_reason(
    admin: Admin, router: respx.Router
) -> None:
    """Test-fire of the cart webhook: a reason "\\ud800" is reported as "rejected", 200."""
    issued, _ = await admin.configured("shop-a")
    router.post(CART).mock(
        return_value=httpx.Response(200, content=b'{"ok":false,"reason":"\\ud800"}')
    )
    response = await admin.client.post(
        TEST_FIRE, headers=bearer(issued.key), json={"webhook": "cart"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["result"] == {"ok": False, "reason": "rejected"}
    assert report["problems"] == [
        'reason is not valid Unicode (it holds a lone surrogate); "rejected" given'
    ]


async def test_cart_get_test_fire_reports_hostile_lines(admin: Admin, router: respx.Router) -> None:
    """Test-fire of the cart GET: lines with a lone surrogate or a huge quantity are dropped."""
    issued, _ = await admin.configured("shop-a")
    router.get(url__startswith=CART_ITEMS).mock(
        return_value=httpx.Response(
            200,
            content=b'{"items":[{"sku":"\\ud800","name":"A","price":1,"quantity":1},'
            b'{"sku":"b","name":"B","price":1,"quantity":1E+100000000},'
            b'{"sku":"c","name":"C","price":2.5,"quantity":0.5,"unit":"kg"}]}',
        )
    )
    response = await admin.client.post(
        TEST_FIRE, headers=bearer(issued.key), json={"webhook": "cart_get"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["result"]["loaded"] is True
    assert [item["sku"] for item in report["result"]["items"]] == ["c"]
    assert report["problems"] == [
        "items[0]: sku is not valid Unicode (it holds a lone surrogate)",
        "items[1]: b: quantity must be at most 1000000",
    ]
