"""Config lookups are cached: no query per warm call, saves seen at once here, bounded elsewhere."""

from __future__ import annotations

import asyncio
from typing import Any

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


class PlainStore:
    """A store that cannot list versions: the cache falls back to per-entry ttl refreshes."""

    def __init__(self, inner: InMemoryConfigStore) -> None:
        self.inner = inner
        self.reads = 0
        self.down = False

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get_config(self, tenant_id: str) -> WebhookConfig | None:
        self.reads += 1
        await asyncio.sleep(0)
        if self.down:
            raise RuntimeError("database went away")
        return await self.inner.get_config(tenant_id)

    async def save_config(self, tenant_id: str, **fields: object) -> WebhookConfig:
        return await self.inner.save_config(tenant_id, **fields)  # type: ignore[arg-type]

    async def roll_secret(self, tenant_id: str, **fields: Any) -> WebhookConfig | None:
        return await self.inner.roll_secret(tenant_id, **fields)

    async def promote_secret(self, tenant_id: str, **fields: Any) -> WebhookConfig | None:
        return await self.inner.promote_secret(tenant_id, **fields)

    async def delete_config(self, tenant_id: str) -> bool:
        return await self.inner.delete_config(tenant_id)


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


async def test_another_process_save_is_seen_after_one_poll(database_url):
    """Two stores on one database (two processes): B serves its cache until a poll moves it."""
    writer = SqlConfigStore(database_url, auto_migrate=True)
    reader = CachedConfigStore(SqlConfigStore(database_url, auto_migrate=True), ttl_seconds=60)
    try:
        await writer.save_config("t1", products_url=URL_A, cart_url=URL_A)
        await writer.save_config("t2", products_url=URL_A, cart_url=URL_A)
        assert await products_url(reader, "t1") == URL_A
        assert await products_url(reader, "t2") == URL_A
        assert await reader.get_config("t3") is None
        await writer.save_config("t1", products_url=URL_B)
        await writer.delete_config("t2")
        await writer.save_config("t3", products_url=URL_B, cart_url=URL_B)
        assert await products_url(reader, "t1") == URL_A  # no query until the poll
        await reader.poll()
        await reader.settle()
        assert await products_url(reader, "t1") == URL_B
        assert await reader.get_config("t2") is None
        assert await products_url(reader, "t3") == URL_B
    finally:
        await writer.close()
        await reader.close()


async def test_the_poller_runs_once_per_ttl_whatever_the_traffic():
    """One versions() query per interval, however many tenants and calls."""
    polls: list[float] = []
    three_polls = asyncio.Event()

    class Versions(CountingStore):
        async def versions(self) -> dict[str, int]:
            polls.append(len(polls))
            if len(polls) == 3:
                three_polls.set()
            return await super().versions()

    slept: list[float] = []

    async def poll_sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    inner = Versions()
    for i in range(100):
        await inner.save_config(f"t{i}", products_url=URL_A, cart_url=URL_A)
    cache = CachedConfigStore(inner, ttl_seconds=5.0, poll_sleep=poll_sleep)
    for _ in range(3):
        await asyncio.gather(*(cache.get_config(f"t{i}") for i in range(100)))
    await three_polls.wait()
    await cache.stop_refreshing()
    assert inner.reads == 100
    assert slept[:3] == [5.0, 5.0, 5.0]
    assert len(polls) in (len(slept), len(slept) - 1)


async def test_a_read_that_started_before_a_save_does_not_undo_it():
    """A slow background read returning an older config never replaces a newer save."""
    release = asyncio.Event()

    class Slow(PlainStore):
        async def get_config(self, tenant_id: str) -> WebhookConfig | None:
            config = await self.inner.get_config(tenant_id)  # read now, answer later
            await release.wait()
            return config

    fake = FakeTime()
    inner = Slow(InMemoryConfigStore())
    await inner.save_config("t1", products_url=URL_A, cart_url=URL_A)
    cache = CachedConfigStore(inner, ttl_seconds=2.0, clock=fake.monotonic)
    reading = asyncio.create_task(cache.get_config("t1"))
    await asyncio.sleep(0)
    await cache.save_config("t1", products_url=URL_B)
    release.set()
    assert (await reading) is not None
    assert await products_url(cache, "t1") == URL_B


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


async def test_without_versions_a_stale_entry_is_served_while_one_read_refreshes_it():
    """Past the ttl, calls get the cached config at once and the store is read once."""
    fake = FakeTime()
    inner = PlainStore(InMemoryConfigStore())
    await inner.save_config("t1", products_url=URL_A, cart_url=URL_A)
    cache = CachedConfigStore(inner, ttl_seconds=2.0, clock=fake.monotonic)
    await cache.get_config("t1")
    await inner.save_config("t1", products_url=URL_B)
    fake.now += 5
    stale = await asyncio.gather(*(products_url(cache, "t1") for _ in range(50)))
    await cache.settle()
    assert set(stale) == {URL_A}
    assert inner.reads == 2
    assert await products_url(cache, "t1") == URL_B


async def test_a_failed_refresh_keeps_serving_the_last_good_config():
    """When the background read fails, the last good config is kept and retried later."""
    fake = FakeTime()
    inner = PlainStore(InMemoryConfigStore())
    await inner.save_config("t1", products_url=URL_A, cart_url=URL_A)
    cache = CachedConfigStore(inner, ttl_seconds=2.0, clock=fake.monotonic)
    await cache.get_config("t1")
    inner.down = True
    fake.now += 3
    assert await products_url(cache, "t1") == URL_A
    await cache.settle()
    assert await products_url(cache, "t1") == URL_A


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
