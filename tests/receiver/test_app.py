"""The kit's endpoints at the HTTP level (in-process ASGI): statuses, shapes, JSON errors.

Validation cases follow docs/webhooks.md §4-6 field by field; each refusal must leave the tenant's
callbacks uncalled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from vizochok_dispatch import compute_signature
from vizochok_dispatch.receiver import (
    CartReply,
    Claim,
    InMemoryIdempotencyStore,
    Product,
    ProductsQuery,
    RetryLater,
    create_receiver_app,
    receiver_routes,
)

from ._support import (
    CART_ITEMS_PATH,
    CART_PATH,
    NOW,
    OLD_SECRET,
    PRODUCTS_PATH,
    SECRET,
    RecordingTenant,
    signed_headers,
)


@pytest.fixture
def tenant() -> RecordingTenant:
    return RecordingTenant()


@pytest.fixture
async def client(tenant: RecordingTenant) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=tenant.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as client:
        yield client


def _json(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


async def post(client: httpx.AsyncClient, path: str, body: bytes, **signing: Any) -> httpx.Response:
    return await client.post(path, content=body, headers=signed_headers(body, **signing))


def cart_body(**fields: object) -> bytes:
    return _json({"action": "add", "store_id": "store-1", "session_id": "user-1"} | fields)


ADD = {"sku": "milk-001", "name": "Молоко", "quantity": 1, "price": 45.9}


# -- 200s and their shapes -----------------------------------------------------------------


async def test_products_reply_has_the_contract_shape(client, tenant) -> None:
    """webhooks.md §4: ``{"products": [...]}`` with exact decimals and optional promo fields."""
    body = _json({"skus": ["milk-002", "milk-001", "milk-002", "nope"], "store_id": "store-1"})
    response = await post(client, PRODUCTS_PATH, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"products":[{"sku":"milk-002","price":52.00,"in_stock":true,"promo_price":42.00,'
        b'"promo_label":"-19%"},{"sku":"milk-001","price":45.90,"in_stock":true}]}'
    )
    assert tenant.products_calls == [
        ProductsQuery(
            skus=("milk-002", "milk-001", "nope"), store_id="store-1", delivery_id="delivery-0001"
        )
    ]


async def test_cart_reply_passes_the_refusal_reason(client, tenant) -> None:
    """docs/webhooks.md §5: an out-of-stock refusal goes out as ``{"ok": false, "reason": ...}``."""
    response = await post(client, CART_PATH, cart_body(**{**ADD, "sku": "milk-003"}))
    assert response.status_code == 200
    assert response.json() == {"ok": False, "reason": "out_of_stock"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"action": "add", **ADD}, "CartAdd"),
        ({"action": "remove", "sku": "milk-001"}, "CartRemove"),
        ({"action": "update", "sku": "milk-001", "quantity": 0.5}, "CartUpdate"),
        ({"action": "clear"}, "CartClear"),
    ],
)
async def test_each_cart_action_reaches_the_callback_as_its_type(
    client, tenant, fields, expected
) -> None:
    """docs/webhooks.md §5: each action arrives as its own value with Decimal amounts."""
    response = await post(client, CART_PATH, cart_body(**fields))
    assert response.status_code == 200
    (operation,) = tenant.cart_calls
    assert type(operation).__name__ == expected
    for name in ("quantity", "price"):
        if hasattr(operation, name):
            assert isinstance(getattr(operation, name), Decimal)


async def test_cart_items_reply_has_the_contract_shape(client, tenant) -> None:
    """webhooks.md §6: ``{"items": [...]}``; query values are URL-decoded; extra params ignored."""
    await post(client, CART_PATH, cart_body(**{**ADD, "quantity": 1.25}), delivery_id="d-add")
    response = await client.get(
        CART_ITEMS_PATH + "?tenant=own&store_id=store-1&session_id=user-1",
        headers=signed_headers(b"", delivery_id=None),
    )
    assert response.status_code == 200
    assert response.content == (
        '{"items":[{"sku":"milk-001","name":"Молоко","price":45.9,"quantity":1.25}]}'.encode()
    )
    assert tenant.load_calls[0].session_id == "user-1"


# -- 401: signature and timestamp ----------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "code"),
    [
        ({"secret": "whsec_not_the_tenants_secret_1"}, "signature_mismatch"),
        ({"timestamp": NOW - 301}, "timestamp_expired"),
        ({"timestamp": NOW + 301}, "timestamp_in_future"),
    ],
)
@pytest.mark.parametrize("path", [PRODUCTS_PATH, CART_PATH])
async def test_bad_signatures_get_401_with_a_json_reason(client, tenant, path, signing, code):
    """401 with ``{"error": <code>}`` for each signing failure; no callback runs."""
    response = await post(client, path, cart_body(**ADD), **signing)
    assert response.status_code == 401
    assert response.json()["error"] == code
    assert tenant.calls == 0


async def test_unsigned_requests_get_401(client, tenant) -> None:
    """A request without signing headers is refused on every endpoint."""
    for response in (
        await client.post(PRODUCTS_PATH, content=b"{}"),
        await client.post(CART_PATH, content=b"{}"),
        await client.get(CART_ITEMS_PATH + "?store_id=s&session_id=u"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == "missing_header"
    assert tenant.calls == 0


async def test_signature_is_checked_before_the_body_is_read_as_json(client, tenant) -> None:
    """An unsigned garbage body gets 401, not 422: nothing is parsed before verification."""
    response = await client.post(PRODUCTS_PATH, content=b"not json")
    assert response.status_code == 401


async def test_cart_get_signature_covers_the_empty_body(client, tenant) -> None:
    """docs/webhooks.md §6: a GET signed over a non-empty body does not verify."""
    headers = signed_headers(b"")
    headers["X-VIZOCHOK-Signature"] = compute_signature(SECRET, NOW, b"{}")
    response = await client.get(CART_ITEMS_PATH + "?store_id=s&session_id=u", headers=headers)
    assert response.status_code == 401


async def test_error_bodies_never_contain_the_secret(client) -> None:
    """No refusal body echoes the secret or the signature the receiver expected."""
    body = cart_body(**ADD)
    response = await post(client, CART_PATH, body, secret=OLD_SECRET)
    assert SECRET not in response.text
    assert compute_signature(SECRET, NOW, body)[7:] not in response.text


# -- 422: the body or query breaks docs/webhooks.md §4-6 -------------------------------------------


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"store_id": "s"}, "skus"),
        ({"skus": "milk-001", "store_id": "s"}, "skus"),
        ({"skus": [], "store_id": "s"}, "skus"),
        ({"skus": ["ok", ""], "store_id": "s"}, "skus[1]"),
        ({"skus": ["ok", 7], "store_id": "s"}, "skus[1]"),
        ({"skus": ["ok"]}, "store_id"),
        ({"skus": ["ok"], "store_id": ""}, "store_id"),
        (["skus"], "body"),
    ],
)
async def test_invalid_products_bodies_get_422(client, tenant, document, field) -> None:
    """docs/webhooks.md §4: ``skus`` is a non-empty list of SKU strings, ``store_id`` a string."""
    response = await post(client, PRODUCTS_PATH, _json(document))
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert field in [f["field"] for f in response.json()["fields"]]
    assert tenant.calls == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"action": "buy"}, "action"),
        ({"action": None}, "action"),
        ({"store_id": ""}, "store_id"),
        ({"session_id": 5}, "session_id"),
        ({**ADD, "sku": None}, "sku"),
        ({**ADD, "name": None}, "name"),
        ({**ADD, "quantity": 0}, "quantity"),
        ({**ADD, "quantity": -1}, "quantity"),
        ({**ADD, "quantity": "1"}, "quantity"),
        ({**ADD, "quantity": True}, "quantity"),
        ({"sku": "a", "name": "n", "quantity": 1}, "price"),
        ({**ADD, "price": -0.01}, "price"),
        ({"action": "update", "sku": "milk-001"}, "quantity"),
        ({"action": "update", "sku": "milk-001", "quantity": 0}, "quantity"),
        ({"action": "remove"}, "sku"),
    ],
)
async def test_invalid_cart_bodies_get_422(client, tenant, fields, field) -> None:
    """docs/webhooks.md §5: each action's fields are present and typed; quantity > 0, price >= 0."""
    response = await post(client, CART_PATH, cart_body(**fields))
    assert response.status_code == 422, response.text
    assert field in [f["field"] for f in response.json()["fields"]]
    assert tenant.calls == 0


async def test_nan_and_infinity_are_not_quantities(client, tenant) -> None:
    """Non-finite numbers (which Python's JSON reader accepts) are refused."""
    body = b'{"action":"update","store_id":"s","session_id":"u","sku":"a","quantity":NaN}'
    response = await post(client, CART_PATH, body)
    assert response.status_code == 422
    assert tenant.calls == 0


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe{}", b'{"a": [' * 100_000])
async def test_unreadable_bodies_get_422(client, tenant, body) -> None:
    """A signed body that is not UTF-8 JSON is refused with 422, not a crash."""
    response = await post(client, PRODUCTS_PATH, body)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?session_id=u", "store_id"),
        ("?store_id=s", "session_id"),
        ("?store_id=&session_id=u", "store_id"),
        ("?store_id=s&store_id=t&session_id=u", "store_id"),
    ],
)
async def test_invalid_cart_queries_get_422(client, tenant, query, field) -> None:
    """docs/webhooks.md §6: ``store_id`` and ``session_id`` appear once each and are not empty."""
    response = await client.get(CART_ITEMS_PATH + query, headers=signed_headers(b""))
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == field
    assert tenant.calls == 0


# -- other statuses ------------------------------------------------------------------------


async def test_bodies_over_the_cap_get_413(tenant) -> None:
    """A body over ``max_body_bytes`` is refused before it is buffered or verified."""
    app = tenant.app(max_body_bytes=64)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        body = _json({"skus": ["x" * 100], "store_id": "s"})
        response = await c.post(PRODUCTS_PATH, content=body, headers=signed_headers(body))
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


async def test_a_streamed_body_over_the_cap_gets_413(tenant) -> None:
    """Without a Content-Length the cap is enforced while reading, chunk by chunk."""
    app = tenant.app(max_body_bytes=64)
    body = _json({"skus": ["x" * 100], "store_id": "s"})

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16):
            yield body[start : start + 16]

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post(PRODUCTS_PATH, content=chunks(), headers=signed_headers(body))
    assert response.status_code == 413
    assert tenant.calls == 0


def test_a_negative_tolerance_fails_at_start_up(tenant) -> None:
    """A tolerance that no request could meet is a configuration error, raised at once."""
    with pytest.raises(ValueError, match="tolerance"):
        create_receiver_app(
            secret=SECRET,
            check_products=tenant.check_products,
            cart_operation=tenant.cart_operation,
            load_cart=None,
            tolerance=-1,
        )


async def test_cart_without_a_delivery_id_gets_400(client, tenant) -> None:
    """A cart operation cannot be deduplicated without ``X-VIZOCHOK-Delivery``: refused."""
    response = await post(client, CART_PATH, cart_body(**ADD), delivery_id=None)
    assert response.status_code == 400
    assert response.json()["error"] == "missing_delivery_id"
    assert tenant.calls == 0


async def test_wrong_methods_get_405(client) -> None:
    """Each endpoint answers only its contract method."""
    assert (await client.get(PRODUCTS_PATH)).status_code == 405
    assert (await client.put(CART_PATH)).status_code == 405
    assert (await client.post(CART_ITEMS_PATH)).status_code == 405


async def test_retry_later_gets_503_and_a_crash_gets_500() -> None:
    """A callback's RetryLater is a 503 (VIZOCHOK retries); any other exception a JSON 500."""

    async def flaky(query: ProductsQuery) -> list[Product]:
        if query.store_id == "busy":
            raise RetryLater("warming up")
        raise RuntimeError("database on fire")

    async def cart(_op: object) -> CartReply:
        return "yes"  # type: ignore[return-value]

    app = create_receiver_app(
        secret=SECRET,
        check_products=flaky,
        cart_operation=cart,
        load_cart=None,
        clock=lambda: float(NOW),
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        busy = await post(c, PRODUCTS_PATH, _json({"skus": ["a"], "store_id": "busy"}))
        crash = await post(c, PRODUCTS_PATH, _json({"skus": ["a"], "store_id": "s"}))
        bad_reply = await post(c, CART_PATH, cart_body(action="clear"))
        no_cart_get = await c.get(CART_ITEMS_PATH, headers=signed_headers(b""))
    assert (busy.status_code, busy.json()["error"]) == (503, "retry_later")
    assert (crash.status_code, crash.json()["error"]) == (500, "internal_error")
    assert "fire" not in crash.text
    assert bad_reply.status_code == 500
    assert no_cart_get.status_code == 404


# -- idempotency ---------------------------------------------------------------------------


async def test_a_retried_cart_call_is_applied_once_and_answered_the_same(client, tenant):
    """Same delivery id and body: the stored answer is replayed, the operation not re-run."""
    body = cart_body(**ADD)
    first = await post(client, CART_PATH, body, delivery_id="d-1")
    again = await post(client, CART_PATH, body, delivery_id="d-1", timestamp=NOW + 1)
    assert first.content == again.content == b'{"ok":true}'
    assert again.headers["Idempotent-Replay"] == "true"
    assert len(tenant.applied) == 1
    line = tenant.carts[("store-1", "user-1")]["milk-001"]
    assert line.quantity == 1


async def test_a_refusal_is_replayed_too(client, tenant) -> None:
    """The first complete answer is the answer, whether ``ok`` is true or false."""
    body = cart_body(**{**ADD, "sku": "milk-003"})
    first = await post(client, CART_PATH, body, delivery_id="d-2")
    again = await post(client, CART_PATH, body, delivery_id="d-2")
    assert first.json() == again.json() == {"ok": False, "reason": "out_of_stock"}
    assert len(tenant.cart_calls) == 1


async def test_a_delivery_id_replayed_with_another_body_gets_409(client, tenant) -> None:
    """A delivery id names one operation; reusing it for another body is refused."""
    await post(client, CART_PATH, cart_body(**ADD), delivery_id="d-3")
    other = await post(client, CART_PATH, cart_body(action="clear"), delivery_id="d-3")
    assert other.status_code == 409
    assert other.json()["error"] == "delivery_id_reused"
    assert len(tenant.cart_calls) == 1


async def test_distinct_delivery_ids_with_equal_bodies_both_apply(client, tenant) -> None:
    """Two logical calls that happen to have equal bodies are two operations."""
    body = cart_body(**ADD)
    await post(client, CART_PATH, body, delivery_id="d-4")
    await post(client, CART_PATH, body, delivery_id="d-5")
    assert tenant.carts[("store-1", "user-1")]["milk-001"].quantity == 2


async def test_a_failed_attempt_releases_its_delivery_id(client, tenant) -> None:
    """After a 503 from the callback the retry runs the operation (once in total)."""
    tenant.unavailable_cart_calls = 1
    body = cart_body(**ADD)
    first = await post(client, CART_PATH, body, delivery_id="d-6")
    retry = await post(client, CART_PATH, body, delivery_id="d-6", timestamp=NOW + 1)
    assert (first.status_code, retry.status_code) == (503, 200)
    assert len(tenant.applied) == 1
    assert "Idempotent-Replay" not in retry.headers


async def test_a_duplicate_during_the_first_call_waits_for_its_answer() -> None:
    """A duplicate that arrives mid-operation gets the first answer; the operation runs once."""
    entered, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow_cart(_op: object) -> CartReply:
        nonlocal runs
        runs += 1
        entered.set()
        await release.wait()
        return CartReply.refused("out_of_stock")

    async def products(_q: ProductsQuery) -> list[Product]:
        return []

    class ObservedStore(InMemoryIdempotencyStore):
        """Signals when the duplicate has reached (and is waiting in) its claim."""

        claims = 0
        duplicate_waiting = asyncio.Event()

        async def claim(self, delivery_id: str, fingerprint: str) -> Claim:
            self.claims += 1
            if self.claims == 2:
                self.duplicate_waiting.set()
            return await super().claim(delivery_id, fingerprint)

    store = ObservedStore()
    app = create_receiver_app(
        secret=SECRET,
        check_products=products,
        cart_operation=slow_cart,
        load_cart=None,
        clock=lambda: float(NOW),
        idempotency=store,
    )
    body = cart_body(**ADD)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        first = asyncio.create_task(post(c, CART_PATH, body, delivery_id="d-7"))
        await entered.wait()
        second = asyncio.create_task(post(c, CART_PATH, body, delivery_id="d-7"))
        await store.duplicate_waiting.wait()
        assert not second.done()
        release.set()
        answers = [await first, await second]
    assert [a.json() for a in answers] == [{"ok": False, "reason": "out_of_stock"}] * 2
    assert runs == 1


async def test_a_duplicate_that_cannot_wait_gets_409() -> None:
    """With no waiting allowed, a duplicate of a running call is refused, not run twice."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_cart(_op: object) -> CartReply:
        entered.set()
        await release.wait()
        return CartReply.accepted()

    async def products(_q: ProductsQuery) -> list[Product]:
        return []

    app = create_receiver_app(
        secret=SECRET,
        check_products=products,
        cart_operation=slow_cart,
        load_cart=None,
        clock=lambda: float(NOW),
        idempotency=InMemoryIdempotencyStore(wait_seconds=0),
    )
    body = cart_body(action="clear")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        first = asyncio.create_task(post(c, CART_PATH, body, delivery_id="d-8"))
        await entered.wait()
        second = await post(c, CART_PATH, body, delivery_id="d-8")
        release.set()
        assert (await first).status_code == 200
    assert (second.status_code, second.json()["error"]) == (409, "delivery_in_progress")


# -- secrets and mounting ------------------------------------------------------------------


async def test_a_secret_list_accepts_old_and_new_during_a_roll(tenant) -> None:
    """Secret rolling: with [new, old] configured, requests signed with either are served."""
    app = tenant.app(secret=[SECRET, OLD_SECRET])
    body = _json({"skus": ["milk-001"], "store_id": "s"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        new = await post(c, PRODUCTS_PATH, body)
        old = await post(c, PRODUCTS_PATH, body, secret=OLD_SECRET)
    assert (new.status_code, old.status_code) == (200, 200)


async def test_a_secret_function_rolls_without_a_restart(tenant) -> None:
    """A callable secret source is read per request, so a running server can switch secrets."""
    current = [OLD_SECRET]
    app = create_receiver_app(
        secret=lambda: current,
        check_products=tenant.check_products,
        cart_operation=tenant.cart_operation,
        load_cart=None,
        clock=lambda: float(NOW),
    )
    body = _json({"skus": ["milk-001"], "store_id": "s"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        before = await post(c, PRODUCTS_PATH, body, secret=OLD_SECRET)
        current[:] = [SECRET]
        stale = await post(c, PRODUCTS_PATH, body, secret=OLD_SECRET)
        fresh = await post(c, PRODUCTS_PATH, body)
    assert (before.status_code, stale.status_code, fresh.status_code) == (200, 401, 200)


def test_a_missing_secret_fails_at_start_up(tenant) -> None:
    """An empty secret list is a configuration error raised when the app is built."""
    with pytest.raises(ValueError, match="at least one secret"):
        tenant.app(secret=[])


async def test_routes_mount_into_a_fastapi_app(tenant) -> None:
    """``receiver_routes`` adds the endpoints to a tenant's existing FastAPI app."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.router.routes.extend(
        receiver_routes(
            secret=SECRET,
            check_products=tenant.check_products,
            cart_operation=tenant.cart_operation,
            load_cart=tenant.load_cart,
            clock=lambda: float(NOW),
        )
    )
    body = _json({"skus": ["milk-001"], "store_id": "s"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/health")).json() == {"status": "ok"}
        response = await post(c, PRODUCTS_PATH, body)
    assert response.json()["products"][0]["sku"] == "milk-001"


async def test_a_failing_secret_source_is_a_500_without_details(tenant) -> None:
    """A secret function that raises is the tenant's misconfiguration: 500, nothing leaked."""

    def broken() -> str:
        raise KeyError(SECRET)

    app = create_receiver_app(
        secret=broken,
        check_products=tenant.check_products,
        cart_operation=tenant.cart_operation,
        load_cart=None,
        clock=lambda: float(NOW),
    )
    body = _json({"skus": ["milk-001"], "store_id": "s"})
    with capture_logs() as logs:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            response = await post(c, PRODUCTS_PATH, body)
    assert (response.status_code, response.json()["error"]) == (500, "receiver_misconfigured")
    assert SECRET not in response.text
    assert SECRET not in repr(logs)
    assert tenant.calls == 0


async def test_logs_name_the_refusal_but_never_a_secret(client) -> None:
    """Refusals are logged as ``receiver.refused`` with a reason; no secret or MAC in them."""
    body = cart_body(**ADD)
    with capture_logs() as logs:
        await post(client, CART_PATH, body, secret=OLD_SECRET)
        await post(client, CART_PATH, body, timestamp=NOW - 1000)
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("receiver.refused", "signature_mismatch"),
        ("receiver.refused", "timestamp_expired"),
    ]
    shown = repr(logs)
    assert SECRET not in shown
    assert OLD_SECRET not in shown
    assert compute_signature(SECRET, NOW, body)[7:] not in shown
