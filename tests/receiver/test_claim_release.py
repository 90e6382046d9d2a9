"""The receiver kit never leaks an idempotency claim, and always answers its JSON error.

Whatever fails after a cart call claims its delivery id (the callback raises, returns the
wrong type, returns an answer that cannot be encoded, the store fails to record it, the
request is cancelled), the answer is a JSON 500 ``internal_error`` and the claim is
released, so VIZOCHOK's retry with the same delivery id runs the operation normally instead
of getting 409 ``delivery_in_progress`` for ten minutes.  The same holds for the products
and cart GET endpoints' JSON errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from vizochok_dispatch.receiver import (
    CartLine,
    CartOperation,
    CartQuery,
    CartReply,
    Claim,
    InMemoryIdempotencyStore,
    Product,
    ProductsQuery,
    RetryLater,
    StoredResponse,
    create_receiver_app,
)
from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import (
    CART_ITEMS_PATH,
    CART_PATH,
    NOW,
    PRODUCTS_PATH,
    SECRET,
    TENANT,
    dispatcher_for,
    signed_headers,
)

CLEAR = b'{"action":"clear","store_id":"store-1","session_id":"user-1"}'


class Ledger(InMemoryIdempotencyStore):
    """The default store, recording how each claimed delivery id ended."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.events: list[tuple[str, str]] = []
        self.fail_complete = 0

    async def claim(self, delivery_id: str, fingerprint: str) -> Claim:
        claim = await super().claim(delivery_id, fingerprint)
        self.events.append((claim.state, delivery_id))
        return claim

    async def complete(self, delivery_id: str, fingerprint: str, response: StoredResponse) -> None:
        if self.fail_complete:
            self.fail_complete -= 1
            raise ConnectionError("idempotency store went away")
        await super().complete(delivery_id, fingerprint, response)
        self.events.append(("complete", delivery_id))

    async def release(self, delivery_id: str, fingerprint: str) -> None:
        await super().release(delivery_id, fingerprint)
        self.events.append(("release", delivery_id))

    def unsettled(self) -> list[str]:
        """Delivery ids claimed as new and neither completed nor released since."""
        open_claims: list[str] = []
        for state, delivery_id in self.events:
            if state == "new":
                open_claims.append(delivery_id)
            elif state in ("complete", "release") and delivery_id in open_claims:
                open_claims.remove(delivery_id)
        return open_claims


def fails_once(
    failure: Callable[[CartOperation], Any],
) -> tuple[Callable[[CartOperation], Any], list[CartOperation]]:
    """A cart callback whose first call does ``failure``; later calls accept."""
    calls: list[CartOperation] = []

    def callback(operation: CartOperation) -> Any:
        calls.append(operation)
        if len(calls) == 1:
            return failure(operation)
        return _accepted()

    return callback, calls


async def _accepted() -> CartReply:
    return CartReply.accepted()


def _raise_now(_operation: CartOperation) -> Any:
    raise RuntimeError("database on fire")


async def _raise_later(_operation: CartOperation) -> CartReply:
    raise RuntimeError("database on fire")


def _returns(value: object) -> Callable[[CartOperation], Awaitable[object]]:
    async def callback(_operation: CartOperation) -> object:
        return value

    return callback


class UnencodableReply(CartReply):
    """A CartReply whose body cannot be written (a value no check could foresee)."""

    def as_json(self) -> dict[str, object]:
        return {"ok": False, "reason": object()}


def _surrogate_reply() -> CartReply:
    reply = CartReply.refused("out_of_stock")
    object.__setattr__(reply, "reason", "\ud800")  # past the model's own check
    return reply


FAILURES: dict[str, Callable[[CartOperation], Any]] = {
    "async callback raises": _raise_later,
    "plain function raises": _raise_now,
    "answer cannot be encoded (TypeError)": _returns(UnencodableReply(ok=False)),
    "answer cannot be encoded (lone surrogate)": _returns(_surrogate_reply()),
    "wrong type: str": _returns("yes"),
    "wrong type: None": _returns(None),
    "wrong type: dict": _returns({"ok": True}),
    "not awaitable": lambda _op: CartReply.accepted(),
}


async def _no_products(_query: ProductsQuery) -> list[Product]:
    return []


def app_with(cart: Callable[[CartOperation], Any], store: Ledger) -> Any:
    return create_receiver_app(
        secret=SECRET,
        check_products=_no_products,
        cart_operation=cart,
        load_cart=None,
        clock=lambda: float(NOW),
        idempotency=store,
    )


async def post_clear(client: httpx.AsyncClient, delivery_id: str = "d-1") -> httpx.Response:
    return await client.post(
        CART_PATH, content=CLEAR, headers=signed_headers(CLEAR, delivery_id=delivery_id)
    )


def asgi(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://tenant.test")


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
async def test_a_failed_cart_callback_answers_json_and_releases_its_claim(failure) -> None:
    """Each failure after the claim: JSON 500 internal_error, claim released, retry runs."""
    callback, calls = fails_once(failure)
    store = Ledger(wait_seconds=0)
    async with asgi(app_with(callback, store)) as client:
        first = await post_clear(client)
        retry = await post_clear(client)
    assert first.status_code == 500
    assert first.headers["content-type"] == "application/json"
    assert first.json()["error"] == "internal_error"
    assert "fire" not in first.text
    assert (retry.status_code, retry.json()) == (200, {"ok": True})
    assert len(calls) == 2
    assert store.unsettled() == []
    assert [state for state, _ in store.events] == ["new", "release", "new", "complete"]


async def test_a_store_that_cannot_record_the_answer_releases_the_claim() -> None:
    """complete() failing: a JSON 500, and the claim released so the retry is not stuck."""
    calls: list[CartOperation] = []

    async def cart(operation: CartOperation) -> CartReply:
        calls.append(operation)
        return CartReply.accepted()

    store = Ledger(wait_seconds=0)
    store.fail_complete = 1
    async with asgi(app_with(cart, store)) as client:
        first = await post_clear(client)
        retry = await post_clear(client)
    assert (first.status_code, first.json()["error"]) == (500, "internal_error")
    assert (retry.status_code, retry.json()) == (200, {"ok": True})
    assert store.unsettled() == []


async def test_a_cancelled_request_releases_its_claim() -> None:
    """The caller hanging up mid-callback (a cancellation) still gives the claim back."""
    entered = asyncio.Event()
    calls: list[CartOperation] = []

    async def cart(operation: CartOperation) -> CartReply:
        calls.append(operation)
        if len(calls) == 1:
            entered.set()
            await asyncio.Event().wait()  # until cancelled
        return CartReply.accepted()

    store = Ledger(wait_seconds=0)
    async with asgi(app_with(cart, store)) as client:
        first = asyncio.create_task(post_clear(client))
        await entered.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        retry = await post_clear(client)
    assert (retry.status_code, retry.json()) == (200, {"ok": True})
    assert store.unsettled() == []


async def test_a_retry_later_message_that_utf8_cannot_carry_is_escaped() -> None:
    """RetryLater's own message goes into the 503 body cut and escaped, never a bare 500."""

    async def cart(_operation: CartOperation) -> CartReply:
        raise RetryLater("busy \ud800 " + "x" * 500)

    store = Ledger(wait_seconds=0)
    async with asgi(app_with(cart, store)) as client:
        response = await post_clear(client)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "retry_later"
    assert body["message"].startswith("busy \\ud800 x")
    assert len(body["message"]) <= 210
    assert store.unsettled() == []


def _bad_product() -> Product:
    product = Product(sku="milk-001", price=Decimal(1), in_stock=True, promo_label="ok")
    object.__setattr__(product, "promo_label", "\udfff")
    return product


def _bad_line() -> CartLine:
    line = CartLine(sku="milk-001", name="Milk", price=Decimal(1), quantity=Decimal(1))
    object.__setattr__(line, "name", "\udfff")
    return line


def _raising_generator(kind: str) -> Any:
    yield from ()
    raise RuntimeError(f"{kind} stream broke")


@pytest.mark.parametrize(
    ("products", "lines"),
    [
        (lambda: [_bad_product()], lambda: [_bad_line()]),
        (lambda: _raising_generator("products"), lambda: _raising_generator("cart")),
        (lambda: None, lambda: 42),
    ],
    ids=["unencodable answer", "generator raises", "wrong type"],
)
async def test_products_and_cart_items_answer_json_whatever_the_callback_returns(
    products, lines
) -> None:
    """The products and cart GET endpoints answer a JSON 500 too, never a plain-text page."""

    async def check_products(_query: ProductsQuery) -> Any:
        return products()

    async def load_cart(_query: CartQuery) -> Any:
        return lines()

    app = create_receiver_app(
        secret=SECRET,
        check_products=check_products,
        cart_operation=_raise_later,
        load_cart=load_cart,
        clock=lambda: float(NOW),
    )
    body = json.dumps({"skus": ["milk-001"], "store_id": "s"}).encode()
    async with asgi(app) as client:
        answers = [
            await client.post(PRODUCTS_PATH, content=body, headers=signed_headers(body)),
            await client.get(
                CART_ITEMS_PATH + "?store_id=s&session_id=u", headers=signed_headers(b"")
            ),
        ]
    for answer in answers:
        assert answer.status_code == 500
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"] == "internal_error"


@pytest.mark.loopback
@pytest.mark.parametrize(
    "failure",
    [FAILURES["plain function raises"], FAILURES["answer cannot be encoded (lone surrogate)"]],
    ids=["plain function raises", "answer cannot be encoded"],
)
async def test_the_dispatchers_retry_runs_after_a_failed_attempt(failure) -> None:
    """End to end on 127.0.0.1: a 500 from the kit, then the dispatcher's retry is applied."""
    callback, calls = fails_once(failure)
    store = Ledger()
    async with (
        serve_on_loopback(app_with(callback, store)) as base,
        dispatcher_for(base, wall=NOW) as dispatcher,
    ):
        result, delivery = await dispatcher.cart_operation_with_delivery(TENANT, CLEAR)
    assert result.as_payload() == {"ok": True}
    assert delivery is not None
    assert [a.status for a in delivery.attempts] == [500, 200]
    assert len(calls) == 2
    assert calls[0].delivery_id == calls[1].delivery_id == delivery.delivery_id
    assert store.unsettled() == []
