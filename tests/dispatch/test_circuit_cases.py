"""What counts against an endpoint, and which circuit is whose (issue 9, cases 5 and 6).

Only timeouts, connection failures and 5xx count; a call the caller gave up on counts for
nothing.  Circuits belong to the URL configured now, under the configuration they opened
under: a new URL (also one changed away and back) or any other save starts closed, old
circuits are forgotten, and cart GET's per-session query is not a new endpoint.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from tests.dispatch.conftest import CART_GET_URL, CART_URL, PRODUCTS_URL, SECRET
from tests.support.fakes import FakeTime
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import Dispatcher, DispatchSettings, InMemoryConfigStore
from vizochok_dispatch.webhooks._guards import Admission, BreakerPolicy, Breakers, CircuitState

OK = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}
LOOPBACK = {"allow_http": True, "allowed_networks": "127.0.0.0/8,::1/128"}


class SlowTenant:
    """A healthy tenant that answers in 200 ms (or 500 while ``failing``); tells when a
    request has arrived, so a test can cancel a call that is really in flight."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.failing = False

    async def __call__(self, request: Received, reply: Reply) -> None:
        if self.failing:
            await reply.send(500)
            return
        self.arrived.set()
        await asyncio.sleep(0.2)  # the tenant's own latency, not the test waiting
        await reply.json(OK)


async def loopback_dispatcher(url: str, fake: FakeTime | None = None, **settings: object):
    options = DispatchSettings(**{**LOOPBACK, **settings})  # type: ignore[arg-type]
    store = InMemoryConfigStore(rules=options.config_rules())
    await store.save_config("t1", products_url=url, cart_url=url, secret=SECRET)
    if fake is None:
        return Dispatcher(store, settings=options)
    return Dispatcher(store, settings=options, clock=fake.clock, sleep=fake.sleep)


async def cancel_in_flight(d: Dispatcher, tenant: SlowTenant) -> None:
    """Start a call, cancel it once the tenant has the request, as a chat would."""
    tenant.arrived.clear()
    task = asyncio.create_task(d.check_products("t1", skus=["a"], store_id="s"))
    await tenant.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.loopback
async def test_calls_cancelled_by_the_caller_do_not_open_the_circuit():
    """Five calls cancelled mid-flight (tenant answers in 200 ms): the circuit stays closed."""
    tenant = SlowTenant()
    async with serve(tenant) as server, await loopback_dispatcher(server.url("/p")) as d:
        for _ in range(d.settings.circuit_failure_threshold):
            await cancel_in_flight(d, tenant)
        states = d.circuit_states("t1")
        after = await d.check_products("t1", skus=["a"], store_id="s")
    assert states["products"] == "closed"
    assert after.failure is None
    assert len(server.received) == d.settings.circuit_failure_threshold + 1


@pytest.mark.loopback
async def test_calls_cut_short_by_the_callers_deadline_do_not_open_the_circuit():
    """A timeout that is the caller's deadline (50 ms), not timeout_seconds, counts for nothing."""
    tenant = SlowTenant()
    async with serve(tenant) as server, await loopback_dispatcher(server.url("/p")) as d:
        cut = [
            await d.check_products("t1", skus=["a"], store_id="s", deadline=0.05)
            for _ in range(d.settings.circuit_failure_threshold)
        ]
        after = await d.check_products("t1", skus=["a"], store_id="s")
    assert {r.failure for r in cut} == {"timeout"}
    assert after.failure is None


@pytest.mark.loopback
async def test_the_tenants_own_timeout_still_opens_the_circuit():
    """A timeout within the caller's deadline is the endpoint's: it still counts."""
    tenant = SlowTenant()
    async with (
        serve(tenant) as server,
        await loopback_dispatcher(server.url("/p"), circuit_failure_threshold=2) as d,
    ):
        await d.store.save_config("t1", timeout_seconds=0.1)
        first = [
            await d.check_products("t1", skus=["a"], store_id="s", deadline=5.0) for _ in range(2)
        ]
        after = await d.check_products("t1", skus=["a"], store_id="s")
    assert [r.failure for r in first] == ["timeout", "timeout"]
    assert after.failure == "circuit_open"


@pytest.mark.loopback
async def test_a_cancelled_probe_frees_the_probe_slot():
    """Half-open, the probe is cancelled: it counts for nothing and the next call may probe."""
    fake, tenant = FakeTime(), SlowTenant()
    async with (
        serve(tenant) as server,
        await loopback_dispatcher(
            server.url("/p"), fake, circuit_failure_threshold=2, circuit_cooldown_seconds=15
        ) as d,
    ):
        tenant.failing = True
        for _ in range(2):
            assert (await d.check_products("t1", skus=["a"], store_id="s")).failure
        opened = d.circuit_states("t1")["products"]
        fake.now += 15
        tenant.failing = False
        await cancel_in_flight(d, tenant)
        halfway = d.circuit_states("t1")["products"]
        probe = await d.check_products("t1", skus=["a"], store_id="s")
        closed = d.circuit_states("t1")["products"]
    assert (opened, halfway, closed) == ("open", "half_open", "closed")
    assert probe.failure is None


def test_only_the_probe_frees_the_probe_slot():
    """A cancelled ordinary call cannot free the slot of a probe still in flight."""
    breakers = Breakers(BreakerPolicy(failure_threshold=1), on_change=lambda *_: None)
    key = ("t1", "products", "https://tenant.example/p")
    older = breakers.admit(key, 0.0)
    breakers.record(key, 0.0, down=True)
    probe = breakers.admit(key, 20.0)
    breakers.abandon(key, older)
    blocked = breakers.admit(key, 20.0)
    breakers.abandon(key, probe)
    next_probe = breakers.admit(key, 20.0)
    assert (older, probe, blocked, next_probe) == (
        Admission.CALL,
        Admission.PROBE,
        Admission.REFUSED,
        Admission.PROBE,
    )


async def respx_dispatcher(router: respx.Router, fake: FakeTime, **settings: object):
    store = InMemoryConfigStore()
    await store.save_config(
        "t1",
        products_url=PRODUCTS_URL,
        cart_url=CART_URL,
        cart_get_url=CART_GET_URL,
        secret=SECRET,
    )
    return Dispatcher(
        store,
        settings=DispatchSettings(**settings),  # type: ignore[arg-type]
        transport=httpx.MockTransport(router.async_handler),
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def test_a_fixed_url_shows_and_gets_a_closed_circuit():
    """After a broken products_url is replaced, the state shown and used is the new URL's."""
    fake, router = FakeTime(), respx.Router()
    fixed = "https://fixed.example/vizochok/check-products"
    router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    router.post(fixed).mock(return_value=httpx.Response(200, json=OK))
    async with await respx_dispatcher(router, fake, circuit_failure_threshold=2) as d:
        for _ in range(2):
            await d.check_products("t1", skus=["a"], store_id="s")
        broken = await d.store.get_config("t1")
        before = d.circuit_states("t1", broken)
        saved = await d.store.save_config("t1", products_url=fixed)
        shown = d.circuit_states("t1", saved)
        result = await d.check_products("t1", skus=["a"], store_id="s")
        after = d.circuit_states("t1", saved)
        old = d.circuit_states("t1", broken)
    assert before["products"] == "open"
    assert shown == {"products": "closed", "cart": "closed", "cart_get": "closed"}
    assert result.failure is None and after["products"] == "closed"
    assert old["products"] == "closed", "the old URL's circuit is forgotten once the new is called"


def test_ten_thousand_url_changes_keep_one_circuit():
    """10,000 URL changes of one webhook, each failing: the breaker keeps one circuit."""
    breakers = Breakers(BreakerPolicy(failure_threshold=5), on_change=lambda *_: None)
    for i in range(10_000):
        key = ("t1", "products", f"https://moving.example/{i}")
        breakers.admit(key, float(i))
        breakers.record(key, float(i), down=True)
    assert len(breakers._circuits) == 1
    assert breakers.state("t1", "products", "https://moving.example/9999") is CircuitState.CLOSED


async def test_url_changes_through_the_dispatcher_keep_the_breaker_bounded():
    """1,000 saved URL changes, each called and failing: one circuit kept, the current one."""
    fake, router = FakeTime(), respx.Router()
    router.post(url__startswith="https://moving.example/").mock(
        side_effect=httpx.ConnectError("refused")
    )
    async with await respx_dispatcher(router, fake) as d:
        with capture_logs():
            for i in range(1000):
                await d.store.save_config("t1", products_url=f"https://moving.example/{i}")
                result = await d.check_products("t1", skus=["a"], store_id="s")
                assert result.failure == "connect_error", i
        kept = len(d._breakers._circuits)
        states = d.circuit_states("t1")
    assert kept == 1
    assert states["products"] == "closed"  # one failure on the current URL, under threshold


async def test_cart_get_sessions_share_one_circuit():
    """Cart GET's store_id/session_id query is per call: its endpoint is the configured URL."""
    fake, router = FakeTime(), respx.Router()
    route = router.get(url__startswith=CART_GET_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with await respx_dispatcher(router, fake, circuit_failure_threshold=3) as d:
        loads = [
            await d.load_cart("t1", store_id="s", session_id=f"session-{i}") for i in range(1000)
        ]
        kept = len(d._breakers._circuits)
        state = d.circuit_states("t1")["cart_get"]
    assert [load.failure for load in loads[:4]] == ["connect_error"] * 3 + ["circuit_open"]
    assert route.call_count == 3
    assert kept == 1 and state == "open"


def test_a_late_outcome_for_an_old_url_never_shows_as_the_new_urls():
    """A call in flight across a URL change: its failure is not reported for the new URL."""
    breakers = Breakers(BreakerPolicy(failure_threshold=1), on_change=lambda *_: None)
    old = ("t1", "products", "https://tenant.example/old")
    new = ("t1", "products", "https://tenant.example/new")
    breakers.admit(old, 0.0)
    breakers.admit(new, 0.0)
    breakers.record(old, 0.0, down=True)
    assert breakers.state("t1", "products", new[2]) is CircuitState.CLOSED
    assert breakers.state("t1", "products", old[2]) is CircuitState.OPEN
    assert breakers.admit(new, 0.0) is Admission.CALL
    assert breakers.state("t1", "products", old[2]) is CircuitState.CLOSED
    assert len(breakers) == 0


async def test_a_url_changed_away_and_back_starts_a_closed_circuit():
    """A circuit belongs to the config it opened under: a URL changed away and back, with no
    call in between, shows and gets a closed circuit (the next call is sent)."""
    fake, router = FakeTime(), respx.Router()
    fixed = "https://fixed.example/vizochok/check-products"
    dead = router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    router.post(fixed).mock(return_value=httpx.Response(200, json=OK))
    async with await respx_dispatcher(router, fake, circuit_failure_threshold=2) as d:
        for _ in range(2):
            await d.check_products("t1", skus=["a"], store_id="s")
        opened = d.circuit_states("t1", await d.store.get_config("t1"))["products"]
        away = await d.store.save_config("t1", products_url=fixed)
        shown_away = d.circuit_states("t1", away)["products"]
        back = await d.store.save_config("t1", products_url=PRODUCTS_URL)
        shown_back = d.circuit_states("t1", back)["products"]
        probe_in = d.circuit_next_probe_in("t1", "products", back)
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert (opened, shown_away, shown_back, probe_in) == ("open", "closed", "closed", None)
    assert result.failure == "connect_error", "sent, not refused as circuit_open"
    assert dead.call_count == 3


async def test_any_save_of_the_config_starts_its_circuits_closed():
    """A new timeout (the URL unchanged) is a new configuration: its circuit starts closed."""
    fake, router = FakeTime(), respx.Router()
    dead = router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with await respx_dispatcher(router, fake, circuit_failure_threshold=2) as d:
        for _ in range(2):
            await d.check_products("t1", skus=["a"], store_id="s")
        before = await d.check_products("t1", skus=["a"], store_id="s")
        saved = await d.store.save_config("t1", timeout_seconds=3.0)
        shown = d.circuit_states("t1", saved)["products"]
        after = await d.check_products("t1", skus=["a"], store_id="s")
    assert before.failure == "circuit_open"
    assert shown == "closed" and after.failure == "connect_error"
    assert dead.call_count == 3


def test_a_circuit_is_the_configs_it_opened_under():
    """Breakers: the same URL under another config generation is a closed circuit, and
    calling under it forgets the old one."""
    breakers = Breakers(BreakerPolicy(failure_threshold=1), on_change=lambda *_: None)
    key = ("t1", "products", "https://tenant.example/p")
    breakers.admit(key, 0.0, config=(1, None))
    breakers.record(key, 0.0, down=True, config=(1, None))
    opened = breakers.state("t1", "products", key[2], config=(1, None))
    other = breakers.state("t1", "products", key[2], config=(3, None))
    admitted = breakers.admit(key, 1.0, config=(3, None))
    old_after = breakers.state("t1", "products", key[2], config=(1, None))
    assert (opened, other, admitted, old_after) == (
        CircuitState.OPEN,
        CircuitState.CLOSED,
        Admission.CALL,
        CircuitState.CLOSED,
    )
    assert len(breakers) == 0
