"""A store that stops answering: every wait bounded, stale-if-error, recovery within a poll.

PostgreSQL sits behind a loopback proxy (``tests/support/stall_proxy.py``) that can stop
forwarding while still accepting connections, the way a hung server or a black-holed route
looks to a client.  The dispatcher's clock is fake where ages matter; the database's own
timeouts are real, so wall-clock bounds are asserted with generous slack.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from tests.support.stall_proxy import StallProxy
from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    SecretBox,
    SqlConfigStore,
    StoreError,
    WebhookConfig,
)

from .helpers import CART_URL, PRODUCTS_URL

KEYS = "k1:" + "A" * 43 + "="  # 32 zero-ish bytes: a fixture, not a credential
CONNECT_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 0.5
CACHE_SECONDS = 0.5
STALE_SECONDS = 30.0
DEADLINE = 1.0
#: Scheduling slack on a loaded 2-core machine; every bound below is this much generous.
SLACK = 1.0
_T = TypeVar("_T")
OK_REPLY = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}


@dataclass
class Stalled:
    """A dispatcher whose database goes through ``proxy``, and a writer that does not."""

    dispatcher: Dispatcher
    writer: SqlConfigStore
    proxy: StallProxy
    time: FakeTime


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[StallProxy]:
    target = make_url(postgres_url)
    with StallProxy(target.host or "127.0.0.1", target.port or 5432, lifetime_seconds=90) as p:
        yield p


@pytest.fixture
async def stalled(postgres_url: str, proxy: StallProxy) -> AsyncIterator[Stalled]:
    writer = SqlConfigStore(
        postgres_url, auto_migrate=True, secret_box=SecretBox.from_keyring(KEYS)
    )
    await writer.open()
    settings = DispatchSettings(
        database_url=make_url(postgres_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False),
        secret_keys=SecretStr(KEYS),
        database_connect_timeout_seconds=CONNECT_TIMEOUT,
        database_statement_timeout_seconds=STATEMENT_TIMEOUT,
        config_cache_seconds=CACHE_SECONDS,
        config_stale_if_error_seconds=STALE_SECONDS,
    )
    fake = FakeTime()
    dispatcher = Dispatcher.from_settings(
        settings,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=OK_REPLY)),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    try:
        async with dispatcher:
            yield Stalled(dispatcher, writer, proxy, fake)
    finally:
        proxy.close()  # releases held connections, so closing the engine does not wait
        await writer.close()


async def _timed(call: Awaitable[_T], bound: float) -> tuple[_T, float]:
    """Await ``call`` within ``bound`` seconds (a hang fails the test); the result and time."""
    started = time.monotonic()
    async with asyncio.timeout(bound):
        result = await call
    return result, time.monotonic() - started


@pytest.mark.postgres
async def test_a_hung_store_costs_a_call_no_more_than_its_deadline(stalled: Stalled) -> None:
    """Store stall: a tenant not in the cache gets store_error within deadline=1.0, no raise."""
    await stalled.writer.save_config("cold", products_url=PRODUCTS_URL, cart_url=CART_URL)
    stalled.proxy.stall()
    result, took = await _timed(
        stalled.dispatcher.check_products("cold", skus=["a"], store_id="s", deadline=DEADLINE),
        bound=30,
    )
    assert result.failure == "store_error"
    assert result.unavailable == ("a",)
    assert took < DEADLINE + SLACK
    assert stalled.proxy.held > 0, "the proxy never held a connection: nothing was stalled"


@pytest.mark.postgres
async def test_without_a_deadline_the_database_timeouts_bound_the_lookup(
    stalled: Stalled,
) -> None:
    """Store stall: no deadline, and the connect/statement timeouts still end the lookup."""
    await stalled.writer.save_config("cold", products_url=PRODUCTS_URL, cart_url=CART_URL)
    stalled.proxy.stall()
    result, took = await _timed(
        stalled.dispatcher.check_products("cold", skus=["a"], store_id="s"), bound=30
    )
    assert result.failure == "store_error"
    # at worst: the pooled connection's ping times out, then a new connection does
    assert took < STATEMENT_TIMEOUT + CONNECT_TIMEOUT + STATEMENT_TIMEOUT + SLACK


@pytest.mark.postgres
async def test_a_cached_tenant_is_served_stale_within_its_limit(stalled: Stalled) -> None:
    """Stale-if-error: a cached config is served while the store hangs, logged once, then
    refused past config_cache_seconds + config_stale_if_error_seconds."""
    await stalled.writer.save_config("warm", products_url=PRODUCTS_URL, cart_url=CART_URL)
    d = stalled.dispatcher
    assert (await d.check_products("warm", skus=["a"], store_id="s")).failure is None
    stalled.proxy.stall()
    with pytest.raises(StoreError):
        await _timed(d.store.poll(), bound=30)  # what the background poller meets
    with capture_logs() as logs:
        for _ in range(3):
            result, took = await _timed(
                d.check_products("warm", skus=["a"], store_id="s", deadline=DEADLINE), bound=30
            )
            assert result.failure is None
            assert took < SLACK
    stale = [e for e in logs if e["event"] == "config_cache.serving_stale"]
    assert len(stale) == 1 and stale[0]["tenant_id"] == "warm"

    stalled.time.now += CACHE_SECONDS + STALE_SECONDS + 1  # past the limit
    result, took = await _timed(
        d.check_products("warm", skus=["a"], store_id="s", deadline=DEADLINE), bound=30
    )
    assert result.failure == "store_error"
    assert took < DEADLINE + SLACK


@pytest.mark.postgres
async def test_once_the_store_is_back_another_process_save_shows_within_a_poll(
    stalled: Stalled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery: after a hang, a save by another process shows within the cache interval
    plus one failing poll's bound (connect + statement timeout), never minutes later."""
    d = stalled.dispatcher
    inner = d.store.inner
    assert isinstance(inner, SqlConfigStore)
    moved = PRODUCTS_URL + "/moved"
    poll_failed, moved_read = asyncio.Event(), asyncio.Event()

    async def versions() -> dict[str, int]:
        try:
            return await SqlConfigStore.versions(inner)
        except StoreError:
            poll_failed.set()
            raise

    async def get_config(tenant_id: str) -> WebhookConfig | None:
        config = await SqlConfigStore.get_config(inner, tenant_id)
        if config is not None and config.products_url == moved:
            moved_read.set()
        return config

    monkeypatch.setattr(inner, "versions", versions)
    monkeypatch.setattr(inner, "get_config", get_config)
    await stalled.writer.save_config("warm", products_url=PRODUCTS_URL, cart_url=CART_URL)
    assert (await d.check_products("warm", skus=["a"], store_id="s")).failure is None
    stalled.proxy.stall()
    # a call for a new tenant meets the hang on a pooled connection; so does the poller
    await _timed(d.check_products("cold", skus=["a"], store_id="s", deadline=DEADLINE), 30)
    await _timed(poll_failed.wait(), bound=30)
    stalled.proxy.resume()
    await stalled.writer.save_config("warm", products_url=moved)
    _, took = await _timed(moved_read.wait(), bound=60)
    await d.store.settle()
    config = await d.store.get_config("warm")
    assert config is not None and config.products_url == moved
    failing_poll = CONNECT_TIMEOUT + STATEMENT_TIMEOUT + STATEMENT_TIMEOUT
    assert took < failing_poll + CACHE_SECONDS + SLACK


async def test_a_locked_sqlite_database_fails_a_save_after_the_statement_timeout(
    tmp_path: Path,
) -> None:
    """SQLite: a write waiting on another writer's lock gives up after the statement timeout."""
    path = tmp_path / "locked.db"
    store = SqlConfigStore(
        f"sqlite+aiosqlite:///{path}", auto_migrate=True, statement_timeout_seconds=0.3
    )
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreError):
            await _timed(
                store.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL), bound=20
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
        await store.close()
