"""Test-fire: one real, signed call to a tenant's webhook, reported for the tenant's developer.

It goes through the dispatcher's own path (config lookup, SSRF guard, bulkhead, circuit
breaker, deadline, retry, reply parsing), so what a test-fire reports is what production would
do.  The cart test is ``clear`` on a fresh session id (``vizochok-test-<random>``), which no
real customer has, so it changes nothing a shopper sees.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from .._exceptions import StoreError
from ..events._operations import refusal_code
from ..http._wire import wire_url
from ..tenants._config import WebhookConfig, url_problem
from . import _cart
from ._diagnostics import keeping_error_bodies
from ._dispatcher import Dispatcher
from ._results import (
    BLOCKED_DESTINATION,
    BULKHEAD_FULL,
    CIRCUIT_OPEN,
    CONNECT_ERROR,
    HTTP_STATUS,
    INTERNAL_ERROR,
    INVALID_RESPONSE,
    NOT_CONFIGURED,
    STORE_ERROR,
    TIMEOUT,
    CartLoad,
    CartResult,
    Delivery,
    ErrorBody,
    ProductsResult,
)

Webhook = Literal["products", "cart", "cart_get"]
WEBHOOKS: Final[tuple[Webhook, ...]] = ("products", "cart", "cart_get")
SAMPLE_SKUS: Final = ("milk-001", "bread-042")
TEST_STORE_ID: Final = "vizochok-test"
TEST_SESSION_PREFIX: Final = "vizochok-test-"

#: How much of a non-200 answer's body a report reads and shows.
ERROR_BODY_CAP: Final = 4096
#: A receiver's refusal codes (the receiver kit's, and its Node and Go verifiers') and what
#: the tenant's developer should do about each.
RECEIVER_HINTS: Final = {
    "signature_mismatch": "the secret in your receiver is not the current one (compare its "
    "last four characters with secret_masked from GET /api/v1/admin/webhooks, and give the "
    "receiver the secret from the last save or rotation), or it verifies a re-serialised body "
    "instead of the raw bytes",
    "timestamp_expired": "the receiver's clock is ahead of VIZOCHOK's by more than its "
    "tolerance (300 s by default): synchronise it (NTP)",
    "timestamp_in_future": "the receiver's clock is behind VIZOCHOK's by more than its "
    "tolerance (300 s by default): synchronise it (NTP)",
    "missing_header": "an X-VIZOCHOK-* header did not reach the receiver: a proxy in front of "
    "it may drop them",
    "malformed_header": "an X-VIZOCHOK-* header reached the receiver altered: a proxy in front "
    "of it may rewrite them",
}
_FAILURE_TEXT: Final = {
    NOT_CONFIGURED: "this webhook is not configured",
    STORE_ERROR: "VIZOCHOK could not read its configuration store; try again",
    INTERNAL_ERROR: "an unexpected error inside VIZOCHOK; nothing about your webhook",
}
_LOCAL_WORK: Final = (
    "VIZOCHOK calls public addresses only; for local development, list the networks it may "
    "call in VIZOCHOK_ALLOWED_NETWORKS (e.g. 127.0.0.0/8,::1/128)"
)
#: Bounds of what a report shows of any one string or nesting level (it must always encode).
_MAX_SHOWN_CHARS: Final = 8192
_MAX_DEPTH: Final = 8
_MAX_SAFE_INT_BITS: Final = 63


@dataclass(frozen=True, slots=True)
class FireAttempt:
    """One HTTP attempt of the test call."""

    number: int
    status: int | None
    latency_ms: float
    detail: str | None
    #: For ``connect_error``: refused, reset, DNS, TLS ... in words.
    reason: str | None = None


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
    #: A non-200 answer's body as text (at most ``ERROR_BODY_CAP`` bytes were read).
    response_body: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready data (the admin API's and the CLI's ``--json`` shape).

        It always encodes as UTF-8 JSON: strings a tenant sent are shown with lone surrogates
        escaped (``\\ud800``) and cut at 8192 characters, integers past 64 bits and
        non-finite floats are described in words.
        """
        data = {
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
                    "reason": a.reason,
                }
                for a in self.attempts
            ],
            "result": self.result,
            "problems": list(self.problems),
            "response_body": self.response_body,
        }
        shown: dict[str, object] = _json_safe(data, 0)
        return shown


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
    """Call one of the tenant's webhooks for real and report it; never raises for the tenant.

    The report names the URL even when nothing was sent (``blocked_destination``,
    ``circuit_open``, ``bulkhead_full``), says in words what each failure means and what to
    do about it, and shows up to 4 KiB of a non-200 answer's body with a hint for a
    receiver's refusal code (``signature_mismatch`` ...).
    """
    session = session_id or new_test_session_id()
    with keeping_error_bodies(ERROR_BODY_CAP):
        if webhook == "products":
            products, delivery = await dispatcher.check_products_with_delivery(
                tenant_id, skus=list(skus), store_id=store_id
            )
            outcome = (delivery, products.failure, _products(products), products.problems)
        elif webhook == "cart":
            body = _cart.operation_body("clear", store_id=store_id, session_id=session)
            cart, delivery = await dispatcher.cart_operation_with_delivery(tenant_id, body)
            outcome = (delivery, cart.detail, _cart_result(cart), cart.problems)
        else:
            loaded, delivery = await dispatcher.load_cart_with_delivery(
                tenant_id, store_id=store_id, session_id=session
            )
            outcome = (delivery, loaded.failure, _loaded(loaded), loaded.problems)
    delivery, failure, result, problems = outcome
    seen = _Seen(
        dispatcher=dispatcher,
        config=await _config(dispatcher, tenant_id),
        webhook=webhook,
        store_id=store_id,
        session_id=session,
    )
    return _report(seen, delivery, failure, result, problems)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a report's explanations draw on besides the delivery."""

    dispatcher: Dispatcher
    config: WebhookConfig | None
    webhook: Webhook
    store_id: str
    session_id: str

    def configured_url(self) -> str | None:
        """The URL this webhook would call now (the cart GET's with its query)."""
        if self.config is None:
            return None
        if self.webhook == "products":
            return self.config.products_url
        if self.webhook == "cart":
            return self.config.cart_url
        if self.config.cart_get_url is None:
            return None
        return _cart.load_url(
            self.config.cart_get_url, store_id=self.store_id, session_id=self.session_id
        )


def _as_sent(url: str | None) -> str | None:
    return None if url is None else wire_url(url)


async def _config(dispatcher: Dispatcher, tenant_id: str) -> WebhookConfig | None:
    try:
        return await dispatcher.store.get_config(tenant_id)
    except StoreError:
        return None  # the call itself already reported store_error


def _report(
    seen: _Seen,
    delivery: Delivery | None,
    failure: str | None,
    result: dict[str, object],
    problems: tuple[str, ...],
) -> FireReport:
    shown = list(problems)
    error_body = delivery.error_body if delivery else None
    if failure is not None:
        shown[:0] = [_failure_line(failure, delivery, seen), *_error_body_lines(error_body)]
    return FireReport(
        webhook=seen.webhook,
        # What went out; with nothing sent, the same form of what would have gone out.
        url=delivery.url if delivery else _as_sent(seen.configured_url()),
        ok=failure is None,
        status=delivery.status if delivery else None,
        latency_ms=delivery.elapsed_ms if delivery else None,
        detail=failure,
        delivery_id=delivery.delivery_id if delivery else None,
        attempts=tuple(
            FireAttempt(a.number, a.status, a.elapsed_ms, a.detail, a.reason)
            for a in (delivery.attempts if delivery else ())
        ),
        result=result,
        problems=tuple(shown),
        response_body=_body_text(error_body),
    )


def _failure_line(failure: str, delivery: Delivery | None, seen: _Seen) -> str:
    """The failure's detail, what it means here, and what to do about it."""
    settings = seen.dispatcher.settings
    if failure == HTTP_STATUS and delivery is not None:
        text = f"HTTP {delivery.status} (only 200 counts as an answer)"
    elif failure == TIMEOUT:
        limit = seen.config.timeout_seconds if seen.config else None
        shown = f" ({limit:g} s)" if limit is not None else ""
        text = (
            f"no complete response within timeout_seconds{shown}; connecting, sending and "
            "reading the whole body all count"
        )
    elif failure == CONNECT_ERROR:
        reason = delivery.attempts[-1].reason if delivery and delivery.attempts else None
        text = f"could not connect: {reason}" if reason else "could not connect"
    elif failure == BLOCKED_DESTINATION:
        text = _blocked_text(seen, connected=delivery is not None)
    elif failure == CIRCUIT_OPEN:
        text = _circuit_text(seen)
    elif failure == BULKHEAD_FULL:
        text = (
            f"this tenant already has {settings.max_in_flight_per_tenant} calls in flight "
            "(VIZOCHOK_MAX_IN_FLIGHT_PER_TENANT); nothing was sent"
        )
    elif failure == INVALID_RESPONSE and delivery is not None and delivery.body is None:
        text = (
            f"the answer's body is over the {settings.max_response_bytes}-byte response cap "
            "(VIZOCHOK_MAX_RESPONSE_BYTES)"
        )
    else:
        text = _FAILURE_TEXT.get(failure, "")
    return f"{failure}: {text}" if text else failure


def _blocked_text(seen: _Seen, *, connected: bool) -> str:
    url = seen.configured_url()
    settings = seen.dispatcher.settings
    scheme = None if url is None else url_problem(url, allow_http=settings.allow_http)
    if scheme is not None:
        return (
            f"the URL {scheme}; for local development over plain http://, set "
            "VIZOCHOK_ALLOW_HTTP=true"
        )
    where = None if url is None else settings.destination_policy().url_problem(url)
    if where is None:
        # Refused at connect time: the name resolved to a blocked address (not shown, so a
        # report cannot be used to read internal DNS).
        where = "resolves to a non-public address" if connected else "is not public"
    http = "" if settings.allow_http else " (and VIZOCHOK_ALLOW_HTTP=true for plain http://)"
    return f"the URL's host {where}. {_LOCAL_WORK}{http}"


def _circuit_text(seen: _Seen) -> str:
    settings = seen.dispatcher.settings
    paused = (
        f"calls to this URL are paused after {settings.circuit_failure_threshold} failures "
        f"(timeouts, connection failures, 5xx) within {settings.circuit_window_seconds:g} s; "
        "nothing was sent"
    )
    wait = (
        None
        if seen.config is None
        else seen.dispatcher.circuit_next_probe_in(seen.config.tenant_id, seen.webhook, seen.config)
    )
    if wait is None:
        return paused
    # Refused with no wait left means the one probe call is in flight right now.
    when = f"the next probe goes in {math.ceil(wait)} s" if wait > 0 else "a probe is under way"
    return f"{paused}; {when} (its success closes the circuit)"


def _error_body_lines(error_body: ErrorBody | None) -> list[str]:
    """What a non-200 answer's body says: a receiver's refusal code with its hint, or that
    the body was too large to show."""
    if error_body is None:
        return []
    if error_body.over_cap:
        size = (
            f"{error_body.declared_length} bytes"
            if error_body.declared_length is not None
            else f"more than {ERROR_BODY_CAP} bytes"
        )
        return [f"the answer's body is {size}; a report shows at most {ERROR_BODY_CAP} bytes"]
    code = refusal_code(error_body.data)
    if code is None:
        return []
    hint = RECEIVER_HINTS.get(code)
    return [f"the receiver answered {code}" + (f": {hint}" if hint else "")]


def _body_text(error_body: ErrorBody | None) -> str | None:
    if error_body is None or error_body.data is None:
        return None
    return error_body.data.decode("utf-8", "replace")


def _json_safe(value: Any, depth: int) -> Any:  # noqa: ANN401 - any JSON-ready value
    """``value`` as data that always encodes as UTF-8 JSON, whatever a tenant sent."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() <= _MAX_SAFE_INT_BITS:
            return value
        return f"an integer of {value.bit_length()} bits (too large to show)"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _shown_text(value)
    if depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {_shown_text(str(k)): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item, depth + 1) for item in value]
    if isinstance(value, Decimal):
        return _shown_text(str(value))
    return _shown_text(type(value).__name__)


def _shown_text(text: str) -> str:
    if len(text) > _MAX_SHOWN_CHARS:
        text = text[: _MAX_SHOWN_CHARS - 1] + "…"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


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
        if attempt.get("reason"):
            detail = f" ({attempt['detail']}: {attempt['reason']})"
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
    if report.get("response_body"):
        lines.append(f"  answer body: {json.dumps(report['response_body'][:300])}")
    lines.extend(f"  problem: {problem}" for problem in report["problems"])
    outcome = "ok" if report["ok"] else "FAILED"
    lines.append(f"  {outcome}" + (f" ({report['detail']})" if report["detail"] else ""))
    return lines
