"""docs/webhooks.md §5 and §6: cart operations and loading an existing cart."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from tests.dispatch.conftest import CART_GET_URL, CART_URL
from vizochok_dispatch import ATTEMPT_HEADER, CartItem, InvalidCall


async def test_operation_bodies_carry_exactly_the_contract_fields(dispatcher, router):
    """add, remove, update and clear each send their documented fields, in order."""
    route = router.post(CART_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    common = {"store_id": "store-1", "session_id": "user-123"}
    await dispatcher.cart_add(
        "t1", **common, sku="milk-001", name="Молоко Lactel 2.5%", quantity=1, price=45.9
    )
    await dispatcher.cart_remove("t1", **common, sku="milk-001")
    await dispatcher.cart_update("t1", **common, sku="cheese", quantity=Decimal("0.35"))
    await dispatcher.cart_clear("t1", **common)
    bodies = [call.request.content for call in route.calls]
    assert (
        bodies[0]
        == (
            '{"action":"add","store_id":"store-1","session_id":"user-123","sku":"milk-001",'
            '"name":"Молоко Lactel 2.5%","quantity":1,"price":45.9}'
        ).encode()
    )
    assert json.loads(bodies[1]) == {"action": "remove", **common, "sku": "milk-001"}
    assert bodies[2].endswith(b'"quantity":0.35}')
    assert json.loads(bodies[3]) == {"action": "clear", **common}
    assert list(json.loads(bodies[0])) == [
        "action",
        "store_id",
        "session_id",
        "sku",
        "name",
        "quantity",
        "price",
    ]


@pytest.mark.parametrize(
    ("reply", "payload"),
    [
        ({"ok": True}, {"ok": True}),
        ({"ok": False, "reason": "out_of_stock"}, {"ok": False, "reason": "out_of_stock"}),
        (
            {"ok": False, "reason": "max_quantity_exceeded"},
            {"ok": False, "reason": "max_quantity_exceeded"},
        ),
        ({"ok": False}, {"ok": False, "reason": "rejected"}),
        ({"ok": False, "reason": 42}, {"ok": False, "reason": "rejected"}),
        ({"ok": False, "reason": ""}, {"ok": False, "reason": "rejected"}),
    ],
)
async def test_tenant_answers_are_passed_on(dispatcher, router, reply, payload):
    """The tenant's ok/reason reaches the AI as given; ok:false without a reason is rejected."""
    router.post(CART_URL).mock(return_value=httpx.Response(200, json=reply))
    result = await dispatcher.cart_clear("t1", store_id="s", session_id="x")
    assert result.as_payload() == payload
    assert result.detail is None


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(200, content=b"nope"), "invalid_response"),
        (httpx.Response(200, json={"ok": "yes"}), "invalid_response"),
        (httpx.Response(200, json=[True]), "invalid_response"),
        (httpx.Response(404), "http_status"),
        (httpx.ConnectError("refused"), "connect_error"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
    ids=["not-json", "ok-not-bool", "not-object", "404", "refused", "timeout"],
)
async def test_every_delivery_failure_is_webhook_timeout(dispatcher, router, response, detail):
    """Any failure is {"ok": false, "reason": "webhook_timeout"}, with the detail kept beside it."""
    router.post(CART_URL).mock(side_effect=[response])
    result = await dispatcher.cart_remove("t1", store_id="s", session_id="x", sku="a")
    assert result.as_payload() == {"ok": False, "reason": "webhook_timeout"}
    assert result.detail == detail


async def test_cart_5xx_is_retried_with_the_same_delivery(dispatcher, router, fake_time):
    """A cart 503 is retried once, so the tenant sees attempt 1 then 2 of one delivery."""
    route = router.post(CART_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"ok": True})]
    )
    result = await dispatcher.cart_add(
        "t1", store_id="s", session_id="x", sku="a", name="A", quantity=2, price="3.10"
    )
    assert result.ok
    assert [c.request.headers[ATTEMPT_HEADER] for c in route.calls] == ["1", "2"]
    assert fake_time.sleeps == [1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quantity": 0},
        {"quantity": -1},
        {"quantity": float("nan")},
        {"quantity": True},
        {"quantity": "lots"},
        {"price": -0.01},
        {"price": float("inf")},
        {"sku": ""},
        {"name": None},
        {"session_id": ""},
    ],
)
async def test_bad_operation_arguments_raise_before_sending(dispatcher, router, kwargs):
    """quantity must be > 0, price >= 0 and finite, ids non-empty: else InvalidCall, no request."""
    route = router.route().mock(return_value=httpx.Response(200, json={"ok": True}))
    args = {
        "store_id": "s",
        "session_id": "x",
        "sku": "a",
        "name": "A",
        "quantity": 1,
        "price": 1,
        **kwargs,
    }
    with pytest.raises(InvalidCall):
        await dispatcher.cart_add("t1", **args)
    assert route.call_count == 0


async def test_fractional_quantity_for_goods_sold_by_weight(dispatcher, router):
    """A fractional quantity is sent exactly (0.35 kg stays 0.35)."""
    route = router.post(CART_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    await dispatcher.cart_update("t1", store_id="s", session_id="x", sku="cheese", quantity=0.35)
    assert json.loads(route.calls[0].request.content)["quantity"] == 0.35


async def test_load_cart_is_a_signed_get_with_the_query_added(dispatcher, router):
    """GET cart_get_url?store_id=&session_id=, URL-encoded, empty body, no Content-Type."""
    await dispatcher.store.save_config("t1", cart_get_url=CART_GET_URL + "?tenant=x")
    route = router.get(url__startswith=CART_GET_URL).mock(
        return_value=httpx.Response(200, json={"items": []})
    )
    load = await dispatcher.load_cart("t1", store_id="store 1", session_id="user&123")
    request = route.calls[0].request
    assert request.method == "GET" and request.content == b""
    assert dict(request.url.params) == {
        "tenant": "x",
        "store_id": "store 1",
        "session_id": "user&123",
    }
    assert "content-type" not in request.headers
    assert load.loaded and load.items == ()


async def test_loaded_items_keep_valid_ones_and_drop_bad_ones(dispatcher, router):
    """Invalid items are dropped one by one; money and quantities are Decimal."""
    items = [
        {"sku": "bread-01", "name": "Хліб", "price": 32.00, "quantity": 1, "unit": "pcs"},
        {"sku": "cheese", "name": "Cheese", "price": 410.5, "quantity": 0.35},
        {"sku": "bad-price", "name": "X", "price": "1", "quantity": 1},
        {"sku": "bad-qty", "name": "X", "price": 1, "quantity": 0},
        {"sku": "no-name", "price": 1, "quantity": 1},
        {"sku": "bad-unit", "name": "X", "price": 1, "quantity": 1, "unit": 5},
        "not an object",
    ]
    router.get(url__startswith=CART_GET_URL).mock(
        return_value=httpx.Response(200, json={"items": items})
    )
    load = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert load.loaded and load.failure is None
    assert load.items == (
        CartItem("bread-01", "Хліб", Decimal("32.0"), Decimal(1), "pcs"),
        CartItem("cheese", "Cheese", Decimal("410.5"), Decimal("0.35"), None),
    )
    assert len(load.problems) == 5


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (httpx.Response(200, json={"products": []}), "invalid_response"),
        (httpx.Response(200, content=b"<html>"), "invalid_response"),
        (httpx.Response(500), "http_status"),
        (httpx.ConnectError("refused"), "connect_error"),
    ],
    ids=["wrong-shape", "not-json", "500", "refused"],
)
async def test_a_failed_load_is_never_an_empty_cart(dispatcher, router, response, detail):
    """A failure says loaded=False with its detail, so nobody shows it as an empty cart."""
    router.get(url__startswith=CART_GET_URL).mock(side_effect=[response, response])
    load = await dispatcher.load_cart("t1", store_id="s", session_id="x")
    assert (load.loaded, load.items, load.failure) == (False, (), detail)
