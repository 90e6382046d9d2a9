"""One structured event per attempt and one per failure; never a secret or a body."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs

from tests.dispatch.conftest import CART_URL, PRODUCTS_URL, SECRET

ATTEMPT_KEYS = {
    "tenant_id",
    "webhook",
    "delivery_id",
    "attempt",
    "status",
    "elapsed_ms",
    "outcome",
    "detail",
}


async def test_one_attempt_event_per_attempt_with_its_fields(dispatcher, router):
    """A 503-then-200 call logs two webhook.attempt events carrying the contract's fields."""
    router.post(PRODUCTS_URL).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"products": []})]
    )
    with capture_logs() as logs:
        await dispatcher.check_products("t1", skus=["a"], store_id="s")
    attempts = [e for e in logs if e["event"] == "webhook.attempt"]
    assert len(attempts) == 2
    for event in attempts:
        assert event.keys() >= ATTEMPT_KEYS
        assert event["tenant_id"] == "t1" and event["webhook"] == "products"
    assert [(e["attempt"], e["status"], e["outcome"]) for e in attempts] == [
        (1, 503, "failed"),
        (2, 200, "ok"),
    ]
    assert attempts[0]["delivery_id"] == attempts[1]["delivery_id"]
    assert not [e for e in logs if e["event"] == "webhook.failure"]


async def test_one_failure_event_per_failed_call(dispatcher, router):
    """A failed call logs exactly one webhook.failure with its detail and attempt count."""
    router.post(CART_URL).mock(side_effect=[httpx.Response(500), httpx.Response(502)])
    with capture_logs() as logs:
        await dispatcher.cart_clear("t1", store_id="s", session_id="x")
    failures = [e for e in logs if e["event"] == "webhook.failure"]
    assert len(failures) == 1
    assert failures[0]["detail"] == "http_status" and failures[0]["attempts"] == 2
    assert failures[0]["log_level"] == "warning"


async def test_logs_never_hold_the_secret_or_a_body(dispatcher, router):
    """Neither the signing secret, the signature, nor request/response bodies reach the logs."""
    marker = "SENSITIVE-CUSTOMER-NAME"
    router.post(CART_URL).mock(
        return_value=httpx.Response(200, json={"ok": "weird", "echo": marker})
    )
    router.post(PRODUCTS_URL).mock(
        return_value=httpx.Response(
            200, json={"products": [{"sku": "a", "price": "x", "note": marker}, {"sku": "zz"}]}
        )
    )
    with capture_logs() as logs:
        await dispatcher.cart_add(
            "t1", store_id="s", session_id="x", sku="a", name=marker, quantity=1, price=1
        )
        await dispatcher.check_products("t1", skus=["a"], store_id="s")
    text = repr(logs)
    assert SECRET not in text
    assert "sha256=" not in text
    assert marker not in text
    assert repr(await dispatcher.store.get_config("t1")).count(SECRET) == 0
