"""Fail fast on a dead tenant (circuit breaker) and isolate tenants (bulkhead)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from tests.dispatch.conftest import CART_URL, PRODUCTS_URL, SECRET
from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, DispatchSettings, InMemoryConfigStore

OK = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}


async def make(router: respx.Router, fake: FakeTime, **settings: object) -> Dispatcher:
    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET)
    return Dispatcher(
        store,
        settings=DispatchSettings(**settings),  # type: ignore[arg-type]
        transport=httpx.MockTransport(router.async_handler),
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def test_repeated_failures_open_the_circuit_and_calls_fail_fast():
    """After the threshold of timeouts, calls fail with circuit_open, send nothing, in < 1 ms."""
    fake, router = FakeTime(), respx.Router()
    route = router.post(PRODUCTS_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    async with await make(router, fake, circuit_failure_threshold=3) as d:
        for _ in range(3):
            assert (await d.check_products("t1", skus=["a"], store_id="s")).failure == "timeout"
        started = time.perf_counter()
        results = [await d.check_products("t1", skus=["a"], store_id="s") for _ in range(100)]
        per_call = (time.perf_counter() - started) / 100
        cart = await d.cart_clear("t1", store_id="s", session_id="x")
    assert {r.failure for r in results} == {"circuit_open"}
    assert all(r.unavailable == ("a",) for r in results)
    assert route.call_count == 3
    assert per_call < 0.001
    assert cart.ok is False  # the cart endpoint has its own circuit, still closed
    assert d.circuit_states("t1")["products"] == "open"


async def test_cart_circuit_open_reads_as_webhook_timeout():
    """An open cart circuit still answers the AI with reason webhook_timeout."""
    fake, router = FakeTime(), respx.Router()
    router.post(CART_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with await make(router, fake, circuit_failure_threshold=2) as d:
        for _ in range(2):
            await d.cart_clear("t1", store_id="s", session_id="x")
        result = await d.cart_clear("t1", store_id="s", session_id="x")
    assert result.as_payload() == {"ok": False, "reason": "webhook_timeout"}
    assert result.detail == "circuit_open"


async def test_one_probe_after_the_cooldown_and_success_closes_it():
    """After the cooldown one probe goes out (others still fail fast); its success closes it."""
    fake, router = FakeTime(), respx.Router()
    gate, probing = asyncio.Event(), asyncio.Event()
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise httpx.ConnectError("refused")
        probing.set()
        await gate.wait()
        return httpx.Response(200, json=OK)

    router.post(PRODUCTS_URL).mock(side_effect=handler)
    async with await make(
        router, fake, circuit_failure_threshold=2, circuit_cooldown_seconds=15
    ) as d:
        with capture_logs() as logs:
            for _ in range(2):
                await d.check_products("t1", skus=["a"], store_id="s")
            fake.now += 14.9
            early = await d.check_products("t1", skus=["a"], store_id="s")
            fake.now += 0.2
            probe = asyncio.create_task(d.check_products("t1", skus=["a"], store_id="s"))
            await probing.wait()
            during = await d.check_products("t1", skus=["a"], store_id="s")
            gate.set()
            assert (await probe).failure is None
            after = await d.check_products("t1", skus=["a"], store_id="s")
    assert early.failure == "circuit_open"
    assert during.failure == "circuit_open"
    assert after.failure is None
    assert d.circuit_states("t1")["products"] == "closed"
    changes = [(e["previous"], e["state"]) for e in logs if e["event"] == "webhook.circuit"]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_a_failed_probe_opens_the_circuit_again():
    """A probe that fails reopens the circuit for another cooldown."""
    fake, router = FakeTime(), respx.Router()
    route = router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with await make(router, fake, circuit_failure_threshold=1) as d:
        await d.check_products("t1", skus=["a"], store_id="s")
        fake.now += 16
        probe = await d.check_products("t1", skus=["a"], store_id="s")
        again = await d.check_products("t1", skus=["a"], store_id="s")
    assert probe.failure == "connect_error"
    assert again.failure == "circuit_open"
    assert route.call_count == 2


@pytest.mark.parametrize("status", [400, 404, 429])
async def test_client_errors_do_not_open_the_circuit(status):
    """4xx answers mean the endpoint is up: they never open the circuit."""
    fake, router = FakeTime(), respx.Router()
    route = router.post(PRODUCTS_URL).mock(return_value=httpx.Response(status))
    async with await make(router, fake, circuit_failure_threshold=2) as d:
        for _ in range(5):
            assert (await d.check_products("t1", skus=["a"], store_id="s")).failure == "http_status"
    assert route.call_count == 5


async def test_failures_outside_the_window_do_not_add_up():
    """Failures further apart than the window never reach the threshold."""
    fake, router = FakeTime(), respx.Router()
    route = router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    async with await make(
        router, fake, circuit_failure_threshold=2, circuit_window_seconds=10
    ) as d:
        for _ in range(4):
            await d.check_products("t1", skus=["a"], store_id="s")
            fake.now += 11
    assert route.call_count == 4


async def test_bulkhead_caps_one_tenants_calls_in_flight():
    """With its cap in flight, a tenant's next call fails at once; a slot freed is reusable."""
    fake, router = FakeTime(), respx.Router()
    gate, both_in = asyncio.Event(), asyncio.Event()
    arrived = 0

    async def hang(request: httpx.Request) -> httpx.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_in.set()
        await gate.wait()
        return httpx.Response(200, json=OK)

    router.post(PRODUCTS_URL).mock(side_effect=hang)
    async with await make(router, fake, max_in_flight_per_tenant=2) as d:
        held = [
            asyncio.create_task(d.check_products("t1", skus=["a"], store_id="s")) for _ in range(2)
        ]
        await both_in.wait()
        refused = await d.check_products("t1", skus=["a"], store_id="s")
        gate.set()
        assert [(await t).failure for t in held] == [None, None]
        after = await d.check_products("t1", skus=["a"], store_id="s")
    assert refused.failure == "bulkhead_full"
    assert after.failure is None


@pytest.mark.loopback
async def test_a_hung_tenant_does_not_slow_another(loopback_dispatcher):
    """300 calls to hung tenant A (128 on the wire, the rest bulkhead_full): tenant B's 200
    calls all succeed while every one of A's admitted calls is still hung."""
    release = asyncio.Event()

    async def handler(request: Received, reply: Reply) -> None:
        if request.path == "/hung":
            await release.wait()
        await reply.send(200, b'{"products": [{"sku": "a", "price": 1, "in_stock": true}]}')

    def hung_on_the_wire(server: LoopbackServer) -> int:
        return sum(request.path == "/hung" for request in server.received)

    async with serve(handler) as server:
        d = await loopback_dispatcher(products_url=server.url("/fast"), timeout_seconds=30)
        await d.store.save_config("b", products_url=server.url("/fast"), cart_url=server.url("/c"))
        # A hangs for its whole timeout (30 s): were B queued behind A's connections or
        # slots, B could not finish before A's calls end, which is what is checked (no clock).
        await d.store.save_config(
            "a", products_url=server.url("/hung"), cart_url=server.url("/c"), timeout_seconds=30
        )
        hung = [
            asyncio.create_task(d.check_products("a", skus=["a"], store_id="s")) for _ in range(300)
        ]
        async with asyncio.timeout(20):  # bounded; normally a few hundred milliseconds
            while hung_on_the_wire(server) < 128:  # noqa: ASYNC110 - the server's count, bounded
                await asyncio.sleep(0.01)
            b_results = [await d.check_products("b", skus=["a"], store_id="s") for _ in range(200)]
        still_hung = sum(not task.done() for task in hung)
        on_the_wire = hung_on_the_wire(server)
        release.set()
        a_results = await asyncio.gather(*hung)
    assert [r.failure for r in b_results] == [None] * 200
    assert (still_hung, on_the_wire) == (128, 128)
    failures = {r.failure for r in a_results}
    assert failures <= {None, "bulkhead_full"}
    assert sum(r.failure == "bulkhead_full" for r in a_results) == 300 - 128
