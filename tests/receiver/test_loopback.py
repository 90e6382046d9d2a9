"""The dispatcher's real requests, over 127.0.0.1, into the kit's endpoints under uvicorn.

Both clocks are pinned (the dispatcher signs at ``NOW``, the receiver's clock reads ``NOW``)
and the retry delay is injected, so nothing here waits on wall time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from vizochok_dispatch import AiohttpTransport, signature_headers
from vizochok_dispatch.receiver import CartAdd, CartClear, CartRemove, CartUpdate, ProductsQuery
from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import (
    CART_PATH,
    NOW,
    OLD_SECRET,
    SECRET,
    TENANT,
    RecordingTenant,
    dispatcher_for,
)

pytestmark = pytest.mark.loopback

STORE, SESSION = "store-1", "user 1/ä&x=1"


class TamperingTransport(httpx.AsyncBaseTransport):
    """Sends through aiohttp, but flips one bit of one body byte after signing."""

    def __init__(self) -> None:
        self._inner = AiohttpTransport(allowed_networks="127.0.0.0/8")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = bytearray(await request.aread())
        body[len(body) // 2] ^= 0x01
        tampered = httpx.Request(
            request.method, request.url, headers=request.headers, content=bytes(body)
        )
        return await self._inner.handle_async_request(tampered)

    async def aclose(self) -> None:
        await self._inner.aclose()


class GatewayFailsFirstCartAnswer:
    """An ASGI proxy stand-in: lets the first cart call through, then answers 503 instead.

    This is the case idempotency exists for: the tenant applied the operation, but the
    platform saw a 5xx and retries.  It also records the delivery headers of every request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.remaining = 1
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != CART_PATH:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        self.seen.append(
            (headers[b"x-vizochok-delivery"].decode(), headers[b"x-vizochok-attempt"].decode())
        )
        if self.remaining == 0:
            await self.app(scope, receive, send)
            return
        self.remaining -= 1

        async def discard(_message: Any) -> None:
            """The kit's real answer is lost on the way back."""

        await self.app(scope, receive, discard)
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"bad gateway"})


async def test_products_call_verifies_and_the_callback_gets_the_right_values() -> None:
    """webhooks.md §4 end to end: signed, verified, SKUs deduplicated, offers parsed as Decimal."""
    tenant = RecordingTenant()
    async with serve_on_loopback(tenant.app()) as base, dispatcher_for(base, wall=NOW) as d:
        result, delivery = await d.check_products_with_delivery(
            TENANT, skus=["milk-001", "milk-002", "milk-001", "milk-003", "ghost"], store_id=STORE
        )
    assert delivery is not None
    assert tenant.products_calls == [
        ProductsQuery(
            skus=("milk-001", "milk-002", "milk-003", "ghost"),
            store_id=STORE,
            delivery_id=delivery.delivery_id,
        )
    ]
    assert [(o.sku, o.price, o.promo_price, o.promo_label) for o in result.available] == [
        ("milk-001", Decimal("45.90"), None, None),
        ("milk-002", Decimal("52.00"), Decimal("42.00"), "-19%"),
    ]
    assert result.unavailable == ("milk-003", "ghost")


async def test_cart_operations_and_load_reach_the_callbacks_exactly() -> None:
    """webhooks.md §5-6 end to end: every action's fields arrive as sent; the cart loads back."""
    tenant = RecordingTenant()
    async with (
        serve_on_loopback(tenant.app()) as base,
        dispatcher_for(base, wall=NOW, cart_get_query="?tenant=own") as d,
    ):
        ids: dict[str, Any] = {"store_id": STORE, "session_id": SESSION}
        add = await d.cart_add(
            TENANT, **ids, sku="milk-001", name="Молоко Lactel 2.5%", quantity=1.25, price="45.9"
        )
        refused = await d.cart_add(TENANT, **ids, sku="milk-003", name="Кефір", quantity=1, price=1)
        update = await d.cart_update(TENANT, **ids, sku="milk-001", quantity=Decimal("3"))
        await d.cart_add(TENANT, **ids, sku="bread-042", name="Хліб", quantity=1, price="32.00")
        remove = await d.cart_remove(TENANT, **ids, sku="bread-042")
        loaded = await d.load_cart(TENANT, **ids)
        clear = await d.cart_clear(TENANT, **ids)
        emptied = await d.load_cart(TENANT, **ids)

    assert [r.as_payload() for r in (add, update, remove, clear)] == [{"ok": True}] * 4
    assert refused.as_payload() == {"ok": False, "reason": "out_of_stock"}
    first = tenant.cart_calls[0]
    assert isinstance(first, CartAdd)
    assert (first.store_id, first.session_id, first.name) == (STORE, SESSION, "Молоко Lactel 2.5%")
    assert (first.quantity, first.price) == (Decimal("1.25"), Decimal("45.9"))
    assert [type(op) for op in tenant.applied] == [
        CartAdd,
        CartUpdate,
        CartAdd,
        CartRemove,
        CartClear,
    ]
    assert len({op.delivery_id for op in tenant.cart_calls}) == len(tenant.cart_calls)
    assert loaded.loaded
    assert [(i.sku, i.quantity, i.price) for i in loaded.items] == [
        ("milk-001", Decimal("3"), Decimal("45.9"))
    ]
    assert tenant.load_calls[0].session_id == SESSION
    assert emptied.loaded
    assert emptied.items == ()


@pytest.mark.parametrize(
    ("case", "dispatcher_options"),
    [
        ("one body byte changed", {"transport": "tamper"}),
        ("timestamp 301 s old", {"wall": NOW - 301}),
        ("timestamp 301 s ahead", {"wall": NOW + 301}),
        ("wrong secret", {"secret": OLD_SECRET}),
    ],
)
@pytest.mark.parametrize("webhook", ["products", "cart"])
async def test_forged_requests_get_401_and_never_reach_a_callback(
    case, dispatcher_options, webhook
) -> None:
    """§2: tampered, stale, early or wrongly keyed requests get 401; no retry, no call."""
    del case
    options: dict[str, Any] = {"wall": NOW, **dispatcher_options}
    if options.get("transport") == "tamper":
        options["transport"] = TamperingTransport()
    tenant = RecordingTenant()
    async with serve_on_loopback(tenant.app()) as base, dispatcher_for(base, **options) as d:
        if webhook == "products":
            result, delivery = await d.check_products_with_delivery(
                TENANT, skus=["milk-001"], store_id=STORE
            )
            assert result.unavailable == ("milk-001",)
        else:
            cart, delivery = await d.cart_operation_with_delivery(
                TENANT,
                b'{"action":"clear","store_id":"store-1","session_id":"user-1"}',
            )
            assert cart.as_payload() == {"ok": False, "reason": "webhook_timeout"}
    assert delivery is not None
    assert [a.status for a in delivery.attempts] == [401]
    assert delivery.failure == "http_status"
    assert tenant.calls == 0


async def test_a_replayed_delivery_id_with_another_body_is_refused() -> None:
    """A captured delivery id reused for a different (validly signed) body gets 409."""
    tenant = RecordingTenant()
    async with serve_on_loopback(tenant.app()) as base, dispatcher_for(base, wall=NOW) as d:
        await d.cart_add(
            TENANT,
            store_id=STORE,
            session_id=SESSION,
            sku="milk-001",
            name="M",
            quantity=1,
            price=1,
        )
        delivery_id = tenant.cart_calls[0].delivery_id
        forged = b'{"action":"clear","store_id":"store-1","session_id":"user 1/\xc3\xa4&x=1"}'
        headers = {
            "Content-Type": "application/json",
            "X-VIZOCHOK-Delivery": delivery_id,
            **signature_headers(SECRET, NOW, forged),
        }
        async with httpx.AsyncClient() as client:
            response = await client.post(base + CART_PATH, content=forged, headers=headers)
    assert response.status_code == 409
    assert response.json()["error"] == "delivery_id_reused"
    assert [type(op) for op in tenant.applied] == [CartAdd]


async def test_a_cart_call_retried_after_a_503_is_applied_once() -> None:
    """docs/webhooks.md §2-3: applied, answer lost (503), retried with the same id: applied once."""
    tenant = RecordingTenant()
    gateway = GatewayFailsFirstCartAnswer(tenant.app())
    async with serve_on_loopback(gateway) as base, dispatcher_for(base, wall=NOW) as d:
        body = (
            b'{"action":"add","store_id":"store-1","session_id":"user-1","sku":"milk-001",'
            b'"name":"M","quantity":2,"price":45.90}'
        )
        result, delivery = await d.cart_operation_with_delivery(TENANT, body)
    assert delivery is not None
    assert result.as_payload() == {"ok": True}
    assert [a.status for a in delivery.attempts] == [503, 200]
    assert gateway.seen == [(delivery.delivery_id, "1"), (delivery.delivery_id, "2")]
    assert len(tenant.cart_calls) == 1
    assert len(tenant.applied) == 1
    assert tenant.carts[("store-1", "user-1")]["milk-001"].quantity == 2


async def test_a_cart_call_the_tenant_asked_to_retry_is_applied_once() -> None:
    """A callback's RetryLater answers 503; the dispatcher's retry then applies it, once."""
    tenant = RecordingTenant(unavailable_cart_calls=1)
    async with serve_on_loopback(tenant.app()) as base, dispatcher_for(base, wall=NOW) as d:
        result, delivery = await d.cart_operation_with_delivery(
            TENANT, b'{"action":"clear","store_id":"store-1","session_id":"user-1"}'
        )
    assert delivery is not None
    assert result.as_payload() == {"ok": True}
    assert [a.status for a in delivery.attempts] == [503, 200]
    assert len(tenant.cart_calls) == 2
    assert len(tenant.applied) == 1


async def test_rotation_in_flight_old_signer_new_receiver_list() -> None:
    """Secret roll: a receiver holding [new, old] serves a dispatcher still signing with old."""
    tenant = RecordingTenant()
    app = tenant.app(secret=[SECRET, OLD_SECRET])
    async with (
        serve_on_loopback(app) as base,
        dispatcher_for(base, wall=NOW, secret=OLD_SECRET) as d,
    ):
        result = await d.check_products(TENANT, skus=["milk-001"], store_id=STORE)
    assert [o.sku for o in result.available] == ["milk-001"]
