"""POST /api/v1/admin/webhooks/check (issue 15 §1): the conformance run against the key's
tenant's configured webhooks, from the server (SSRF guard on), limited per tenant."""

from __future__ import annotations

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from vizochok_dispatch.demo._shop import GroceryBackend
from vizochok_dispatch.receiver import create_receiver_app
from vizochok_dispatch.webhooks._conformance import FROM_SERVER

from .support import SHOP_A, SHOP_B, Admin, absent, bearer

CHECK = "/api/v1/admin/webhooks/check"


def _urls(base: str) -> dict[str, object]:
    return {
        "products_url": f"{base}/api/vizochok/check-products",
        "cart_url": f"{base}/api/vizochok/cart",
        "cart_get_url": f"{base}/api/vizochok/cart/items",
    }


def _serve_receiver_kit(router: respx.Router, base: str, secrets: dict[str, str]) -> None:
    """``base`` answered by the receiver kit's app (the demo's good shop), in process."""
    backend = GroceryBackend()
    app = create_receiver_app(
        secret=lambda: secrets["current"],
        check_products=backend.check_products,
        cart_operation=backend.cart_operation,
        load_cart=backend.load_cart,
    )
    kit = httpx.ASGITransport(app=app)

    async def forward(request: httpx.Request) -> httpx.Response:
        answer = await kit.handle_async_request(request)
        body = await answer.aread()
        return httpx.Response(answer.status_code, headers=answer.headers, content=body)

    router.route(url__startswith=base).mock(side_effect=forward)


async def test_check_runs_against_the_key_tenants_webhooks_only(
    admin: Admin, router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    """The receiver kit passes every check; only the key's tenant's URLs are called, and its
    secret is neither in the report nor in the logs."""
    secrets: dict[str, str] = {}
    _serve_receiver_kit(router, SHOP_A, secrets)
    other = router.route(url__startswith=SHOP_B).mock(return_value=httpx.Response(500))
    key_a, saved = await admin.configured("shop-a", SHOP_A, **_urls(SHOP_A))
    await admin.configured("shop-b", SHOP_B, **_urls(SHOP_B))
    secrets["current"] = saved["secret"]

    with capture_logs() as logs:
        response = await admin.client.post(CHECK, headers=bearer(key_a.key), json={})
    assert response.status_code == 200, response.text
    assert any(entry["event"] == "admin.check" for entry in logs)
    report = response.json()
    assert report["ok"] is True, [c for c in report["checks"] if c["status"] != "passed"]
    assert report["where"] == FROM_SERVER
    assert report["failed"] == 0 and report["passed"] == len(report["checks"]) == 12
    assert not other.called
    assert absent(saved["secret"], response.text, logs, caplog.text)


async def test_a_forging_tenant_fails_the_security_checks_through_the_api(
    admin: Admin, router: respx.Router
) -> None:
    """A backend that answers 200 to anything fails the four signature refusals."""
    router.post(url__regex=r".*/check-products").mock(
        return_value=httpx.Response(200, json={"products": []})
    )
    router.post(url__regex=r".*/cart$").mock(return_value=httpx.Response(200, json={"ok": True}))
    key, _ = await admin.configured("shop-a", SHOP_A, **{**_urls(SHOP_A), "cart_get_url": None})
    response = await admin.client.post(
        CHECK, headers=bearer(key.key), json={"sells_by_weight": False}
    )
    report = response.json()
    failed = {c["name"] for c in report["checks"] if c["status"] == "failed"}
    assert failed == {
        "security.forged_signature",
        "security.body_changed",
        "security.stale_timestamp",
        "security.missing_signature",
    }
    skipped = {c["name"] for c in report["checks"] if c["status"] == "skipped"}
    assert skipped == {"cart.fractional_quantity", "cart_get.query_ids"}


async def test_check_is_rate_limited_per_tenant(admin: Admin, router: respx.Router) -> None:
    """Two checks a minute per tenant, then 429 with Retry-After and nothing sent; another
    tenant is unaffected."""
    route = router.route(url__startswith=SHOP_A).mock(return_value=httpx.Response(404))
    router.route(url__startswith=SHOP_B).mock(return_value=httpx.Response(404))
    key_a, _ = await admin.configured("shop-a", SHOP_A)
    key_b, _ = await admin.configured("shop-b", SHOP_B)
    first = await admin.client.post(CHECK, headers=bearer(key_a.key))
    second = await admin.client.post(CHECK, headers=bearer(key_a.key))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["ok"] is False  # 404 everywhere
    sent = route.call_count
    limited = await admin.client.post(CHECK, headers=bearer(key_a.key))
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == "30"
    assert route.call_count == sent, "a limited check must not send anything"
    assert (await admin.client.post(CHECK, headers=bearer(key_b.key))).status_code == 200
    admin.time.now += 30
    assert (await admin.client.post(CHECK, headers=bearer(key_a.key))).status_code == 200


async def test_check_before_any_config_is_409(admin: Admin) -> None:
    """A tenant with no webhooks gets 409 not_configured."""
    _, issued = await admin.tenant("shop-a")
    response = await admin.client.post(CHECK, headers=bearer(issued.key))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_configured"


async def test_check_without_a_key_is_401(admin: Admin, router: respx.Router) -> None:
    """No key, no check, nothing sent."""
    response = await admin.client.post(CHECK)
    assert response.status_code == 401
    assert not router.calls
