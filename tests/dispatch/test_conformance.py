"""``vizochok-dispatch check`` (docs/webhooks.md §2-§6): a conformant receiver passes every
check; a sloppy one fails exactly the checks it breaks, with a fix for each."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner, Result
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from structlog.testing import capture_logs

from vizochok_dispatch import (
    ConfigRules,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    SecretBox,
    SqlConfigStore,
)
from vizochok_dispatch._cli import main
from vizochok_dispatch.demo._shop import GroceryBackend
from vizochok_dispatch.http._attempt import Clock
from vizochok_dispatch.http._destinations import DestinationPolicy
from vizochok_dispatch.http._transport import AiohttpTransport
from vizochok_dispatch.receiver import create_receiver_app
from vizochok_dispatch.receiver.testing import serve_on_loopback
from vizochok_dispatch.webhooks._conformance import (
    FROM_SERVER,
    OWN_MACHINE,
    CheckOptions,
    CheckTarget,
    ConformanceReport,
    EventTarget,
    check_tenant,
    report_lines,
    run_conformance,
)

pytestmark = pytest.mark.loopback

#: A canary: it must never appear in a report.
SECRET = "whsec_conformance_canary_9f3b2c71d0e4a8"
#: Event endpoints' secret (standard base64 after whsec_, for both schemes); also a canary.
EVENT_SECRET = "whsec_" + base64.b64encode(b"conformance-event-canary-32bytes").decode()
SLOW_SECONDS = 3.0


@dataclass
class MovingClock:
    """Monotonic time that moves only when a handler says it took time (no real waiting)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SloppyShop:
    """Accepts anything unverified, applies a retried cart call twice, answers products in 3 s
    (on the injected clock)."""

    clock: MovingClock
    carts: dict[tuple[str, str], dict[str, Decimal]] = field(default_factory=dict)

    async def products(self, request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        self.clock.now += SLOW_SECONDS
        return JSONResponse(
            {
                "products": [
                    {"sku": sku, "price": 45.9, "in_stock": True}
                    for sku in body["skus"]
                    if sku.startswith(("milk", "bread"))
                ]
            }
        )

    async def cart(self, request: Request) -> JSONResponse:
        op = json.loads(await request.body())
        cart = self.carts.setdefault((op["store_id"], op["session_id"]), {})
        if op["action"] == "add":
            cart[op["sku"]] = cart.get(op["sku"], Decimal(0)) + Decimal(str(op["quantity"]))
        elif op["action"] == "update":
            cart[op["sku"]] = Decimal(str(op["quantity"]))
        elif op["action"] == "remove":
            cart.pop(op["sku"], None)
        else:
            cart.clear()
        return JSONResponse({"ok": True})

    async def event(self, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"received": True})

    async def items(self, request: Request) -> JSONResponse:
        key = (request.query_params["store_id"], request.query_params["session_id"])
        lines = [
            {"sku": sku, "name": "Milk", "price": 1, "quantity": float(quantity)}
            for sku, quantity in self.carts.get(key, {}).items()
        ]
        return JSONResponse({"items": lines})


async def _handled(event: object) -> None:
    """The good shop handles every event."""


async def _misread_items(backend: GroceryBackend, request: Request) -> JSONResponse:
    """The good shop's carts behind a query read with ``unquote``: a ``+`` stays a plus."""
    raw = dict(pair.split("=", 1) for pair in request.url.query.split("&"))
    key = (unquote(raw["store_id"]), unquote(raw["session_id"]))
    lines = backend.carts.get(key, {}).values()
    return JSONResponse(
        {
            "items": [
                {"sku": line.sku, "name": line.name, "price": 1, "quantity": float(line.quantity)}
                for line in lines
            ]
        }
    )


def _app(clock: MovingClock) -> Starlette:
    good = GroceryBackend()
    sloppy = SloppyShop(clock)
    return Starlette(
        routes=[
            Mount(
                "/good",
                app=create_receiver_app(
                    secret=[SECRET, EVENT_SECRET],
                    check_products=good.check_products,
                    cart_operation=good.cart_operation,
                    load_cart=good.load_cart,
                    on_event=_handled,
                ),
            ),
            Route("/sloppy/products", sloppy.products, methods=["POST"]),
            Route("/sloppy/cart", sloppy.cart, methods=["POST"]),
            Route("/sloppy/cart/items", sloppy.items, methods=["GET"]),
            Route("/sloppy/events", sloppy.event, methods=["POST"]),
            Route("/misread/cart/items", partial(_misread_items, good), methods=["GET"]),
        ]
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, MovingClock]]:
    clock = MovingClock()
    async with serve_on_loopback(_app(clock)) as base:
        yield base, clock


async def _check(
    base: str,
    clock: MovingClock,
    products: str = "/products",
    events: Sequence[EventTarget] = (),
    cart_get_url: str | None = None,
    **options: object,
) -> ConformanceReport:
    transport = AiohttpTransport(allowed_networks="127.0.0.0/8")
    try:
        return await run_conformance(
            CheckTarget(
                products_url=f"{base}{products}",
                cart_url=f"{base}/cart",
                cart_get_url=cart_get_url or f"{base}/cart/items",
                secret=SECRET,
            ),
            send=transport.send_wire,
            where=OWN_MACHINE,
            options=CheckOptions(**options),  # type: ignore[arg-type]
            events=events,
            clock=Clock(monotonic=clock),
        )
    finally:
        await transport.aclose()


def _statuses(report: ConformanceReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


async def test_the_receiver_kit_passes_every_check(served: tuple[str, MovingClock]) -> None:
    """The receiver kit's app, as the demo's good tenant runs it, passes every check."""
    base, clock = served
    with capture_logs() as logs:
        report = await _check(f"{base}/good/api/vizochok", clock, "/check-products")
    assert report.ok, report_lines(report.as_dict())
    assert any(entry["event"] == "receiver.refused" for entry in logs)
    assert SECRET not in str(logs)
    assert set(_statuses(report).values()) == {"passed"}
    assert set(_statuses(report)) == {
        "products.signed_call",
        "products.unknown_sku",
        "products.entry_rules",
        "products.latency",
        "security.forged_signature",
        "security.body_changed",
        "security.stale_timestamp",
        "security.missing_signature",
        "cart.actions",
        "cart.idempotent_retry",
        "cart.fractional_quantity",
        "cart_get.query_ids",
    }
    shown = {check.name: check.seen for check in report.checks}
    assert "refused with HTTP 401" in shown["security.forged_signature"]
    assert "applied once" in shown["cart.idempotent_retry"]
    assert SECRET not in json.dumps(report.as_dict(), ensure_ascii=False)


async def test_a_sloppy_tenant_fails_exactly_what_it_breaks(
    served: tuple[str, MovingClock],
) -> None:
    """Forged and stale requests accepted, a retry applied twice, 3 s answers: exactly those
    checks fail, each with a fix; the rest pass."""
    base, clock = served
    report = await _check(f"{base}/sloppy", clock)
    failed = {check.name for check in report.checks if check.status == "failed"}
    assert failed == {
        "security.forged_signature",
        "security.body_changed",
        "security.stale_timestamp",
        "security.missing_signature",
        "cart.idempotent_retry",
        "products.latency",
    }, report_lines(report.as_dict())
    assert not report.ok
    assert all(c.fix for c in report.checks if c.status == "failed")
    assert all(c.status == "passed" for c in report.checks if c.name not in failed)
    shown = {check.name: check for check in report.checks}
    assert "p95 3000 ms" in shown["products.latency"].seen
    assert "quantity 2" in shown["cart.idempotent_retry"].seen
    assert "X-VIZOCHOK-Delivery" in (shown["cart.idempotent_retry"].fix or "")
    assert "was accepted: HTTP 200" in shown["security.forged_signature"].seen
    assert SECRET not in json.dumps(report.as_dict(), ensure_ascii=False)


async def test_fractional_quantity_is_skipped_for_a_shop_that_does_not_sell_by_weight(
    served: tuple[str, MovingClock],
) -> None:
    """``sells_by_weight=False`` skips the fractional-quantity check and still passes."""
    base, clock = served
    report = await _check(
        f"{base}/good/api/vizochok", clock, "/check-products", sells_by_weight=False
    )
    assert _statuses(report)["cart.fractional_quantity"] == "skipped"
    assert report.ok


async def test_refusals_prove_nothing_when_a_signed_call_fails_too(
    served: tuple[str, MovingClock],
) -> None:
    """A products URL that answers 404 to everything fails the signed call and skips the
    security checks instead of passing them."""
    base, clock = served
    report = await _check(f"{base}/good/api/vizochok", clock, "/nowhere")
    statuses = _statuses(report)
    assert statuses["products.signed_call"] == "failed"
    assert {statuses[n] for n in statuses if n.startswith("security.")} == {"skipped"}


@pytest.fixture
def threaded_shop() -> Iterator[tuple[str, MovingClock]]:
    """The same app served from its own thread and event loop (the CLI runs ``asyncio.run``)."""
    clock = MovingClock()
    started: queue.Queue[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def serve() -> None:
        stop = asyncio.Event()
        async with serve_on_loopback(_app(clock)) as base:
            started.put((base, asyncio.get_running_loop(), stop))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    base, loop, stop = started.get(timeout=10)
    try:
        yield base, clock
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)


def _cli(
    base: str, *extra: str, env: dict[str, str] | None = None, products: str = "/products"
) -> Result:
    args = [
        "check",
        "--products-url",
        f"{base}{products}",
        "--cart-url",
        f"{base}/cart",
        "--cart-get-url",
        f"{base}/cart/items",
        *extra,
    ]
    return CliRunner().invoke(main, args, env=env or {"VIZOCHOK_CHECK_SECRET": SECRET})


def test_cli_exits_0_when_every_check_passes(
    threaded_shop: tuple[str, MovingClock], caplog: pytest.LogCaptureFixture
) -> None:
    """CLI ``check`` with URLs: a human report saying "your own machine", exit 0; no secret."""
    base, _ = threaded_shop
    result = _cli(f"{base}/good/api/vizochok", "--sku", "milk-001", products="/check-products")
    assert result.exit_code == 0, result.output
    assert "run from your own machine" in result.stdout
    assert "ok   security.forged_signature: " in result.stdout
    assert "12 passed, 0 failed, 0 skipped: all passed" in result.stdout
    assert SECRET not in result.output + caplog.text


def test_cli_exits_1_with_a_json_report_when_a_check_fails(
    threaded_shop: tuple[str, MovingClock], tmp_path: Path
) -> None:
    """CLI ``check --json`` against the sloppy shop: JSON with the failures, exit 1; the
    secret read from --secret-file is never printed."""
    base, _ = threaded_shop
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n", "utf-8")
    result = _cli(f"{base}/sloppy", "--json", "--secret-file", str(secret_file), env={})
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["where"] == OWN_MACHINE
    failed = {c["name"] for c in report["checks"] if c["status"] == "failed"}
    assert "security.forged_signature" in failed and "cart.idempotent_retry" in failed
    assert SECRET not in result.output


def test_cli_without_a_secret_is_a_usage_error() -> None:
    """No secret in the file or variable: exit 2, naming the ways to give one."""
    result = _cli("http://127.0.0.1:9", env={"VIZOCHOK_CHECK_SECRET": ""})
    assert result.exit_code == 2
    assert "--secret-file" in result.output and "shell's history" in result.output


async def test_event_endpoints_are_checked_for_examples_duplicates_and_forgeries(
    served: tuple[str, MovingClock],
) -> None:
    """The receiver kit accepts each subscribed type's example and a duplicate and refuses a
    forged event; a receiver that accepts anything fails only the forged-event check."""
    base, clock = served
    secret = EVENT_SECRET

    def endpoint(endpoint_id: str, url: str) -> EventTarget:
        return EventTarget(
            endpoint_id, url, ("order.*", "chat.session.created"), "vizochok", secret
        )

    good = endpoint("ep_good", f"{base}/good/api/vizochok/events")
    sloppy = endpoint("ep_sloppy", f"{base}/sloppy/events")
    report = await _check(
        f"{base}/good/api/vizochok", clock, "/check-products", events=[good, sloppy]
    )
    statuses = {n: s for n, s in _statuses(report).items() if n.startswith("events.")}
    assert statuses == {
        "events.ep_good.examples": "passed",
        "events.ep_good.duplicate": "passed",
        "events.ep_good.forged": "passed",
        "events.ep_sloppy.examples": "passed",
        "events.ep_sloppy.duplicate": "passed",
        "events.ep_sloppy.forged": "failed",
    }, report_lines(report.as_dict())
    shown = {check.name: check.seen for check in report.checks}
    assert shown["events.ep_good.examples"] == "4 event types accepted"
    assert secret not in json.dumps(report.as_dict(), ensure_ascii=False)


async def test_from_the_server_the_ssrf_guard_applies(served: tuple[str, MovingClock]) -> None:
    """``check_tenant`` (the admin API's and ``check --tenant``'s path) calls through the
    dispatcher's guard: a loopback URL is blocked before anything is sent, and the fix says
    to run the check on one's own machine."""
    base, _ = served
    permissive = ConfigRules(
        allow_http=True,
        destinations=DestinationPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)),
    )
    store = InMemoryConfigStore(rules=permissive)
    kit = f"{base}/good/api/vizochok"
    await store.save_config(
        "t1",
        products_url=f"{kit}/check-products",
        cart_url=f"{kit}/cart",
        cart_get_url=f"{kit}/cart/items",
        timeout_seconds=2.0,
        secret=SECRET,
    )
    async with Dispatcher(store, settings=DispatchSettings(allow_http=True)) as dispatcher:
        report = await check_tenant(dispatcher, "t1")
        assert await check_tenant(dispatcher, "nobody") is None
    assert report is not None and report.where == FROM_SERVER
    first = report.checks[0]
    assert (first.name, first.status) == ("products.signed_call", "failed")
    assert "blocked_destination: the URL points to a non-public address" in first.seen
    assert "on your own machine" in (first.fix or "")
    assert not any(c.status == "passed" for c in report.checks), report_lines(report.as_dict())


def _store_config(database_url: str, base: str) -> None:
    """Tenant ``t1``'s webhooks at ``base`` (the receiver kit), saved with the CLI's keys."""

    async def save() -> None:
        store = SqlConfigStore(
            database_url,
            auto_migrate=True,
            rules=DispatchSettings(allow_http=True, allowed_networks="127.0.0.0/8").config_rules(),
            secret_box=SecretBox.from_keyring(KEYS),
        )
        try:
            await store.save_config(
                "t1",
                products_url=f"{base}/check-products",
                cart_url=f"{base}/cart",
                cart_get_url=f"{base}/cart/items",
                secret=SECRET,
            )
        finally:
            await store.close()

    asyncio.run(save())


KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()


def test_cli_check_tenant_uses_the_stored_config_from_the_server(
    threaded_shop: tuple[str, MovingClock], database_url: str
) -> None:
    """``check --tenant``: the stored URLs and secret, the deployment's SSRF guard (loopback
    blocked unless VIZOCHOK_ALLOWED_NETWORKS lists it); an unknown tenant exits 1."""
    base, _ = threaded_shop
    _store_config(database_url, f"{base}/good/api/vizochok")
    env = {"VIZOCHOK_SECRET_KEYS": KEYS, "VIZOCHOK_DATABASE_URL": database_url}
    runner = CliRunner()
    allowed = {**env, "VIZOCHOK_ALLOW_HTTP": "true", "VIZOCHOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
    passed = runner.invoke(main, ["check", "--tenant", "t1", "--json"], env=allowed)
    assert passed.exit_code == 0, passed.output
    report = json.loads(passed.stdout)
    assert report["where"] == FROM_SERVER and report["passed"] == 12
    guarded = runner.invoke(
        main, ["check", "--tenant", "t1"], env={**env, "VIZOCHOK_ALLOW_HTTP": "true"}
    )
    assert guarded.exit_code == 1
    assert "blocked_destination" in guarded.stdout
    unknown = runner.invoke(main, ["check", "--tenant", "nobody"], env=allowed)
    assert unknown.exit_code == 1 and "no tenant 'nobody'" in unknown.output
    both = runner.invoke(main, ["check", "--tenant", "t1", "--cart-url", base], env=allowed)
    assert both.exit_code == 2
    assert SECRET not in passed.output + guarded.output


async def test_a_cart_get_that_misreads_the_query_fails_only_that_check(
    served: tuple[str, MovingClock],
) -> None:
    """A cart GET that decodes the query without turning + into a space loses the cart of a
    session id with spaces: ``cart_get.query_ids`` fails with a fix, nothing else does."""
    base, clock = served
    report = await _check(
        f"{base}/good/api/vizochok",
        clock,
        "/check-products",
        cart_get_url=f"{base}/misread/cart/items",
    )
    failed = [check for check in report.checks if check.status == "failed"]
    assert [check.name for check in failed] == ["cart_get.query_ids"], report_lines(
        report.as_dict()
    )
    assert "did not find it" in failed[0].seen
    assert "+ is a space" in (failed[0].fix or "")


async def test_a_receiver_with_another_secret_is_told_to_check_its_secret(
    served: tuple[str, MovingClock],
) -> None:
    """The kit refuses a check signed with another secret: the signed call fails naming
    ``signature_mismatch`` with the secret hint, and the refusal checks are skipped."""
    base, clock = served
    transport = AiohttpTransport(allowed_networks="127.0.0.0/8")
    kit = f"{base}/good/api/vizochok"
    try:
        report = await run_conformance(
            CheckTarget(f"{kit}/check-products", f"{kit}/cart", None, "whsec_" + "x" * 30),
            send=transport.send_wire,
            where=OWN_MACHINE,
            clock=Clock(monotonic=clock),
        )
    finally:
        await transport.aclose()
    first = report.checks[0]
    assert first.status == "failed" and first.seen.endswith("got HTTP 401 (signature_mismatch)")
    assert "secret" in (first.fix or "") and "raw bytes" in (first.fix or "")
    assert {c.status for c in report.checks if c.name.startswith("security.")} == {"skipped"}
