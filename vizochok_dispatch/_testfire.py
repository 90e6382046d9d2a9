"""Test-fire: one real, signed call to a tenant's webhook, reported for the tenant's developer.

It goes through the dispatcher's own path (config lookup, SSRF guard, bulkhead, circuit
breaker, deadline, retry, reply parsing), so what a test-fire reports is what production would
do.  The cart test is ``clear`` on a fresh session id (``vizochok-test-<random>``), which no
real customer has, so it changes nothing a shopper sees.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from . import _cart
from ._dispatcher import Dispatcher
from ._results import (
    BLOCKED_DESTINATION,
    BULKHEAD_FULL,
    CIRCUIT_OPEN,
    CONNECT_ERROR,
    HTTP_STATUS,
    NOT_CONFIGURED,
    TIMEOUT,
    CartLoad,
    CartResult,
    Delivery,
    ProductsResult,
)

Webhook = Literal["products", "cart", "cart_get"]
WEBHOOKS: Final[tuple[Webhook, ...]] = ("products", "cart", "cart_get")
SAMPLE_SKUS: Final = ("milk-001", "bread-042")
TEST_STORE_ID: Final = "vizochok-test"
TEST_SESSION_PREFIX: Final = "vizochok-test-"

_FAILURE_TEXT: Final = {
    TIMEOUT: "no complete response within timeout_seconds",
    CONNECT_ERROR: "could not connect (refused, reset, DNS or TLS failure)",
    BLOCKED_DESTINATION: "the URL points to an address VIZOCHOK may not call",
    CIRCUIT_OPEN: "calls are paused after repeated failures; the next probe is automatic",
    BULKHEAD_FULL: "too many calls to this tenant are in flight",
    NOT_CONFIGURED: "this webhook is not configured",
}


@dataclass(frozen=True, slots=True)
class FireAttempt:
    """One HTTP attempt of the test call."""

    number: int
    status: int | None
    latency_ms: float
    detail: str | None


@dataclass(frozen=True, slots=True)
class FireReport:
    """What a test-fire saw: where it went, how it went, what came back, what was wrong."""

    webhook: Webhook
    url: str | None
    ok: bool
    status: int | None
    latency_ms: float | None
    detail: str | None
    delivery_id: str | None
    attempts: tuple[FireAttempt, ...]
    result: dict[str, object]
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (the admin API's and the CLI's ``--json`` shape)."""
        return {
            "webhook": self.webhook,
            "url": self.url,
            "ok": self.ok,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
            "delivery_id": self.delivery_id,
            "attempts": [
                {
                    "number": a.number,
                    "status": a.status,
                    "latency_ms": a.latency_ms,
                    "detail": a.detail,
                }
                for a in self.attempts
            ],
            "result": self.result,
            "problems": list(self.problems),
        }


def new_test_session_id() -> str:
    """A session id no customer has: ``vizochok-test-<random>``."""
    return TEST_SESSION_PREFIX + secrets.token_hex(6)


async def run_test_fire(
    dispatcher: Dispatcher,
    tenant_id: str,
    *,
    webhook: Webhook = "products",
    skus: Sequence[str] = SAMPLE_SKUS,
    store_id: str = TEST_STORE_ID,
    session_id: str | None = None,
) -> FireReport:
    """Call one of the tenant's webhooks for real and report it; never raises for the tenant."""
    session = session_id or new_test_session_id()
    if webhook == "products":
        products, delivery = await dispatcher.check_products_with_delivery(
            tenant_id, skus=list(skus), store_id=store_id
        )
        return _report(webhook, delivery, products.failure, _products(products), products.problems)
    if webhook == "cart":
        body = _cart.operation_body("clear", store_id=store_id, session_id=session)
        cart, delivery = await dispatcher.cart_operation_with_delivery(tenant_id, body)
        return _report(webhook, delivery, cart.detail, _cart_result(cart), cart.problems)
    loaded, delivery = await dispatcher.load_cart_with_delivery(
        tenant_id, store_id=store_id, session_id=session
    )
    return _report(webhook, delivery, loaded.failure, _loaded(loaded), loaded.problems)


def _report(
    webhook: Webhook,
    delivery: Delivery | None,
    failure: str | None,
    result: dict[str, object],
    problems: tuple[str, ...],
) -> FireReport:
    shown = list(problems)
    if failure is not None:
        shown.insert(0, _failure_line(failure, delivery))
    return FireReport(
        webhook=webhook,
        url=delivery.url if delivery else None,
        ok=failure is None,
        status=delivery.status if delivery else None,
        latency_ms=delivery.elapsed_ms if delivery else None,
        detail=failure,
        delivery_id=delivery.delivery_id if delivery else None,
        attempts=tuple(
            FireAttempt(a.number, a.status, a.elapsed_ms, a.detail)
            for a in (delivery.attempts if delivery else ())
        ),
        result=result,
        problems=tuple(shown),
    )


def _failure_line(failure: str, delivery: Delivery | None) -> str:
    if failure == HTTP_STATUS and delivery is not None:
        return f"{failure}: HTTP {delivery.status} (only 200 counts as an answer)"
    text = _FAILURE_TEXT.get(failure)
    return f"{failure}: {text}" if text else failure


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _products(result: ProductsResult) -> dict[str, object]:
    return {
        "available": [
            {
                "sku": offer.sku,
                "price": _money(offer.price),
                "promo_price": _money(offer.promo_price),
                "promo_label": offer.promo_label,
            }
            for offer in result.available
        ],
        "unavailable": list(result.unavailable),
    }


def _cart_result(result: CartResult) -> dict[str, object]:
    return dict(result.as_payload())


def _loaded(result: CartLoad) -> dict[str, object]:
    return {
        "loaded": result.loaded,
        "items": [
            {
                "sku": item.sku,
                "name": item.name,
                "price": _money(item.price),
                "quantity": _money(item.quantity),
                "unit": item.unit,
            }
            for item in result.items
        ],
    }


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """A report (``FireReport.as_dict()`` or the API's JSON) as readable lines, for the CLI
    and the demo.  No secret is ever in a report."""
    lines = [f"test-fire {report['webhook']} -> {report['url'] or '(no URL)'}"]
    for attempt in report["attempts"]:
        status = f"HTTP {attempt['status']}" if attempt["status"] is not None else "no response"
        detail = f" ({attempt['detail']})" if attempt["detail"] else ""
        lines.append(
            f"  attempt {attempt['number']}: {status}{detail} in {attempt['latency_ms']:.0f} ms"
        )
    result = report["result"]
    if report["webhook"] == "products":
        shown = ", ".join(f"{offer['sku']} at {offer['price']}" for offer in result["available"])
        lines.append(f"  available:   {shown or '-'}")
        lines.append(f"  unavailable: {', '.join(result['unavailable']) or '-'}")
    elif report["webhook"] == "cart":
        lines.append(f"  reply: {json.dumps(result)}")
    else:
        lines.append(f"  loaded: {result['loaded']}, {len(result['items'])} items")
    lines.extend(f"  problem: {problem}" for problem in report["problems"])
    outcome = "ok" if report["ok"] else "FAILED"
    lines.append(f"  {outcome}" + (f" ({report['detail']})" if report["detail"] else ""))
    return lines
