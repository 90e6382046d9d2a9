"""POST /api/v1/admin/webhooks/test (webhooks.md §7): a real, signed call through the production
path, reported with status, latency, attempts, the parsed result and every problem; limited
per tenant."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from vizochok_dispatch.receiver import verify_request

from .support import SHOP_A, SHOP_B, TEST_FIRE, WEBHOOKS, Admin, bearer

PRODUCTS = f"{SHOP_A}/vizochok/products"
CART = f"{SHOP_A}/vizochok/cart"
CART_ITEMS = f"{SHOP_A}/vizochok/cart/items"


async def test_products_report_has_url_status_attempts_result_and_problems(
    admin: Admin, router: respx.Router
) -> None:
    """Test-fire: the report shows where it went, the 200, one attempt, offers and problems."""
    issued, saved = await admin.configured("shop-a")
    seen: list[httpx.Request] = []

    def tenant(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "products": [
                    {"sku": "milk-001", "price": 45.9, "in_stock": True},
                    {"sku": "milk-002", "price": "52.00", "in_stock": True},
                ]
            },
        )

    router.post(PRODUCTS).mock(side_effect=tenant)
    response = await admin.client.post(
        TEST_FIRE, headers=bearer(issued.key), json={"skus": ["milk-001", "milk-002"]}
    )
    assert response.status_code == 200
    report = response.json()
    assert report["webhook"] == "products" and report["url"] == PRODUCTS
    assert report["ok"] is True and report["status"] == 200 and report["detail"] is None
    assert report["latency_ms"] >= 0 and report["delivery_id"]
    assert [(a["number"], a["status"], a["detail"]) for a in report["attempts"]] == [(1, 200, None)]
    assert report["result"] == {
        "available": [
            {"sku": "milk-001", "price": "45.9", "promo_price": None, "promo_label": None}
        ],
        "unavailable": ["milk-002"],
    }
    assert report["problems"] == ["milk-002: price is a string, not a number"]
    sent = seen[0]
    assert json.loads(sent.content) == {
        "skus": ["milk-001", "milk-002"],
        "store_id": "vizochok-test",
    }
    verify_request(sent.headers, sent.content, saved["secret"], now=admin.time.now)


async def test_default_request_uses_sample_skus(admin: Admin, router: respx.Router) -> None:
    """Test-fire: with no body it asks products_url for the sample SKUs."""
    issued, _ = await admin.configured("shop-a")
    route = router.post(PRODUCTS).mock(return_value=httpx.Response(200, json={"products": []}))
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    assert response.json()["ok"] is True
    assert json.loads(route.calls[0].request.content)["skus"] == ["milk-001", "bread-042"]
    assert response.json()["result"]["unavailable"] == ["milk-001", "bread-042"]


async def test_a_5xx_is_retried_once_as_in_production(admin: Admin, router: respx.Router) -> None:
    """Test-fire: the production retry rule: 503, a 1 s wait, then 200; both attempts shown."""
    issued, _ = await admin.configured("shop-a")
    router.post(PRODUCTS).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"products": []})]
    )
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert [(a["status"], a["detail"]) for a in report["attempts"]] == [
        (503, "http_status"),
        (200, None),
    ]
    assert report["ok"] is True
    assert admin.time.sleeps == [1.0]


@pytest.mark.parametrize(
    ("reply", "detail", "problem"),
    [
        (
            httpx.Response(404),
            "http_status",
            "http_status: HTTP 404 (only 200 counts as an answer)",
        ),
        (httpx.Response(200, text="<html>"), "invalid_response", "body is not JSON"),
        (
            httpx.Response(200, json={"items": []}),
            "invalid_response",
            'body has no "products" list',
        ),
        (httpx.ConnectError("refused"), "connect_error", "connect_error: could not connect"),
        (httpx.ReadTimeout("slow"), "timeout", "timeout: no complete response"),
    ],
)
async def test_failures_are_reported_with_detail_and_a_readable_problem(
    admin: Admin, router: respx.Router, reply: object, detail: str, problem: str
) -> None:
    """Test-fire: every failure kind comes back as ok=false, its detail, and a problem line."""
    issued, _ = await admin.configured("shop-a")
    router.post(PRODUCTS).mock(
        **({"side_effect": reply} if isinstance(reply, Exception) else {"return_value": reply})
    )
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    assert response.status_code == 200
    report = response.json()
    assert report["ok"] is False and report["detail"] == detail
    assert any(line.startswith(problem) for line in report["problems"]), report["problems"]
    assert len(report["attempts"]) == 1


async def test_cart_test_is_a_signed_clear_on_a_test_session(
    admin: Admin, router: respx.Router
) -> None:
    """Test-fire cart: `clear` on a fresh vizochok-test-… session, signed, reply reported."""
    issued, saved = await admin.configured("shop-a")
    route = router.post(CART).mock(
        return_value=httpx.Response(200, json={"ok": False, "reason": "store_closed"})
    )
    report = (
        await admin.client.post(TEST_FIRE, headers=bearer(issued.key), json={"webhook": "cart"})
    ).json()
    sent = route.calls[0].request
    body = json.loads(sent.content)
    assert body["action"] == "clear" and body["store_id"] == "vizochok-test"
    assert body["session_id"].startswith("vizochok-test-") and len(body["session_id"]) > 16
    verify_request(sent.headers, sent.content, saved["secret"], now=admin.time.now)
    assert report["ok"] is True  # the webhook answered by the contract; the shop said no
    assert report["result"] == {"ok": False, "reason": "store_closed"}
    assert report["url"] == CART


async def test_cart_get_test_sends_the_query_and_reports_items(
    admin: Admin, router: respx.Router
) -> None:
    """Test-fire cart_get: a signed GET with store_id and session_id; bad items are problems."""
    issued, saved = await admin.configured("shop-a")
    route = router.get(CART_ITEMS).mock(
        return_value=httpx.Response(
            200,
            json={
                "items": [
                    {"sku": "milk-001", "name": "Milk", "price": 45.9, "quantity": 2},
                    {"sku": "bread-042", "name": "Bread", "price": -1, "quantity": 1},
                ]
            },
        )
    )
    report = (
        await admin.client.post(
            TEST_FIRE,
            headers=bearer(issued.key),
            json={"webhook": "cart_get", "store_id": "store-7"},
        )
    ).json()
    sent = route.calls[0].request
    assert sent.url.params["store_id"] == "store-7"
    assert sent.url.params["session_id"].startswith("vizochok-test-")
    verify_request(sent.headers, b"", saved["secret"], now=admin.time.now)
    assert report["ok"] is True
    assert report["result"] == {
        "loaded": True,
        "items": [
            {"sku": "milk-001", "name": "Milk", "price": "45.9", "quantity": "2", "unit": None}
        ],
    }
    assert report["problems"] == ["items[1]: bread-042: price must not be negative"]


async def test_cart_get_without_a_url_is_409(admin: Admin, router: respx.Router) -> None:
    """Test-fire cart_get: no cart_get_url configured is a 409, and nothing is sent."""
    issued, _ = await admin.configured("shop-a", cart_get_url=None)
    response = await admin.client.post(
        TEST_FIRE, headers=bearer(issued.key), json={"webhook": "cart_get"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_configured"
    assert not router.calls


async def test_test_fire_before_any_config_is_409(admin: Admin) -> None:
    """Test-fire: a tenant with no webhooks gets 409 not_configured."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key))
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook": "orders"}, "webhook"),
        ({"skus": []}, "skus"),
        ({"skus": ["a"] * 21}, "skus"),
        ({"skus": [""]}, "skus[0]"),
        ({"store_id": 5}, "store_id"),
        ({"url": "https://elsewhere.example"}, "url"),
    ],
)
async def test_a_bad_test_request_is_a_field_level_422(
    admin: Admin, router: respx.Router, body: dict[str, object], field: str
) -> None:
    """Test-fire: a bad body (unknown webhook, SKU limits, a URL) is refused; nothing sent."""
    issued, _ = await admin.configured("shop-a")
    response = await admin.client.post(TEST_FIRE, headers=bearer(issued.key), json=body)
    assert response.status_code == 422
    assert field in {f["field"] for f in response.json()["error"]["fields"]}
    assert not router.calls


async def test_test_fire_is_rate_limited_per_tenant(admin: Admin, router: respx.Router) -> None:
    """Rate limit: 10 a minute per tenant, then 429 with Retry-After; others unaffected."""
    key_a, _ = await admin.configured("shop-a", SHOP_A)
    key_b, _ = await admin.configured("shop-b", SHOP_B)
    route = router.post(url__regex=r".*/vizochok/products").mock(
        return_value=httpx.Response(200, json={"products": []})
    )
    statuses = [
        (await admin.client.post(TEST_FIRE, headers=bearer(key_a.key))).status_code
        for _ in range(10)
    ]
    assert statuses == [200] * 10
    limited = await admin.client.post(TEST_FIRE, headers=bearer(key_a.key))
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "6"
    assert limited.json()["error"]["code"] == "rate_limited"
    assert route.call_count == 10, "a limited test-fire must not send anything"
    assert (await admin.client.post(TEST_FIRE, headers=bearer(key_b.key))).status_code == 200

    admin.time.now += 6
    assert (await admin.client.post(TEST_FIRE, headers=bearer(key_a.key))).status_code == 200
    assert (await admin.client.post(TEST_FIRE, headers=bearer(key_a.key))).status_code == 429


async def test_test_fire_shares_the_production_circuit_breaker(
    admin: Admin, router: respx.Router
) -> None:
    """Test-fire: it shares the dispatcher's breaker; after 5 failures it reports circuit_open."""
    issued, _ = await admin.configured("shop-a")
    route = router.post(PRODUCTS).mock(return_value=httpx.Response(500))
    for _ in range(5):
        report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
        assert report["detail"] == "http_status"
    calls = route.call_count
    report = (await admin.client.post(TEST_FIRE, headers=bearer(issued.key))).json()
    assert report["detail"] == "circuit_open" and report["attempts"] == []
    assert route.call_count == calls
    shown = (await admin.client.get(WEBHOOKS, headers=bearer(issued.key))).json()
    assert shown["circuits"]["products"] == "open"
