"""The admin panel in a real browser: Debian's chromium driven by playwright against the
admin app under uvicorn on 127.0.0.1, configuring and testing a tenant backend (the receiver
kit) on 127.0.0.1.  Screenshots of each page go to ``VIZOCHOK_PANEL_SCREENSHOTS`` (a
directory), or to the test's ``tmp_path``."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from tests.admin.support import LOOPBACK_NETWORKS, FakeResolver, admin_settings_for
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, IssuedKey, TenantDirectory
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.events._catalog import EVENT_TYPES
from vizochok_dispatch.receiver import (
    CartLine,
    CartOperation,
    CartQuery,
    CartReply,
    Product,
    ProductsQuery,
    create_receiver_app,
)
from vizochok_dispatch.receiver.testing import serve_on_loopback

from .support import chromium_or_skip

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(120)]

#: playwright's own bound on each wait (milliseconds): a step that hangs fails fast.
STEP_MS = 10_000


@dataclass
class Shop:
    """A tenant backend on the receiver kit; it accepts the secrets listed in ``secrets``."""

    secrets: list[str] = field(default_factory=lambda: ["not-known-yet-000000000000000000"])

    async def check_products(self, query: ProductsQuery) -> list[Product]:
        return [Product(sku=sku, price=Decimal("45.90"), in_stock=True) for sku in query.skus]

    async def cart_operation(self, operation: CartOperation) -> CartReply:
        return CartReply.accepted()

    async def load_cart(self, query: CartQuery) -> list[CartLine]:
        return [CartLine(sku="milk-001", name="Milk", price=Decimal("45.90"), quantity=Decimal(2))]


@dataclass
class EventReceiver:
    """Where event requests go: answers ``status`` (200 until the test breaks it)."""

    status: int = 200
    received: int = 0

    async def __call__(self, request: Received, reply: Reply) -> None:
        self.received += 1
        if self.status == 200:
            await reply.json({"ok": True})
        else:
            await reply.json({"error": "receiver_down", "message": "broken on purpose"}, 500)


@dataclass
class Running:
    admin: str
    shop_base: str
    shop: Shop
    events: EventReceiver
    events_server: LoopbackServer
    dispatcher: Dispatcher
    key_a: IssuedKey
    key_b: IssuedKey
    shots: Path


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go."""
    chosen = Path(os.environ.get("VIZOCHOK_PANEL_SCREENSHOTS") or tmp_path / "screenshots")
    chosen.mkdir(parents=True, exist_ok=True)
    return chosen


@pytest.fixture
async def running(tmp_path: Path, shots: Path) -> AsyncIterator[Running]:
    chromium_or_skip()
    url = f"sqlite+aiosqlite:///{tmp_path}/panel.db"
    # No worker: the test delivers with drain(); one attempt, so a failure is final at once.
    settings = admin_settings_for(
        url,
        allow_http=True,
        allowed_networks=LOOPBACK_NETWORKS,
        event_worker="off",
        event_retry_schedule="none",
    )
    dispatcher = Dispatcher.from_settings(settings)
    shop = Shop()
    backend = create_receiver_app(
        secret=lambda: shop.secrets,
        check_products=shop.check_products,
        cart_operation=shop.cart_operation,
        load_cart=shop.load_cart,
    )
    app = create_admin_app(settings, dispatcher=dispatcher, resolve=FakeResolver())
    events = EventReceiver()
    async with (
        dispatcher,
        serve_on_loopback(backend) as shop_base,
        serve_on_loopback(app) as admin_base,
        serve(events) as events_server,
    ):
        tenants: TenantDirectory = app.state.admin.tenants
        _, key_a = await tenants.create_tenant("Market A", tenant_id="market-a")
        _, key_b = await tenants.create_tenant("Market B", tenant_id="market-b")
        yield Running(
            admin_base, shop_base, shop, events, events_server, dispatcher, key_a, key_b, shots
        )


async def test_a_tenant_configures_rotates_and_tests_in_the_browser(running: Running) -> None:
    """Browser: sign in; a bad URL's error shows in place; fix it; roll and promote the
    secret with the receiver following; test-fire and read the report; health and the call
    log; create an event endpoint, publish, see the delivery, break the receiver, see the
    failure, fix it, retry and recover; test an event type; sign out; tenant B sees none of
    it; a forged post without the CSRF token is refused."""
    from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - optional

    shop = running.shop
    base = running.shop_base
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_or_skip(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 900})
            context.set_default_timeout(STEP_MS)
            page = await context.new_page()

            async def shot(name: str) -> None:
                await page.screenshot(path=str(running.shots / f"{name}.png"), full_page=True)

            # Sign in.
            await page.goto(f"{running.admin}/panel/")
            await expect(page).to_have_url(f"{running.admin}/panel/sign-in")
            await shot("sign-in")
            await page.get_by_label("Your API key").fill(running.key_a.key)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page).to_have_url(f"{running.admin}/panel/webhooks")
            await expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()

            # A bad URL: its error in place, what was typed kept.
            await page.get_by_label("Products URL").fill("ftp://shop.example/products")
            await page.get_by_label("Cart URL", exact=True).fill(f"{base}/api/vizochok/cart")
            await page.get_by_label("Cart GET URL").fill(f"{base}/api/vizochok/cart/items")
            await page.get_by_label("Timeout (seconds)").fill("3")
            await page.get_by_role("button", name="Save").click()
            error = page.locator("#e-products_url")
            await expect(error).to_contain_text("Products URL must be")
            await expect(page.get_by_label("Products URL")).to_have_attribute(
                "aria-invalid", "true"
            )
            await shot("webhooks-error")

            # Fixed: saved, and the first secret shown once.
            await page.get_by_label("Products URL").fill(f"{base}/api/vizochok/check-products")
            await page.get_by_role("button", name="Save").click()
            await expect(page.locator("#e-products_url")).to_have_count(0)
            first = await page.locator("#shown-secret").input_value()
            assert first.startswith("whsec_")
            shop.secrets = [first]
            await shot("webhooks-saved")

            # Test-fire: the report for a person.
            await page.get_by_role("link", name="Test").click()
            await page.get_by_label("SKUs (products only)").fill("milk-001, bread-002")
            await page.get_by_role("button", name="Send a test call").click()
            report = page.locator("section.report")
            await expect(report.locator("h2")).to_have_text("Passed: products")
            await expect(report.get_by_role("cell", name="milk-001")).to_be_visible()
            await expect(report.get_by_role("cell", name="45.90").first).to_be_visible()
            await shot("test-report")

            # Roll: pending shown once; the receiver takes both; promote.
            await page.get_by_role("link", name="Webhooks").click()
            await page.get_by_role("button", name="Roll a new secret").click()
            pending = await page.locator("#shown-pending").input_value()
            assert pending.startswith("whsec_") and pending != first
            await expect(page.get_by_role("button", name="Copy")).to_be_visible()
            await shot("webhooks-rolled")
            shop.secrets = [first, pending]
            await page.get_by_role("button", name="Promote the pending secret").click()
            await expect(page.get_by_role("status")).to_contain_text("signs from now on")
            await expect(page.locator("dl.facts")).to_contain_text(pending[-4:])
            shop.secrets = [pending]  # the old one is gone from the receiver: still passes
            await page.get_by_role("link", name="Test").click()
            await page.get_by_role("button", name="Send a test call").click()
            await expect(page.locator("section.report h2")).to_have_text("Passed: products")

            # A failing call: every problem line rendered, the answer's body too.
            shop.secrets = ["whsec_" + "z" * 43]
            await page.get_by_role("button", name="Send a test call").click()
            failed = page.locator("section.report")
            await expect(failed.locator("h2")).to_contain_text("Failed: products")
            await expect(failed.locator("ul.problems li").first).to_be_visible()
            await shot("test-failed")

            # Health and the call log: the failed call is there, with the answer's body.
            await running.dispatcher.call_log.flush()
            await page.get_by_role("link", name="Health").click()
            products = page.locator("section", has=page.locator("#h-products"))
            await expect(products).to_contain_text("http_status 1")
            await expect(products.locator("svg rect[fill='#a61b1b']")).to_have_count(1)
            await shot("health")
            await page.get_by_role("link", name="Call log").click()
            await page.get_by_label("Outcome").select_option("failed")
            await page.get_by_role("button", name="Filter").click()
            entry = page.locator("details.entry").first
            await entry.locator("summary").click()
            await expect(entry.locator("pre")).to_contain_text("signature_mismatch")
            await expect(entry.get_by_role("cell", name="401")).to_be_visible()
            await shot("calls")

            # An event endpoint: created with a type ticked, its secret shown once.
            await page.get_by_role("link", name="Event endpoints").click()
            await page.get_by_role("link", name="Add an endpoint").click()
            await page.get_by_label("Endpoint URL").fill(running.events_server.url("/events"))
            await page.get_by_role("checkbox", name=re.compile(r"^order\.created:")).check()
            await page.get_by_role("button", name="Create the endpoint").click()
            endpoint_secret = await page.locator("#shown-secret").input_value()
            assert endpoint_secret.startswith("whsec_")
            await shot("endpoint-created")

            # Publish: the delivery in the log.
            async def publish() -> None:
                await running.dispatcher.events.publish(
                    "market-a", "order.created", data=EVENT_TYPES["order.created"].example
                )
                await running.dispatcher.events.drain(timeout=5)

            await publish()
            await page.get_by_role("link", name="Its deliveries").click()
            newest = page.locator("details.entry").first
            await expect(newest.locator("summary")).to_contain_text("delivered")

            # The receiver breaks: the failure in the log, its answer on the delivery's page.
            running.events.status = 500
            await publish()
            await page.reload()
            await expect(newest.locator("summary")).to_contain_text("failed")
            await expect(newest.locator("summary")).to_contain_text("http_status")
            await shot("deliveries")
            await newest.locator("summary").click()
            await newest.get_by_role("link", name="The body and the answers").click()
            await page.locator("details summary").first.click()
            await expect(page.locator("details pre").first).to_contain_text("receiver_down")
            await expect(page.locator("main > pre")).to_contain_text('"order.created"')
            await shot("delivery")

            # Fixed: one delivery retried from its page.
            running.events.status = 200
            await page.get_by_role("button", name="Retry now").click()
            await expect(page.get_by_role("status")).to_contain_text("A new attempt was made")
            await expect(page.locator("dl.facts dd").first).to_contain_text("delivered")

            # Broken again, then fixed: the endpoint's failed deliveries recovered.
            running.events.status = 500
            await publish()
            running.events.status = 200
            await page.locator("dl.facts a").first.click()  # the delivery's endpoint
            await page.get_by_role("button", name="Recover").click()
            await expect(page.get_by_role("status")).to_contain_text(
                "1 failed deliveries re-queued"
            )
            await shot("endpoint-recovered")
            await running.dispatcher.events.drain(timeout=5)
            await page.goto(f"{running.admin}/panel/deliveries?status=failed")
            await expect(page.get_by_text("No delivery matches.")).to_be_visible()

            # Disable shows its reason; enable again.
            await page.get_by_role("link", name="Event endpoints").click()
            await page.locator("table a.mono").first.click()
            await page.get_by_role("button", name="Disable").click()
            await expect(page.locator("dl.facts")).to_contain_text("disabled by hand")
            await page.get_by_role("button", name="Enable").click()
            await expect(page.locator("dl.facts")).to_contain_text("active")

            # Any event type test-fired from the Test page, the report for a person.
            await page.get_by_role("link", name="Test").click()
            await page.get_by_label("Event type (its example is sent)").select_option(
                "order.cancelled"
            )
            await page.get_by_role("button", name="Send a test event").click()
            tested = page.locator("section.report")
            await expect(tested.locator("h2")).to_have_text("Passed: order.cancelled")
            await expect(tested).to_contain_text("does not subscribe")
            await shot("test-event")

            # A forged post (no CSRF token) with the session's own cookie: refused.
            forged = await page.request.post(
                f"{running.admin}/panel/webhooks/secret/roll",
                form={"anything": "x"},
            )
            assert forged.status == 403

            # Sign out: the pages are gone.
            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(f"{running.admin}/panel/sign-in?done=signed_out")
            await page.goto(f"{running.admin}/panel/webhooks")
            await expect(page).to_have_url(f"{running.admin}/panel/sign-in")

            # Tenant B: its own empty settings, nothing of A's.
            other = await (await browser.new_context()).new_page()
            await other.goto(f"{running.admin}/panel/sign-in")
            await other.get_by_label("Your API key").fill(running.key_b.key)
            await other.get_by_role("button", name="Sign in").click()
            await expect(other.get_by_label("Products URL")).to_have_value("")
            content = await other.content()
            assert base not in content and pending[-4:] not in content
            for path, empty in (
                ("/endpoints", "No endpoint yet."),
                ("/deliveries", "No delivery matches."),
                ("/calls", "No call matches."),
            ):
                await other.goto(f"{running.admin}/panel{path}")
                await expect(other.get_by_text(empty)).to_be_visible()

            # Phone width: no page is wider than the screen.
            phone = await browser.new_context(viewport={"width": 375, "height": 800})
            small = await phone.new_page()
            await small.goto(f"{running.admin}/panel/sign-in")
            await small.get_by_label("Your API key").fill(running.key_a.key)
            await small.get_by_role("button", name="Sign in").click()
            for path in ("/webhooks", "/health", "/deliveries", "/calls", "/endpoints"):
                await small.goto(f"{running.admin}/panel{path}")
                width = await small.evaluate("document.documentElement.scrollWidth")
                assert width <= 375, (path, width)
            await small.goto(f"{running.admin}/panel/health")
            await small.screenshot(path=str(running.shots / "health-phone.png"))
        finally:
            await browser.close()
