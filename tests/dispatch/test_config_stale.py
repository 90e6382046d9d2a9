"""The config cache when the store fails or hangs: stale-if-error within its limit, reads
shared and bounded by the caller's deadline, never a raise from a dispatcher call."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    CachedConfigStore,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    StoreError,
    WebhookConfig,
)

URL = "https://tenant.example/products"
OK = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}
TTL = 2.0
STALE = 10.0


class Breakable(InMemoryConfigStore):
    """The in-memory store with versions (so the cache polls), that can fail or hang."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.hang = asyncio.Event()  # set: reads go through; cleared: reads wait for it
        self.hang.set()
        self.reads = 0

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        self.reads += 1
        await self.hang.wait()
        if self.failing:
            raise StoreError("database unreachable")
        return await super().get_config(tenant_id)

    async def versions(self) -> dict[str, int]:
        if self.failing:
            raise StoreError("database unreachable")
        return await super().versions()


async def _never(_seconds: float) -> None:
    """A poller sleep that never ends: the test drives every poll itself."""
    await asyncio.Event().wait()


def _cache(inner: Breakable, fake: FakeTime, stale: float = STALE) -> CachedConfigStore:
    return CachedConfigStore(
        inner,
        ttl_seconds=TTL,
        stale_if_error_seconds=stale,
        clock=fake.monotonic,
        poll_sleep=_never,
    )


async def test_a_failing_store_serves_the_cached_config_until_the_limit() -> None:
    """Stale-if-error: after a failed poll the entry is served, logged once, until ttl +
    stale-if-error after the store last confirmed it; then the store's error comes through."""
    fake, inner = FakeTime(), Breakable()
    await inner.save_config("t1", products_url=URL, cart_url=URL)
    cache = _cache(inner, fake)
    try:
        assert await cache.get_config("t1") is not None
        inner.failing = True
        with pytest.raises(StoreError):
            await cache.poll()
        with capture_logs() as logs:
            fake.now += TTL + STALE  # exactly at the limit: still served
            for _ in range(5):
                config = await cache.get_config("t1")
                assert config is not None and config.products_url == URL
        assert [e["event"] for e in logs] == ["config_cache.serving_stale"]
        assert logs[0]["tenant_id"] == "t1" and logs[0]["limit_seconds"] == TTL + STALE
        fake.now += 0.001  # past it
        with pytest.raises(StoreError):
            await cache.get_config("t1")
    finally:
        await cache.close()


async def test_a_healthy_poll_confirms_the_entry_and_resets_the_limit() -> None:
    """Stale-if-error: once a poll succeeds again, the entry is fresh and its age starts over."""
    fake, inner = FakeTime(), Breakable()
    await inner.save_config("t1", products_url=URL, cart_url=URL)
    cache = _cache(inner, fake)
    try:
        await cache.get_config("t1")
        inner.failing = True
        with pytest.raises(StoreError):
            await cache.poll()
        fake.now += TTL + STALE - 1
        inner.failing = False
        await cache.poll()  # the version did not move: confirmed, not read again
        reads = inner.reads
        inner.failing = True
        with pytest.raises(StoreError):
            await cache.poll()
        fake.now += TTL + STALE - 1  # past the limit since the first read, not the poll
        with capture_logs() as logs:
            assert await cache.get_config("t1") is not None
        assert inner.reads == reads
        assert [e["event"] for e in logs] == ["config_cache.serving_stale"]
    finally:
        await cache.close()


async def test_zero_stale_if_error_never_serves_past_the_interval() -> None:
    """Stale-if-error 0: after a failed poll, an entry older than the interval is not served."""
    fake, inner = FakeTime(), Breakable()
    await inner.save_config("t1", products_url=URL, cart_url=URL)
    cache = _cache(inner, fake, stale=0.0)
    try:
        await cache.get_config("t1")
        inner.failing = True
        with pytest.raises(StoreError):
            await cache.poll()
        fake.now += TTL + 0.001
        with pytest.raises(StoreError):
            await cache.get_config("t1")
    finally:
        await cache.close()


async def test_a_caller_that_stops_waiting_leaves_the_read_for_the_next() -> None:
    """Shared reads: a caller cancelled by its deadline does not cancel the read it waited on."""
    fake, inner = FakeTime(), Breakable()
    await inner.save_config("t1", products_url=URL, cart_url=URL)
    cache = _cache(inner, fake)
    try:
        inner.hang.clear()
        first = asyncio.create_task(cache.get_config("t1"))
        await asyncio.sleep(0)  # the read starts and waits
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.create_task(cache.get_config("t1"))
        await asyncio.sleep(0)
        inner.hang.set()
        config = await second
        assert config is not None and config.products_url == URL
        assert inner.reads == 1
    finally:
        await cache.close()


async def test_a_read_stopped_by_shutdown_is_a_store_error_for_its_waiter() -> None:
    """Shared reads: stop_refreshing cancels a read; its waiter gets StoreError, not a cancel."""
    fake, inner = FakeTime(), Breakable()
    cache = _cache(inner, fake)
    inner.hang.clear()
    waiting = asyncio.create_task(cache.get_config("t1"))
    await asyncio.sleep(0)
    await cache.stop_refreshing()
    with pytest.raises(StoreError):
        async with asyncio.timeout(10):  # the bound of a hang
            await waiting
    await cache.close()


@pytest.mark.parametrize("cache_seconds", [TTL, 0.0], ids=["cached", "cache-off"])
async def test_the_deadline_covers_the_config_lookup(cache_seconds: float) -> None:
    """Dispatcher: a store that never answers costs a call its deadline, then store_error."""
    fake, inner = FakeTime(), Breakable()
    await inner.save_config("t1", products_url=URL, cart_url=URL)
    inner.hang.clear()  # reachable, never answering
    dispatcher = Dispatcher(
        inner,
        settings=DispatchSettings(config_cache_seconds=cache_seconds),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=OK)),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    async with dispatcher:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(10):  # the bound of a hang, far above the deadline
            result = await dispatcher.check_products("t1", skus=["a"], store_id="s", deadline=0.05)
            cart = await dispatcher.cart_clear("t1", store_id="s", session_id="u", deadline=0.05)
        assert result.failure == "store_error" and result.unavailable == ("a",)
        assert (cart.ok, cart.reason, cart.detail) == (False, "webhook_timeout", "store_error")
        assert loop.time() - started < 5  # two deadlines of 0.05 s, not a hang
        inner.hang.set()  # the read the calls left behind completes and serves the next call
        assert (await dispatcher.check_products("t1", skus=["a"], store_id="s")).failure is None
        assert inner.reads == 1
