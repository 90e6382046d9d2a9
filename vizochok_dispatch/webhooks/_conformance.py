"""``vizochok-dispatch check``: the webhook contract run as checks against a tenant's backend.

Each check sends real, signed requests (the package's own signing, ``http._attempt.exchange``
and the dispatcher's reply parsers, so what passes here is what production accepts) and ends
``passed``, ``failed`` or ``skipped``, with what was seen and how to fix it.  Only test data
goes out: store ``vizochok-test``, sessions ``vizochok-test-<random>`` (cleared at the end),
event ids ``evt_vizochok-test-<random>``; never a real cart.  A run is bounded in count (about
45 requests, plus three and one per subscribed event type per event endpoint) and in time
(each request by ``timeout_seconds``, the whole run by ``deadline_seconds``).

Rules checked (docs/webhooks.md): §2 signing and the 300-second window (refusals with a 4xx,
401 advised), §3 idempotency of a retried cart call, §4 products (shape, unknown SKUs, every
entry's limits, latency under 2 s at p95), §5 cart replies and fractional quantities, §6 the
cart GET's query, §8-§10 events.  The secret never appears in a report.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from ..contract._events import event_body
from ..contract._signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    event_headers,
    generate_event_secret,
    signature_headers,
)
from ..events._catalog import EVENT_TYPES, type_matches
from ..events._operations import refusal_code
from ..http._attempt import USER_AGENT, Clock, exchange
from ..http._wire import Sender, WireResponse
from ..tenants._rotation import in_effect
from . import _cart, _products
from ._dispatcher import Dispatcher
from ._results import CartLoad, CartResult
from ._testfire import RECEIVER_HINTS, SAMPLE_SKUS, TEST_STORE_ID, new_test_session_id

Status = Literal["passed", "failed", "skipped"]
PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"

#: The products webhook's advice (docs/webhooks.md §4): answer well within 2 s.
LATENCY_ADVICE_SECONDS: Final = 2.0
#: A timestamp this old must be refused (the window is 300 s; docs/webhooks.md §2).
STALE_SECONDS: Final = 600
#: Where a check from the CLI with URLs runs, and where one from the server runs.
OWN_MACHINE: Final = "your own machine (the CLI): the SSRF guard is off"
FROM_SERVER: Final = "VIZOCHOK's server: the SSRF guard applies"
#: Bytes of any answer read (a products reply for a few SKUs is far smaller).
_ANSWER_CAP: Final = 1024 * 1024
_CHECK_NAME: Final = "VIZOCHOK conformance check"
_SIGNING_FIX: Final = (
    "verify X-VIZOCHOK-Signature over the raw body bytes and X-VIZOCHOK-Timestamp with a "
    "constant-time comparison, and answer 401 when it does not match "
    "(docs/webhooks.md §2, receiver checklist; the receiver kits do this)"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``name`` (``products.signed_call`` ...), ``status``, what was
    ``seen``, and for a failure how to ``fix`` it."""

    name: str
    status: Status
    seen: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """The tenant's webhooks under test: the three URLs (``cart_get_url`` optional), the
    signing secret (never shown) and the per-request limit in seconds."""

    products_url: str
    cart_url: str
    cart_get_url: str | None
    secret: str = field(repr=False)
    timeout_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class EventTarget:
    """One event endpoint under test: its URL, subscription patterns, scheme and secret."""

    endpoint_id: str
    url: str
    event_types: tuple[str, ...]
    signature_scheme: str
    secret: str = field(repr=False)
    timeout_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class CheckOptions:
    """What a run sends: the SKUs to ask for (the first one is added to test carts), whether
    the tenant sells by weight (else the fractional-quantity check is skipped), how many
    products calls measure latency, and the whole run's limit in seconds."""

    skus: tuple[str, ...] = SAMPLE_SKUS
    sells_by_weight: bool = True
    latency_calls: int = 20
    deadline_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """Every check of one run, and where it ran from (:data:`OWN_MACHINE`, :data:`FROM_SERVER`)."""

    where: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check failed (skipped ones do not count against it)."""
        return all(check.status != FAILED for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        """``{"ok", "where", "passed", "failed", "skipped", "checks": [{"name", "status",
        "seen", "fix"}]}``: the CLI's ``--json`` and the admin API's shape."""
        counts = dict.fromkeys((PASSED, FAILED, SKIPPED), 0)
        for check in self.checks:
            counts[check.status] += 1
        return {
            "ok": self.ok,
            "where": self.where,
            **counts,
            "checks": [
                {"name": c.name, "status": c.status, "seen": c.seen, "fix": c.fix}
                for c in self.checks
            ],
        }


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """A report (``ConformanceReport.as_dict()`` or the API's JSON) as readable lines."""
    lines = [f"conformance check, run from {report['where']}"]
    for check in report["checks"]:
        mark = {PASSED: "ok  ", FAILED: "FAIL", SKIPPED: "skip"}[check["status"]]
        lines.append(f"  {mark} {check['name']}: {check['seen']}")
        if check["fix"]:
            lines.append(f"       fix: {check['fix']}")
    outcome = "all passed" if report["ok"] else "FAILED"
    lines.append(
        f"  {report['passed']} passed, {report['failed']} failed, "
        f"{report['skipped']} skipped: {outcome}"
    )
    return lines


#: Why a URL may not be called from here (the server's SSRF check before sending), or ``None``.
DestinationCheck = Callable[[str], str | None]


async def run_conformance(
    target: CheckTarget,
    *,
    send: Sender,
    where: str,
    options: CheckOptions | None = None,
    events: Sequence[EventTarget] = (),
    clock: Clock | None = None,
    destination_problem: DestinationCheck | None = None,
) -> ConformanceReport:
    """Run every check against ``target`` (and each of ``events``); never raises for
    anything the tenant's server does.  ``send`` is the transport (the server's guarded one,
    or the CLI's); ``clock`` signs (wall) and measures latency (monotonic)."""
    run = _Run(target, send, options or CheckOptions(), clock or Clock(), destination_problem)
    await run.products()
    await run.security()
    await run.cart()
    await run.cart_get()
    for endpoint in events:
        await run.events(endpoint)
    return ConformanceReport(where=where, checks=tuple(run.checks))


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    body: bytes | None
    #: ``timeout``, ``connect_error``, ``blocked_destination`` or ``None`` (an answer came).
    failure: str | None
    reason: str | None
    seconds: float

    def describe(self) -> str:
        if self.failure is not None:
            return f"{self.failure}: {self.reason}" if self.reason else self.failure
        # A receiver's refusal code is named here; its hint goes into the check's fix.
        code = refusal_code(self.body)
        return f"HTTP {self.status}" + (f" ({code})" if code in RECEIVER_HINTS else "")


def _new_id() -> str:
    return os.urandom(16).hex()


class _Run:
    """One run's state: the checks so far, the clock, the deadline."""

    def __init__(
        self,
        target: CheckTarget,
        send: Sender,
        options: CheckOptions,
        clock: Clock,
        destination_problem: DestinationCheck | None,
    ) -> None:
        self.target = target
        self.options = options
        self.checks: list[Check] = []
        self._send = send
        self._clock = clock
        self._deadline_at = clock.monotonic() + options.deadline_seconds
        self._destination_problem = destination_problem
        self._sku = options.skus[0] if options.skus else SAMPLE_SKUS[0]
        #: Whether a correctly signed products call got 200: a refusal proves nothing without.
        self.products_answer = False

    def add(self, name: str, status: Status, seen: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, status, seen, fix))

    # -- sending ----------------------------------------------------------------------------

    def signed(
        self,
        body: bytes,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        delivery_id: str | None = None,
        attempt: int = 1,
    ) -> dict[str, str]:
        """Headers as the dispatcher sends them (docs/webhooks.md §2)."""
        at = int(self._clock.wall()) if timestamp is None else timestamp
        return {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **({"Content-Type": "application/json"} if body else {}),
            DELIVERY_HEADER: delivery_id or _new_id(),
            ATTEMPT_HEADER: str(attempt),
            **signature_headers(self.target.secret if secret is None else secret, at, body),
        }

    async def request(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        timeout_seconds: float | None = None,
    ) -> _Answer:
        """One bounded exchange; the body of any answer is read (up to 1 MiB)."""
        if self._destination_problem is not None:
            problem = self._destination_problem(url)
            if problem is not None:
                return _Answer(None, None, "blocked_destination", f"the URL {problem}", 0.0)
        payload: bytes | None = None

        async def read(response: WireResponse) -> None:
            nonlocal payload
            payload = await response.read(_ANSWER_CAP)

        limit = self.target.timeout_seconds if timeout_seconds is None else timeout_seconds
        budget = min(limit, self._deadline_at - self._clock.monotonic())
        sent = await exchange(
            self._send,
            method=method,
            url=url,
            headers=headers,
            body=body,
            budget=budget,
            monotonic=self._clock.monotonic,
            read=read,
        )
        return _Answer(sent.status, payload, sent.failure, sent.reason, sent.elapsed_seconds)

    async def post_cart(self, body: bytes, **signing: Any) -> tuple[_Answer, CartResult | None]:  # noqa: ANN401 - signed()'s keywords
        answer = await self.request(
            "POST", self.target.cart_url, body, self.signed(body, **signing)
        )
        if answer.failure is not None or answer.status != 200 or answer.body is None:
            return answer, None
        return answer, _cart.parse_operation_reply(answer.body)

    async def load(self, store_id: str, session_id: str) -> tuple[_Answer, CartLoad | None]:
        assert self.target.cart_get_url is not None  # noqa: S101 - callers checked
        url = _cart.load_url(self.target.cart_get_url, store_id=store_id, session_id=session_id)
        answer = await self.request("GET", url, b"", self.signed(b""))
        if answer.failure is not None or answer.status != 200 or answer.body is None:
            return answer, None
        return answer, _cart.parse_load_reply(answer.body)

    def cart_body(self, action: str, store_id: str, session_id: str, **fields: object) -> bytes:
        if action == "add":
            fields = {"sku": self._sku, "name": _CHECK_NAME, "price": Decimal(1), **fields}
        elif action in ("update", "remove"):
            fields = {"sku": self._sku, **fields}
        return _cart.operation_body(action, store_id=store_id, session_id=session_id, **fields)

    async def clear(self, store_id: str, session_id: str) -> None:
        """Leave nothing behind in a test session (its answer is checked elsewhere)."""
        await self.post_cart(self.cart_body("clear", store_id, session_id))

    # -- §4 products ------------------------------------------------------------------------

    async def products(self) -> None:
        unknown = f"vizochok-test-unknown-{_new_id()[:12]}"
        skus = _products.unique_skus([*self.options.skus, unknown])
        body = _products.request_body(skus, TEST_STORE_ID)
        answer = await self.request("POST", self.target.products_url, body, self.signed(body))
        if answer.failure is not None or answer.status != 200 or answer.body is None:
            self.add(
                "products.signed_call",
                FAILED,
                f"a signed call to {self.target.products_url} got {answer.describe()}",
                _call_fix(answer),
            )
            for name in ("products.unknown_sku", "products.entry_rules", "products.latency"):
                self.add(name, SKIPPED, "the signed call did not succeed")
            return
        self.products_answer = True
        result = _products.parse_reply(skus, answer.body)
        if result.failure is not None:
            self.add(
                "products.signed_call",
                FAILED,
                f"HTTP 200, but the reply is {result.failure}: {'; '.join(result.problems)}",
                'answer {"products": [{"sku", "price", "in_stock"}, ...]} (docs/webhooks.md §4)',
            )
            self.add("products.unknown_sku", SKIPPED, "the reply could not be read")
            self.add("products.entry_rules", SKIPPED, "the reply could not be read")
        else:
            self.add(
                "products.signed_call",
                PASSED,
                f"HTTP 200 in the documented shape: {len(result.available)} available, "
                f"{len(result.unavailable)} unavailable of {len(skus)} SKUs",
            )
            self._unknown_sku(unknown, result.available)
            self._entry_rules(result.problems)
        await self._latency(body)

    def _unknown_sku(self, unknown: str, available: Sequence[Any]) -> None:
        offered = next((offer for offer in available if offer.sku == unknown), None)
        if offered is None:
            self.add("products.unknown_sku", PASSED, f"{unknown} was left out or out of stock")
        else:
            self.add(
                "products.unknown_sku",
                FAILED,
                f"{unknown}, a SKU no shop sells, came back in stock at {offered.price}",
                "leave out SKUs you do not sell, or answer them with in_stock: false "
                "(docs/webhooks.md §4)",
            )

    def _entry_rules(self, problems: Sequence[str]) -> None:
        if not problems:
            self.add("products.entry_rules", PASSED, "every entry is within the limits")
            return
        self.add(
            "products.entry_rules",
            FAILED,
            "; ".join(problems),
            "each named entry is dropped: fix those values (docs/webhooks.md, "
            "'Limits on values' and 'Values outside the limits')",
        )

    async def _latency(self, body: bytes) -> None:
        count = max(2, self.options.latency_calls)
        seconds: list[float] = []
        failures: list[str] = []
        for _ in range(count):
            answer = await self.request("POST", self.target.products_url, body, self.signed(body))
            if answer.failure is None and answer.status == 200:
                seconds.append(answer.seconds)
            else:
                failures.append(answer.describe())
        if len(seconds) < 2:
            self.add(
                "products.latency",
                FAILED,
                f"{len(failures)} of {count} calls failed (first: {failures[0]})",
                _call_fix(None),
            )
            return
        cuts = statistics.quantiles(seconds, n=20, method="inclusive")
        p50, p95 = cuts[9], cuts[18]
        seen = f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms over {len(seconds)} calls"
        if failures:
            seen += f"; {len(failures)} failed (first: {failures[0]})"
        if p95 < LATENCY_ADVICE_SECONDS and not failures:
            self.add("products.latency", PASSED, seen)
        else:
            self.add(
                "products.latency",
                FAILED,
                seen,
                f"answer within {LATENCY_ADVICE_SECONDS:g} s at p95 (docs/webhooks.md §4): the "
                "chat waits for this call; cache prices and stock, or query them in bulk",
            )

    # -- §2 signing ---------------------------------------------------------------------------

    async def security(self) -> None:
        skus = list(self.options.skus)
        body = _products.request_body(skus, TEST_STORE_ID)
        changed = _products.request_body(skus, TEST_STORE_ID + "-changed")
        now = int(self._clock.wall())
        without = self.signed(body)
        del without[SIGNATURE_HEADER]
        cases = (
            (
                "security.forged_signature",
                "a signature made with another secret",
                body,
                self.signed(body, secret=generate_event_secret()),
                _SIGNING_FIX,
            ),
            (
                "security.body_changed",
                "a body changed after signing",
                changed,
                self.signed(body),
                "verify the signature over the raw body bytes as received, never over a "
                "re-serialised copy (docs/webhooks.md §2)",
            ),
            (
                "security.stale_timestamp",
                f"a correctly signed request whose timestamp is {STALE_SECONDS // 60} minutes old",
                body,
                self.signed(body, timestamp=now - STALE_SECONDS),
                "refuse a X-VIZOCHOK-Timestamp more than 300 s from your clock, before or after "
                "(docs/webhooks.md §2), so a captured request cannot be replayed",
            ),
            (
                "security.missing_signature",
                "a request without X-VIZOCHOK-Signature",
                body,
                without,
                "refuse a request that carries no signature (docs/webhooks.md §2)",
            ),
        )
        for name, what, sent, headers, fix in cases:
            if not self.products_answer:
                self.add(name, SKIPPED, "a correctly signed products call got no 200 either")
                continue
            answer = await self.request("POST", self.target.products_url, sent, headers)
            status = answer.status
            if answer.failure is None and status is not None and 400 <= status <= 499:
                advice = "" if status == 401 else "; 401 is advised"
                self.add(name, PASSED, f"{what} was refused with HTTP {status}{advice}")
            elif answer.failure is not None:
                self.add(
                    name, FAILED, f"{what} got no answer: {answer.describe()}", _call_fix(answer)
                )
            else:
                self.add(name, FAILED, f"{what} was accepted: HTTP {status}", fix)

    # -- §5 cart ------------------------------------------------------------------------------

    async def cart(self) -> None:
        await self._cart_actions()
        await self._idempotent_retry()
        await self._fractional_quantity()

    async def _cart_actions(self) -> None:
        session = new_test_session_id()
        seen: list[str] = []
        broken: list[str] = []
        actions: tuple[tuple[str, dict[str, object]], ...] = (
            ("add", {"quantity": Decimal(1)}),
            ("update", {"quantity": Decimal(2)}),
            ("remove", {}),
            ("clear", {}),
        )
        for action, fields in actions:
            answer, result = await self.post_cart(
                self.cart_body(action, TEST_STORE_ID, session, **fields)
            )
            if result is None or result.detail is not None:
                text = answer.describe() if result is None else "; ".join(result.problems)
                broken.append(f"{action}: {text}")
            else:
                seen.append(f"{action}: {_shown(result)}")
        if broken:
            self.add(
                "cart.actions",
                FAILED,
                "; ".join([*broken, *seen]),
                'answer every action with HTTP 200 and {"ok": true} or {"ok": false, '
                '"reason": "..."} (docs/webhooks.md §5)',
            )
        else:
            self.add("cart.actions", PASSED, "; ".join(seen))

    async def _idempotent_retry(self) -> None:
        session = new_test_session_id()
        body = self.cart_body("add", TEST_STORE_ID, session, quantity=Decimal(1))
        delivery = _new_id()
        first, first_result = await self.post_cart(body, delivery_id=delivery, attempt=1)
        second, second_result = await self.post_cart(body, delivery_id=delivery, attempt=2)
        name = "cart.idempotent_retry"
        fix = (
            "apply each X-VIZOCHOK-Delivery once: when the same id comes again with the same "
            "body, answer what you answered the first time without applying it again "
            "(docs/webhooks.md §3, Idempotency; the receiver kit does this)"
        )
        try:
            if first_result is None or second_result is None:
                self.add(
                    name,
                    FAILED,
                    f"first {first.describe()}, retry {second.describe()}",
                    fix if first_result is not None else _call_fix(first),
                )
                return
            if first_result.as_payload() != second_result.as_payload():
                self.add(
                    name,
                    FAILED,
                    f"the retry was answered {_shown(second_result)}, the first call "
                    f"{_shown(first_result)}",
                    fix,
                )
                return
            twice = await self._applied_twice(session) if first_result.ok else None
            if twice is not None:
                self.add(name, FAILED, twice, fix)
                return
            once = first_result.ok and self.target.cart_get_url is not None
            seen = f"both answered {_shown(first_result)}"
            self.add(name, PASSED, seen + ("; the cart GET shows it applied once" if once else ""))
        finally:
            await self.clear(TEST_STORE_ID, session)

    async def _applied_twice(self, session: str) -> str | None:
        """What the cart GET shows if a retried add was applied twice, else ``None``."""
        if self.target.cart_get_url is None:
            return None
        _, loaded = await self.load(TEST_STORE_ID, session)
        if loaded is None or not loaded.loaded:
            return None
        for item in loaded.items:
            if item.sku == self._sku and item.quantity != 1:
                return (
                    f"the same add sent twice with one delivery id left quantity "
                    f"{item.quantity} in the cart, not 1: the retry was applied again"
                )
        return None

    async def _fractional_quantity(self) -> None:
        name = "cart.fractional_quantity"
        if not self.options.sells_by_weight:
            self.add(name, SKIPPED, "the tenant does not sell by weight (--no-weight)")
            return
        session = new_test_session_id()
        body = self.cart_body("add", TEST_STORE_ID, session, quantity=Decimal("0.5"))
        try:
            answer, result = await self.post_cart(body)
        finally:
            await self.clear(TEST_STORE_ID, session)
        if result is not None and result.ok:
            self.add(
                name, PASSED, f"add of {self._sku} with quantity 0.5 answered {_shown(result)}"
            )
            return
        seen = answer.describe() if result is None else _shown(result)
        self.add(
            name,
            FAILED,
            f"add of {self._sku} with quantity 0.5 answered {seen}",
            "read quantity as a decimal (up to 3 places) where you sell by weight "
            "(docs/webhooks.md §5); if you do not, run the check with --no-weight, or pass "
            "--sku with a product sold by weight",
        )

    # -- §6 cart GET --------------------------------------------------------------------------

    async def cart_get(self) -> None:
        name = "cart_get.query_ids"
        if self.target.cart_get_url is None:
            self.add(name, SKIPPED, "no cart_get_url: VIZOCHOK does not load carts")
            return
        store_id = "vizochok-test store ü"
        session = new_test_session_id() + " сесія +&=%"
        _, added = await self.post_cart(self.cart_body("add", store_id, session, quantity=1))
        try:
            answer, loaded = await self.load(store_id, session)
        finally:
            await self.clear(store_id, session)
        fix = (
            "read store_id and session_id from the query as UTF-8 form encoding (+ is a space, "
            "%XX a byte), e.g. urllib.parse.parse_qs or URLSearchParams (docs/webhooks.md §6)"
        )
        what = f"store_id {store_id!r} and session_id {session!r}"
        if loaded is None or not loaded.loaded:
            seen = answer.describe() if loaded is None else "; ".join(loaded.problems)
            self.add(name, FAILED, f"the cart GET for {what} got {seen}", fix)
            return
        if added is not None and added.ok and all(i.sku != self._sku for i in loaded.items):
            self.add(
                name,
                FAILED,
                f"{self._sku} was added under {what}, but the cart GET did not find it",
                fix,
            )
            return
        shown = "the line added under them" if added is not None and added.ok else "its cart"
        self.add(name, PASSED, f"the cart GET for {what} answered 200 with {shown}")

    # -- §8-§10 events ------------------------------------------------------------------------

    async def events(self, endpoint: EventTarget) -> None:
        prefix = f"events.{endpoint.endpoint_id}"
        types = [
            name
            for name in EVENT_TYPES
            if any(type_matches(pattern, name) for pattern in endpoint.event_types)
        ]
        refused: list[str] = []
        first: tuple[str, bytes] | None = None
        for event_type in types:
            event_id, body = self.event(event_type)
            answer = await self.post_event(endpoint, event_type, event_id, body)
            if not _accepted(answer):
                refused.append(f"{event_type}: {answer.describe()}")
            first = first or (event_id, body)
        if refused:
            self.add(
                f"{prefix}.examples",
                FAILED,
                "; ".join(refused),
                "answer 2xx to every event type you subscribe, once it is verified "
                "(docs/webhooks.md §9); ignore fields you do not know",
            )
        else:
            self.add(f"{prefix}.examples", PASSED, f"{len(types)} event types accepted")
        if first is None:
            self.add(f"{prefix}.duplicate", SKIPPED, "no event type is subscribed")
        else:
            event_id, body = first
            event_type = types[0]
            answer = await self.post_event(endpoint, event_type, event_id, body, attempt=2)
            if _accepted(answer):
                self.add(f"{prefix}.duplicate", PASSED, f"a repeated {event_id} was accepted")
            else:
                self.add(
                    f"{prefix}.duplicate",
                    FAILED,
                    f"a repeated delivery of {event_id} got {answer.describe()}",
                    "a retried event is normal: answer 2xx to an id you already handled, "
                    "without handling it again (docs/webhooks.md §9)",
                )
        event_type = types[0] if types else next(iter(EVENT_TYPES))
        event_id, body = self.event(event_type)
        answer = await self.post_event(
            endpoint, event_type, event_id, body, secret=generate_event_secret()
        )
        status = answer.status
        if answer.failure is None and status is not None and 400 <= status <= 499:
            self.add(f"{prefix}.forged", PASSED, f"a forged event was refused with HTTP {status}")
        else:
            self.add(
                f"{prefix}.forged", FAILED, f"a forged event got {answer.describe()}", _SIGNING_FIX
            )

    def event(self, event_type: str) -> tuple[str, bytes]:
        event_id = f"evt_vizochok-test-{_new_id()[:20]}"
        at = datetime.fromtimestamp(self._clock.wall(), UTC)
        return event_id, event_body(event_id, event_type, at, EVENT_TYPES[event_type].example)

    async def post_event(
        self,
        endpoint: EventTarget,
        event_type: str,
        event_id: str,
        body: bytes,
        *,
        attempt: int = 1,
        secret: str | None = None,
    ) -> _Answer:
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            **event_headers(
                endpoint.signature_scheme,
                endpoint.secret if secret is None else secret,
                event_id=event_id,
                event_type=event_type,
                attempt=attempt,
                timestamp=int(self._clock.wall()),
                body=body,
            ),
        }
        return await self.request(
            "POST", endpoint.url, body, headers, timeout_seconds=endpoint.timeout_seconds
        )


def _accepted(answer: _Answer) -> bool:
    return answer.failure is None and answer.status is not None and 200 <= answer.status <= 299


def _shown(result: CartResult) -> str:
    payload = result.as_payload()
    return (
        '{"ok": true}'
        if payload.get("ok")
        else f'{{"ok": false, "reason": "{payload.get("reason")}"}}'
    )


def _call_fix(answer: _Answer | None) -> str:
    """What to do when a correctly signed call did not get HTTP 200."""
    if answer is not None and answer.failure == "blocked_destination":
        return (
            "VIZOCHOK calls public addresses only; to check a backend on your own machine, run "
            "`vizochok-dispatch check` there with --products-url/--cart-url"
        )
    if answer is not None and answer.failure is not None:
        return "make sure the backend runs and answers on that URL within timeout_seconds"
    code = None if answer is None else refusal_code(answer.body)
    if code in RECEIVER_HINTS:
        return RECEIVER_HINTS[code]
    return (
        "answer a correctly signed call with HTTP 200 and the documented JSON "
        "(docs/webhooks.md §3-§6); check the secret your receiver uses"
    )


async def check_tenant(
    dispatcher: Dispatcher, tenant_id: str, options: CheckOptions | None = None
) -> ConformanceReport | None:
    """Run every check against ``tenant_id``'s stored webhooks and its enabled event
    endpoints, through the dispatcher's own guarded sender and SSRF check (run from the
    server); ``None`` when the tenant has no webhook configuration."""
    config = await dispatcher.store.get_config(tenant_id)
    if config is None:
        return None
    config = in_effect(config, dispatcher.now())
    endpoints = await dispatcher.events.endpoints(tenant_id) if dispatcher.events.available else []
    return await run_conformance(
        CheckTarget(
            products_url=config.products_url,
            cart_url=config.cart_url,
            cart_get_url=config.cart_get_url,
            secret=config.secret,
            timeout_seconds=config.timeout_seconds,
        ),
        send=dispatcher.wire_sender,
        where=FROM_SERVER,
        options=options,
        events=[
            EventTarget(
                endpoint_id=endpoint.id,
                url=endpoint.url,
                event_types=endpoint.event_types,
                signature_scheme=endpoint.signature_scheme,
                secret=endpoint.secret,
                timeout_seconds=endpoint.timeout_seconds,
            )
            for endpoint in endpoints
            if endpoint.enabled
        ],
        destination_problem=dispatcher.destination_problem,
    )
