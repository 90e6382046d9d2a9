"""docs/webhooks.md §3 against a real HTTP server on 127.0.0.1: time, resets, sizes, pool health.

These use the default aiohttp transport, so they test what production runs.  Every server
is started and stopped by the test, and each test is bounded by a few seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import socket
import time
import tracemalloc

import pytest

from tests.support.fakes import FakeTime
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import DELIVERY_HEADER

pytestmark = pytest.mark.loopback

PRODUCTS = json.dumps({"products": [{"sku": "a", "price": 1, "in_stock": True}]}).encode()


async def timed(coro):
    started = time.monotonic()
    result = await coro
    return result, time.monotonic() - started


async def test_slow_drip_body_is_cut_off_at_the_timeout(loopback_dispatcher):
    """Headers then one byte a second: the whole attempt ends at timeout_seconds (+-100 ms)."""

    async def drip(request: Received, reply: Reply) -> None:
        await reply.head_only(200, 100, **{"Content-Type": "application/json"})
        for _ in range(100):
            await reply.raw(b" ")
            await asyncio.sleep(1.0)

    async with serve(drip) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"), timeout_seconds=1.5)
        result, elapsed = await timed(d.check_products("t1", skus=["a"], store_id="s"))
    assert result.failure == "timeout"
    assert 1.4 <= elapsed <= 1.6
    assert len(server.received) == 1


async def test_hang_before_headers_is_cut_off_without_retry(loopback_dispatcher):
    """A server that never answers costs exactly the timeout, once."""

    async def hang(request: Received, reply: Reply) -> None:
        await asyncio.sleep(30)

    async with serve(hang) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"), timeout_seconds=0.5)
        result, elapsed = await timed(d.check_products("t1", skus=["a"], store_id="s"))
    assert result.failure == "timeout"
    assert 0.4 <= elapsed <= 0.6
    assert len(server.received) == 1


async def test_dripped_headers_are_cut_off_at_the_timeout(loopback_dispatcher):
    """Headers sent a line at a time cannot stretch the attempt either."""

    async def drip_headers(request: Received, reply: Reply) -> None:
        await reply.raw(b"HTTP/1.1 200 OK\r\n")
        for i in range(100):
            await reply.raw(f"X-Slow-{i}: 1\r\n".encode())
            await asyncio.sleep(0.2)

    async with serve(drip_headers) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"), timeout_seconds=0.7)
        result, elapsed = await timed(d.check_products("t1", skus=["a"], store_id="s"))
    assert result.failure == "timeout"
    assert 0.6 <= elapsed <= 0.8


async def test_503_then_200_over_the_wire_is_one_delivery(loopback_dispatcher):
    """A real 503 is retried once after the (injected) 1 s, with the same delivery id."""
    fake = FakeTime()
    answers = iter([503, 200])

    async def flaky(request: Received, reply: Reply) -> None:
        status = next(answers)
        await reply.send(status, PRODUCTS if status == 200 else b"")

    async with serve(flaky) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"), sleep=fake.sleep)
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure is None
    assert fake.sleeps == [1.0]
    ids = [r.headers[DELIVERY_HEADER.lower()] for r in server.received]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert [r.headers["x-vizochok-attempt"] for r in server.received] == ["1", "2"]


async def test_503_twice_is_final(loopback_dispatcher):
    """Two real 503s: http_status after exactly two requests."""
    fake = FakeTime()

    async def down(request: Received, reply: Reply) -> None:
        await reply.send(503)

    async with serve(down) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"), sleep=fake.sleep)
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "http_status"
    assert len(server.received) == 2


async def test_reset_mid_body_is_a_connection_failure_without_retry(loopback_dispatcher):
    """A connection reset half-way through the body: connect_error, one request."""

    async def reset(request: Received, reply: Reply) -> None:
        await reply.head_only(200, 1000)
        await reply.raw(b'{"products": [')
        reply.reset()

    async with serve(reset) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "connect_error"
    assert len(server.received) == 1


async def test_close_without_response_is_a_connection_failure(loopback_dispatcher):
    """A server that closes the socket without a response: connect_error, no retry."""

    async def close(request: Received, reply: Reply) -> None:
        reply.close()

    async with serve(close) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "connect_error"
    assert len(server.received) == 1


async def test_connection_refused_fails_fast(loopback_dispatcher):
    """Nobody listening: connect_error well before the timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    d = await loopback_dispatcher(products_url=f"http://127.0.0.1:{port}/p", timeout_seconds=5)
    result, elapsed = await timed(d.check_products("t1", skus=["a"], store_id="s"))
    assert result.failure == "connect_error"
    assert elapsed < 1.0


async def test_redirect_is_not_followed(loopback_dispatcher):
    """A 302 to another path is a failure, and the other path is never requested."""

    async def redirect(request: Received, reply: Reply) -> None:
        await reply.send(302, headers={"Location": "/elsewhere"})

    async with serve(redirect) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "http_status"
    assert [r.path for r in server.received] == ["/p"]


async def test_gzip_is_neither_asked_for_nor_inflated(loopback_dispatcher):
    """We ask for identity; a gzip body sent anyway is not inflated, so it is invalid_response."""

    async def gzipped(request: Received, reply: Reply) -> None:
        await reply.send(200, gzip.compress(PRODUCTS), headers={"Content-Encoding": "gzip"})

    async with serve(gzipped) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert server.received[0].headers["accept-encoding"] == "identity"
    assert result.failure == "invalid_response"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_oversized_body_stops_at_the_cap_with_flat_memory(loopback_dispatcher, declared):
    """A 50 MiB answer is invalid_response, and the client holds no more than about the cap."""
    size, chunk = 50 * 1024 * 1024, b"x" * 65536

    async def huge(request: Received, reply: Reply) -> None:
        if declared:
            await reply.head_only(200, size)
        else:
            await reply.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            reply.keep_alive = False
        frame = chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk)
        try:
            for _ in range(size // len(chunk)):
                await reply.raw(frame)
        except ConnectionError:
            return

    async with serve(huge) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        tracemalloc.start()
        try:
            result = await d.check_products("t1", skus=["a"], store_id="s")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert result.failure == "invalid_response"
    assert peak < 6 * 1024 * 1024


async def test_pool_stays_healthy_after_many_cancelled_attempts(loopback_dispatcher):
    """200 concurrent calls with mixed timeouts, then 100 normal calls all succeed."""
    rng = random.Random(1093)

    async def slowish(request: Received, reply: Reply) -> None:
        delay_ms = int(request.query.get("ms", "0"))
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        await reply.send(200, PRODUCTS)

    async with serve(slowish) as server:
        # t1 (the calm calls) has a generous timeout: what is proved is that every call on
        # the pool the storm cut short succeeds, not how fast 100 calls share 20 connections
        # on a loaded machine.
        d = await loopback_dispatcher(
            products_url=server.url("/p?ms=0"), timeout_seconds=10.0, max_connections=20
        )
        for tenant, timeout in (("fast", 0.1), ("mid", 0.2), ("slow", 0.3)):
            await d.store.save_config(
                tenant,
                products_url=server.url(f"/p?ms={rng.choice([0, 50, 150, 250, 400])}"),
                cart_url=server.url("/c"),
                timeout_seconds=timeout,
            )
        tenants = ["fast", "mid", "slow"]
        storm = await asyncio.gather(
            *(d.check_products(rng.choice(tenants), skus=["a"], store_id="s") for _ in range(200))
        )
        assert {r.failure for r in storm} <= {None, "timeout"}
        assert any(r.failure == "timeout" for r in storm)
        calm = await asyncio.gather(
            *(d.check_products("t1", skus=["a"], store_id="s", deadline=30) for _ in range(100))
        )
    assert [r.failure for r in calm] == [None] * 100
    assert all(r.available and r.available[0].sku == "a" for r in calm)


async def test_garbage_instead_of_http_is_a_failed_exchange(loopback_dispatcher):
    """Bytes that are not HTTP at all: connect_error, no retry, no crash."""

    async def garbage(request: Received, reply: Reply) -> None:
        await reply.raw(b"\x00\x01garbage that is not a status line\r\n\r\n")
        reply.close()

    async with serve(garbage) as server:
        d = await loopback_dispatcher(products_url=server.url("/p"))
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "connect_error"
    assert len(server.received) == 1
