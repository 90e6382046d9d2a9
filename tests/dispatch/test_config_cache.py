"""Config lookups are cached: no query per warm call, saves seen at once here, bounded elsewhere."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from sqlalchemy import event

from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    CachedConfigStore,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    SqlConfigStore,
    WebhookConfig,
)

URL_A = "https://tenant.example/a"
URL_B = "https://tenant.example/b"
OK = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}


class CountingStore(InMemoryConfigStore):
    """The in-memory store, counting reads that reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        self.reads += 1
        await asyncio.sleep(0)  # a real store yields here; concurrent misses pile up
        return await super().get_config(tenant_id)


async def products_url(store: CachedConfigStore, tenant_id: str) -> str:
    config = await store.get_config(tenant_id)
    assert config is not None
    return config.products_url


def counted_queries(store: SqlConfigStore) -> list[str]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    return statements


async def test_warm_calls_make_no_database_query(database_url):
    """After the first call, check_products runs no SQL at all."""
    router = respx.Router()
    router.post(URL_A).mock(return_value=httpx.Response(200, json=OK))
    store = SqlConfigStore(database_url, auto_migrate=True)
    async with Dispatcher(
        store, transport=httpx.MockTransport(router.async_handler), owns_store=True
    ) as d:
        await store.save_config("t1", products_url=URL_A, cart_url=URL_A)
        await d.check_products("t1", skus=["a"], store_id="s")  # cold: one read
        queries = counted_queries(store)
        for _ in range(50):
            result = await d.check_products("t1", skus=["a"], store_id="s")
            assert result.failure is None
    assert queries == []


async def test_a_save_through_the_dispatcher_is_seen_by_the_next_call():
    """A save through dispatcher.store (as the admin API does) applies to the very next call."""
    router = respx.Router()
    route_a = router.post(URL_A).mock(return_value=httpx.Response(200, json=OK))
    route_b = router.post(URL_B).mock(return_value=httpx.Response(200, json=OK))
    store = InMemoryConfigStore()
    await store.save_config("t1", products_url=URL_A, cart_url=URL_A)
    async with Dispatcher(store, transport=httpx.MockTransport(router.async_handler)) as d:
        await d.check_products("t1", skus=["a"], store_id="s")
        await d.store.save_config("t1", products_url=URL_B)
        await d.check_products("t1", skus=["a"], store_id="s")
    assert (route_a.call_count, route_b.call_count) == (1, 1)


async def test_another_process_save_is_seen_within_the_ttl(database_url):
    """Two stores on one database (two processes): B sees A's save once its entry is ttl old."""
    fake = FakeTime()
    writer = SqlConfigStore(database_url, auto_migrate=True)
    reader_inner = SqlConfigStore(database_url, auto_migrate=True)
    reader = CachedConfigStore(reader_inner, ttl_seconds=2.0, clock=fake.monotonic)
    try:
        await writer.save_config("t1", products_url=URL_A, cart_url=URL_A)
        assert await products_url(reader, "t1") == URL_A
        await writer.save_config("t1", products_url=URL_B)
        fake.now += 1.9
        assert await products_url(reader, "t1") == URL_A  # still within the ttl
        fake.now += 0.2
        assert await products_url(reader, "t1") == URL_B
    finally:
        await writer.close()
        await reader.close()


async def test_concurrent_misses_share_one_read():
    """A burst of calls for a cold tenant reads the store once."""
    inner = CountingStore()
    await inner.save_config("t1", products_url=URL_A, cart_url=URL_A)
    cache = CachedConfigStore(inner, ttl_seconds=5.0)
    configs = await asyncio.gather(*(cache.get_config("t1") for _ in range(100)))
    assert inner.reads == 1
    assert {c.products_url for c in configs if c} == {URL_A}


async def test_unknown_tenants_are_cached_too():
    """Calls for a tenant with no config do not reach the store each time."""
    inner = CountingStore()
    cache = CachedConfigStore(inner, ttl_seconds=5.0)
    for _ in range(10):
        assert await cache.get_config("nobody") is None
    assert inner.reads == 1


async def test_a_failed_read_is_not_cached():
    """When the store fails, the next call asks it again instead of serving the failure."""

    class Flaky(CountingStore):
        async def get_config(self, tenant_id: str) -> WebhookConfig | None:
            self.reads += 1
            if self.reads == 1:
                raise RuntimeError("database went away")
            return None

    inner = Flaky()
    cache = CachedConfigStore(inner, ttl_seconds=5.0)
    with pytest.raises(RuntimeError):
        await cache.get_config("t1")
    assert await cache.get_config("t1") is None
    assert inner.reads == 2


async def test_zero_ttl_turns_the_cache_off():
    """config_cache_seconds=0 reads the store on every call."""
    inner = CountingStore()
    await inner.save_config("t1", products_url=URL_A, cart_url=URL_A)
    async with Dispatcher(
        inner,
        settings=DispatchSettings(config_cache_seconds=0),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=OK)),
    ) as d:
        for _ in range(3):
            await d.check_products("t1", skus=["a"], store_id="s")
    assert inner.reads == 3
