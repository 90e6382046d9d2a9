"""The demo scenario: the real dispatcher calls real tenant backends over 127.0.0.1.

The tenants configure their webhooks themselves, through the admin API served by uvicorn on
127.0.0.1 (each with its own API key), and end with a test-fire report.  Each step prints
what happened and checks it against the contract; the exit status is 0 only when every check
held, so the demo doubles as an end-to-end test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from .. import (
    CartResult,
    Dispatcher,
    ProductsResult,
    SqlConfigStore,
    signature_headers,
)
from ..admin import create_admin_app
from ..receiver.testing import serve_on_loopback
from ..tenants._tenants import TenantDirectory
from ..webhooks._conformance import report_lines as check_report_lines
from ..webhooks._testfire import report_lines
from ._events import EventTenants, run_events
from ._shop import CATALOG, FLAKY, FRESH, HUNG, SLOPPY, TenantBackends
from ._transcript import Transcript, library_logs_into

STORE, SESSION = "store-1", "chat-42"
PRODUCTS, CART, CART_ITEMS = (
    "/api/vizochok/check-products",
    "/api/vizochok/cart",
    "/api/vizochok/cart/items",
)
HUNG_TIMEOUT_SECONDS = 1.0
WEBHOOKS_API = "/api/v1/admin/webhooks"
TEST_FIRE_API = "/api/v1/admin/webhooks/test"
CALLS_API = "/api/v1/admin/webhooks/calls"
CHECK_API = "/api/v1/admin/webhooks/check"


def _loopback_overrides() -> dict[str, str]:
    """Let the dispatcher reach 127.0.0.1: loopback on the SSRF allow-list."""
    return {"allowed_networks": "127.0.0.0/8,::1/128"}


def _open_dispatcher(database_url: str, **overrides: Any) -> Dispatcher:  # noqa: ANN401 - settings fields
    """A dispatcher on the demo's database, allowed to call tenants on 127.0.0.1 over http."""
    return Dispatcher.from_database_url(
        database_url, allow_http=True, **_loopback_overrides(), **overrides
    )


def _name(sku: str) -> str:
    item = CATALOG.get(sku)
    return item.name if item else "(not in the catalog)"


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _payload(result: CartResult) -> str:
    return json.dumps(result.as_payload())


async def run_demo(
    write: Callable[[str], None] = print, *, database_dir: Path | None = None
) -> int:
    """Run every step; 0 when the contract held throughout, 1 otherwise."""
    transcript = Transcript(write)
    backends = TenantBackends()
    event_tenants = EventTenants()
    api_keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vizochok-demo-") as scratch:
        folder = database_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite+aiosqlite:///{folder / 'vizochok.db'}"
        transcript.emit("VIZOCHOK dispatch demo: the real dispatcher calling tenant backends")
        transcript.emit("built on vizochok_dispatch.receiver, over 127.0.0.1")
        with library_logs_into(transcript):
            async with serve_on_loopback(backends.app()) as base:
                try:
                    dispatcher = _open_dispatcher(database_url)
                    async with (
                        dispatcher,
                        serve_on_loopback(
                            create_admin_app(dispatcher.settings, dispatcher=dispatcher)
                        ) as admin_base,
                        httpx.AsyncClient(base_url=admin_base) as admin,
                    ):
                        demo = _Demo(transcript, dispatcher, backends, base, admin, api_keys)
                        await demo.run(database_url)
                finally:
                    backends.hung.released.set()  # let the hung handler end before shutdown
            await run_events(transcript, event_tenants, database_url, _open_dispatcher)
    shown = "\n".join(transcript.lines)
    transcript.heading("Summary")
    secrets = [*backends.secrets.values(), *event_tenants.secrets.values()]
    transcript.check(
        bool(secrets) and all(s not in shown for s in secrets),
        "no secret appears anywhere in this transcript (logs included)",
    )
    transcript.check(
        bool(api_keys) and all(key not in shown for key in api_keys.values()),
        "no API key appears anywhere in this transcript",
    )
    transcript.emit()
    transcript.emit(f"{transcript.passed} passed, {len(transcript.failed)} failed")
    return 0 if transcript.ok else 1


class _Demo:
    """The scenario's shared state: who is who, and the admin API client."""

    def __init__(  # noqa: PLR0917 - one private constructor, called once
        self,
        transcript: Transcript,
        dispatcher: Dispatcher,
        backends: TenantBackends,
        base: str,
        admin: httpx.AsyncClient,
        api_keys: dict[str, str],
    ) -> None:
        self.t = transcript
        self.dispatcher = dispatcher
        self.backends = backends
        self.base = base
        self.admin = admin
        self.api_keys = api_keys

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_keys[tenant]}"}

    async def run(self, database_url: str) -> None:
        await self.setup(database_url)
        await _products(self.t, self.dispatcher, self.backends)
        await _cart(self.t, self.dispatcher, self.backends)
        await _forged(self.t, self.backends, self.base)
        await _retry(self.t, self.dispatcher, self.backends)
        await _hung(self.t, self.dispatcher)
        await self.test_fire()
        await self.conformance()
        await self.call_log()
        await self.observability()

    async def setup(self, database_url: str) -> None:
        t = self.t
        t.heading("Setup: tenants configure their webhooks through the admin API")
        t.say(f"tenant backends: {self.base}/<tenant>/api/vizochok/... (uvicorn, this process)")
        t.say(f"admin API:       {self.admin.base_url} (uvicorn, this process; docs at /docs)")
        signing_in = await self.admin.get("/panel/sign-in")
        t.say(
            f"admin panel:     {self.admin.base_url}/panel/ (sign in with a tenant's API key; "
            f"HTTP {signing_in.status_code})"
        )
        t.say(f"config store:    {database_url}")
        store = self.dispatcher.store.inner
        assert isinstance(store, SqlConfigStore)  # noqa: S101 - from_database_url built it
        directory = TenantDirectory.for_store(store)
        plan = ((FRESH, 5.0), (FLAKY, 5.0), (HUNG, HUNG_TIMEOUT_SECONDS), (SLOPPY, 5.0))
        for tenant, _ in plan:
            _, issued = await directory.create_tenant(
                tenant.replace("-", " ").title(), tenant_id=tenant
            )
            self.api_keys[tenant] = issued.key
            t.say(f"tenant {tenant:<13} API key {issued.key_id} (sk_..., shown once, not here)")
        statuses, generated = [], []
        for tenant, timeout in plan:
            prefix = f"{self.base}/{tenant}"
            response = await self.admin.patch(
                WEBHOOKS_API,
                headers=self.auth(tenant),
                json={
                    "products_url": prefix + PRODUCTS,
                    "cart_url": prefix + CART,
                    "cart_get_url": prefix + CART_ITEMS if tenant == FRESH else None,
                    "timeout_seconds": timeout,
                },
            )
            body = response.json()
            statuses.append(response.status_code)
            secret = body.get("secret") or ""
            generated.append(secret.startswith("whsec_"))
            self.backends.secrets[tenant] = secret  # the tenant stores what it was shown
            t.say(
                f"PATCH {WEBHOOKS_API} as {tenant:<13} -> HTTP {response.status_code}, "
                f"secret {body.get('secret_masked')} (generated), timeout {timeout:g} s"
            )
        t.check(statuses == [200] * len(plan), "each tenant saved its webhooks over real HTTP")
        t.check(all(generated), "a secret is generated on the first save, returned once (§1, §7)")

        shown = await self.admin.get(WEBHOOKS_API, headers=self.auth(FRESH))
        masked = shown.json()
        t.say(
            f"GET {WEBHOOKS_API} as {FRESH} -> secret {masked['secret_masked']}, "
            f"full secret: {masked['secret']}"
        )
        t.check(
            masked["secret"] is None and masked["secret_masked"].startswith("whsec_…"),
            "GET shows the secret masked, never in full",
        )
        refused = await self.admin.patch(
            WEBHOOKS_API,
            headers=self.auth(FRESH),
            json={"timeout_seconds": 99, "cart_url": "ftp://shop.example/cart"},
        )
        fields = refused.json().get("error", {}).get("fields", [])
        for entry in fields:
            t.say(
                f"PATCH refused -> HTTP {refused.status_code} {entry['field']}: {entry['message']}"
            )
        after = await self.dispatcher.store.get_config(FRESH)
        t.check(
            refused.status_code == 422
            and {f["field"] for f in fields} == {"timeout_seconds", "cart_url"}
            and after is not None
            and after.version == 1,
            "an invalid PATCH is refused field by field and saves nothing",
        )
        stranger = await self.admin.get(
            WEBHOOKS_API, headers={"Authorization": "Bearer sk_" + "0" * 43}
        )
        code = stranger.json()["error"]["code"]
        t.say(f"GET with an unknown key -> HTTP {stranger.status_code} {code}")
        t.check(stranger.status_code == 401, "an unknown API key gets 401 and learns nothing")

    async def test_fire(self) -> None:
        t = self.t
        t.heading("7. Test-fire through the admin API (what a tenant's developer runs)")
        reports = {}
        for tenant in (FRESH, SLOPPY):
            response = await self.admin.post(
                TEST_FIRE_API,
                headers=self.auth(tenant),
                json={"skus": ["milk-001", "milk-002", "bread-042"]},
            )
            reports[tenant] = report = response.json()
            t.say(f"POST {TEST_FIRE_API} as {tenant} -> HTTP {response.status_code}")
            for line in report_lines(report):
                t.say(line)
        fresh, sloppy = reports[FRESH], reports[SLOPPY]
        t.check(
            fresh["ok"] and fresh["status"] == 200 and fresh["problems"] == [],
            "a correct tenant's test-fire is ok: 200, one signed attempt, no problems",
        )
        t.check(
            "milk-002: price is a string, not a number" in sloppy["problems"]
            and "bread-042: in_stock is missing or not a boolean" in sloppy["problems"],
            "the test-fire report lists every problem in the reply",
        )
        t.check(
            [o["sku"] for o in sloppy["result"]["available"]] == ["milk-001"],
            "a broken entry costs only its own SKU (docs/webhooks.md §4)",
        )

    async def conformance(self) -> None:
        t = self.t
        t.heading(f"Conformance check of {FRESH}'s backend (vizochok-dispatch check)")
        t.say(
            "on a tenant's machine: vizochok-dispatch check --products-url ... --cart-url ... "
            "--cart-get-url ... --secret-env VIZOCHOK_CHECK_SECRET; from the server: the API"
        )
        response = await self.admin.post(CHECK_API, headers=self.auth(FRESH), json={})
        report = response.json()
        t.say(f"POST {CHECK_API} as {FRESH} -> HTTP {response.status_code}")
        for line in check_report_lines(report):
            t.say(line)
        t.check(
            response.status_code == 200
            and report["ok"]
            and report["failed"] == 0
            and report["skipped"] == 0,
            "the receiver kit's backend passes every check: signed products calls, refused "
            "forgeries, idempotent cart retries, the cart GET's query (issue 15)",
        )

    async def call_log(self) -> None:
        t = self.t
        t.heading("The call log: each tenant reads its own failed calls (and sampled ones)")
        await self.dispatcher.call_log.flush()  # the log is written in the background
        pages = {}
        for tenant in (HUNG, SLOPPY):
            response = await self.admin.get(CALLS_API, headers=self.auth(tenant))
            pages[tenant] = calls = response.json()["calls"]
            t.say(
                f"GET {CALLS_API} as {tenant} -> HTTP {response.status_code}, {len(calls)} call(s)"
            )
            for call in calls:
                attempts = (
                    ", ".join(
                        f"{a['status'] or a['detail']} after {a['latency_ms']:.0f} ms"
                        for a in call["attempts"]
                    )
                    or "nothing sent"
                )
                t.say(
                    f"  {call['webhook']} {call['detail'] or call['outcome']}: {attempts}; "
                    f"{len(call['problems'])} problem line(s)"
                )
        hung = pages[HUNG]
        t.check(
            [len(c["attempts"]) for c in hung if c["detail"] == "timeout"] == [1],
            "the hung tenant sees its timeout, with its one attempt",
        )
        problems = [line for call in pages[SLOPPY] for line in call["problems"]]
        t.check(
            "milk-002: price is a string, not a number" in problems,
            "the sloppy tenant sees the problem lines of its replies",
        )
        t.check(
            {c["delivery_id"] for c in hung}.isdisjoint(c["delivery_id"] for c in pages[SLOPPY]),
            "neither tenant sees the other's calls",
        )

    async def observability(self) -> None:
        t = self.t
        t.heading("Operators: health checks and Prometheus metrics on the admin app")
        for path in ("/healthz", "/readyz"):
            response = await self.admin.get(path)
            t.say(f"GET {path} -> HTTP {response.status_code} {response.text}")
        ready = await self.admin.get("/readyz")
        t.check(
            ready.status_code == 200 and ready.json()["status"] == "ready",
            "the instance is ready: store reachable, schema at head, worker running",
        )
        scrape = await self.admin.get("/metrics")
        calls = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in scrape.text.splitlines()
            if line.startswith("vizochok_webhook_calls_total{")
        }
        for series, count in sorted(calls.items()):
            t.say(f"  {series} {count:g}")
        failures = {
            detail
            for series in calls
            for detail in ("timeout", "http_status", "invalid_response")
            if f'detail="{detail}"' in series
        }
        t.check(
            scrape.status_code == 200 and {"timeout"} <= failures,
            "GET /metrics counts the demo's calls by webhook, outcome and failure detail",
        )
        t.check(
            all(name in scrape.text for name in _SERIES),
            "the scrape has latency histograms, retries, circuits, the config cache, the "
            "event backlog and the call log's drops",
        )


#: Series the demo's scrape must show (README, Observability).
_SERIES = (
    "vizochok_webhook_call_duration_seconds_bucket",
    "vizochok_webhook_attempt_duration_seconds_bucket",
    "vizochok_webhook_retries_total",
    "vizochok_webhook_circuits",
    "vizochok_config_cache_hits_total",
    "vizochok_event_backlog_deliveries",
    "vizochok_call_log_dropped_total",
)


async def _products(t: Transcript, dispatcher: Dispatcher, backends: TenantBackends) -> None:
    asked = ["milk-001", "milk-002", "kefir-003", "bread-042", "caviar-999", "milk-001"]
    t.heading(f"1. Product check at {FRESH}")
    t.say("asked for: " + ", ".join(asked))
    result = await dispatcher.check_products(FRESH, skus=asked, store_id=STORE)
    _show_offers(t, result)
    t.check(
        [o.sku for o in result.available] == ["milk-001", "milk-002", "bread-042"],
        "available products come back in the order asked, repeats folded (docs/webhooks.md §4)",
    )
    t.check(
        result.unavailable == ("kefir-003", "caviar-999"),
        "out of stock (kefir-003) and unknown (caviar-999) SKUs are unavailable",
    )
    promo = next((o for o in result.available if o.sku == "milk-002"), None)
    t.check(
        promo is not None and promo.promo_price == Decimal("42.00") and promo.promo_label == "-19%",
        "the promotion comes through: 52.00 -> 42.00, label -19%",
    )
    t.check(
        all(isinstance(o.price, Decimal) for o in result.available)
        and str(result.available[0].price) == "45.90",
        "money is Decimal end to end (45.90 stays 45.90)",
    )
    t.check(len(backends.fresh.products_deliveries) == 1, "the tenant was called once")


def _show_offers(t: Transcript, result: ProductsResult) -> None:
    for offer in result.available:
        price = _money(offer.price)
        if offer.promo_price is not None:
            price = f"{price} -> {_money(offer.promo_price)} ({offer.promo_label})"
        t.say(f"  available   {offer.sku:<11} {_name(offer.sku):<22} {price}")
    for sku in result.unavailable:
        t.say(f"  unavailable {sku:<11} {_name(sku)}")


async def _cart(t: Transcript, dispatcher: Dispatcher, backends: TenantBackends) -> None:
    t.heading(f"2. Cart operations at {FRESH} (session {SESSION})")
    d, store, session = dispatcher, STORE, SESSION

    def add(sku: str, quantity: str) -> Awaitable[CartResult]:
        price = str(CATALOG[sku].price)
        return d.cart_add(
            FRESH,
            store_id=store,
            session_id=session,
            sku=sku,
            name=_name(sku),
            quantity=quantity,
            price=price,
        )

    steps: list[tuple[str, Callable[[], Awaitable[CartResult]]]] = [
        ("add 2 x milk-001 at 45.90", lambda: add("milk-001", "2")),
        ("add 1.25 kg apples-kg at 54.90", lambda: add("apples-kg", "1.25")),
        ("add 1 x bread-042 at 32.00", lambda: add("bread-042", "1")),
        (
            "update milk-001 to 3",
            lambda: d.cart_update(
                FRESH, store_id=store, session_id=session, sku="milk-001", quantity=3
            ),
        ),
        (
            "remove bread-042",
            lambda: d.cart_remove(FRESH, store_id=store, session_id=session, sku="bread-042"),
        ),
    ]
    answers = []
    for label, call in steps:
        result = await call()
        answers.append(result.as_payload())
        t.say(f"{label:<32} -> {_payload(result)}")
    t.check(answers == [{"ok": True}] * len(steps), "add, update and remove are accepted")

    refused = await add("kefir-003", "1")
    t.say(f"{'add 1 x kefir-003 (out of stock)':<32} -> {_payload(refused)}")
    t.check(
        refused.as_payload() == {"ok": False, "reason": "out_of_stock"},
        "the tenant's refusal reason is passed on as given (docs/webhooks.md §5)",
    )

    t.heading(f"3. Cart load at {FRESH}")
    loaded = await d.load_cart(FRESH, store_id=store, session_id=session)
    for item in loaded.items:
        unit = f" {item.unit}" if item.unit else " x"
        t.say(f"  {item.sku:<11} {item.name:<22} {item.quantity}{unit} at {_money(item.price)}")
    t.check(
        loaded.loaded
        and [(i.sku, i.quantity) for i in loaded.items]
        == [("milk-001", Decimal(3)), ("apples-kg", Decimal("1.25"))],
        "the loaded cart is what the operations left: 3 milk, 1.25 kg apples (docs/webhooks.md §6)",
    )
    cleared = await d.cart_clear(FRESH, store_id=store, session_id=session)
    t.say(f"clear -> {_payload(cleared)}")
    empty = await d.load_cart(FRESH, store_id=store, session_id=session)
    t.say(f"load again -> loaded={empty.loaded}, {len(empty.items)} items")
    t.check(
        cleared.ok and empty.loaded and empty.items == (),
        "after clear the cart loads as empty, and is known to be empty",
    )
    unknown = await d.load_cart(HUNG, store_id=store, session_id=session)
    t.say(f"load at {HUNG} (no cart_get_url) -> loaded={unknown.loaded}, {unknown.failure}")
    t.check(
        not unknown.loaded and unknown.failure == "not_configured",
        "an unconfigured cart GET reads as unknown, never as an empty cart",
    )
    t.check(backends.fresh.cart_calls == 7, "the tenant's cart code ran once per call (7 calls)")


async def _forged(t: Transcript, backends: TenantBackends, base: str) -> None:
    t.heading(f"4. A forged cart call to {FRESH} (signed with the wrong secret)")
    body = b'{"action":"clear","store_id":"store-1","session_id":"victim"}'
    headers = {
        "Content-Type": "application/json",
        "X-VIZOCHOK-Delivery": "forged-0001",
        **signature_headers("whsec_an_attackers_guess_000000", int(time.time()), body),
    }
    calls_before = backends.fresh.cart_calls
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base}/{FRESH}{CART}", content=body, headers=headers)
    t.say(f"HTTP {response.status_code} {response.text}")
    t.check(
        response.status_code == 401 and response.json().get("error") == "signature_mismatch",
        "the receiver kit refuses it with 401 and a JSON reason",
    )
    t.check(backends.fresh.cart_calls == calls_before, "the tenant's cart code never ran")


async def _retry(t: Transcript, dispatcher: Dispatcher, backends: TenantBackends) -> None:
    t.heading(f"5. Product check at {FLAKY}: 503 once, then 200")
    started = time.monotonic()
    result, delivery = await dispatcher.check_products_with_delivery(
        FLAKY, skus=["milk-001", "bread-042"], store_id=STORE
    )
    elapsed = time.monotonic() - started
    attempts = delivery.attempts if delivery else ()
    for attempt in attempts:
        t.say(f"attempt {attempt.number}: HTTP {attempt.status} after {attempt.elapsed_ms:.0f} ms")
    available = ", ".join(o.sku for o in result.available)
    t.say(f"result: {available} available; whole call {elapsed:.2f} s")
    t.check([a.status for a in attempts] == [503, 200], "a 5xx is retried once (webhooks.md §3)")
    # asyncio may wake a timer up to its clock resolution early; 0.95 s still proves the wait
    t.check(elapsed >= 0.95, "the retry waited the contract's 1 s")
    ids = backends.flaky.products_deliveries
    t.check(len(ids) == 2 and ids[0] == ids[1], "both attempts carried the same delivery id")
    t.check(result.ok and len(result.available) == 2, "the second answer is the result")


async def _hung(t: Transcript, dispatcher: Dispatcher) -> None:
    t.heading(f"6. Product check at {HUNG}: the endpoint never answers")
    t.say(f"{HUNG} is configured with timeout_seconds={HUNG_TIMEOUT_SECONDS}")
    started = time.monotonic()
    result, delivery = await dispatcher.check_products_with_delivery(
        HUNG, skus=["milk-001", "bread-042"], store_id=STORE
    )
    elapsed = time.monotonic() - started
    t.say(f"cut off after {elapsed:.2f} s: failure={result.failure}")
    t.say(f"unavailable: {', '.join(result.unavailable)}")
    t.check(result.failure == "timeout", "no answer within timeout_seconds is a timeout failure")
    t.check(
        HUNG_TIMEOUT_SECONDS * 0.9 <= elapsed < HUNG_TIMEOUT_SECONDS + 1.5,
        f"the call ended at its {HUNG_TIMEOUT_SECONDS:g} s limit, not later",
    )
    t.check(delivery is not None and len(delivery.attempts) == 1, "a timeout is not retried")
    t.check(
        result.unavailable == ("milk-001", "bread-042") and not result.available,
        "on a failure every requested SKU is unavailable (docs/webhooks.md §4)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vizochok_dispatch.demo [--db-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m vizochok_dispatch.demo", description=__doc__)
    parser.add_argument(
        "--db-dir",
        type=Path,
        default=None,
        help="keep the SQLite config store in DIR (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if callable(reconfigure):
        reconfigure(errors="backslashreplace")
    return asyncio.run(run_demo(print, database_dir=args.db_dir))
