"""The call log on a database that stops answering (issue 13): calls are never delayed, the
entries that cannot be written are dropped and counted.

PostgreSQL sits behind a loopback proxy (``tests/support/stall_proxy.py``) that can stop
forwarding while still accepting connections.  The database's timeouts are real, so the
bounds are wall-clock ones, generous: a call that waited for a log write would take at least
the statement timeout; one that did not takes milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests.support.stall_proxy import StallProxy
from vizochok_dispatch import Dispatcher, DispatchSettings, SecretBox, SqlConfigStore

from .helpers import CART_URL, PRODUCTS_URL

pytestmark = pytest.mark.postgres

KEYS = "k1:" + "A" * 43 + "="  # 32 zero-ish bytes: a fixture, not a credential
STATEMENT_TIMEOUT = 2.0
#: Far above a call's own time (milliseconds against respx), far below a log write's wait.
CALL_BOUND = 1.0
CALLS = 20


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[StallProxy]:
    target = make_url(postgres_url)
    with StallProxy(target.host or "127.0.0.1", target.port or 5432, lifetime_seconds=90) as p:
        yield p


@pytest.fixture
async def dispatcher(postgres_url: str, proxy: StallProxy) -> AsyncIterator[Dispatcher]:
    """A dispatcher through ``proxy`` whose writer tries every 20 ms; tenant ``t1`` answers
    400 (a failure: logged); the config stays cached for the whole test."""
    writer = SqlConfigStore(
        postgres_url, auto_migrate=True, secret_box=SecretBox.from_keyring(KEYS)
    )
    try:
        await writer.save_config("t1", products_url=PRODUCTS_URL, cart_url=CART_URL)
    finally:
        await writer.close()
    settings = DispatchSettings(
        database_url=make_url(postgres_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False),
        secret_keys=SecretStr(KEYS),
        database_connect_timeout_seconds=0.5,
        database_statement_timeout_seconds=STATEMENT_TIMEOUT,
        config_cache_seconds=3600,
        event_worker="off",
        call_log_flush_seconds=0.02,
        call_log_batch_size=1,
    )
    router = respx.Router()
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(400, text="refused"))
    instance = Dispatcher.from_settings(
        settings, transport=httpx.MockTransport(router.async_handler)
    )
    try:
        async with instance:
            yield instance
            proxy.close()  # releases held connections before the engines are disposed
    finally:
        proxy.close()


async def test_a_hung_store_drops_entries_and_never_delays_a_call(
    dispatcher: Dispatcher, proxy: StallProxy
) -> None:
    """Call log: with the database hung, calls take no longer; their entries are dropped
    and counted as the writes time out."""
    log = dispatcher.call_log
    await dispatcher.check_products("t1", skus=["a"], store_id="s")  # caches the config
    await log.flush()
    assert (log.written, log.dropped) == (1, 0)

    proxy.stall()
    took = []
    for _ in range(CALLS):
        started = time.monotonic()
        result = await dispatcher.check_products("t1", skus=["a"], store_id="s")
        took.append(time.monotonic() - started)
        assert result.failure == "http_status"
        await asyncio.sleep(0.03)  # the writer takes an entry and hangs on it
    assert max(took) < CALL_BOUND
    async with asyncio.timeout(6 * STATEMENT_TIMEOUT):  # the hung writes give up in time
        await log.flush()
    assert log.written == 1
    assert log.dropped_store_error + log.queued == CALLS
    assert log.dropped_store_error >= 1
    assert dispatcher.metrics is not None
    dropped = dispatcher.metrics.registry.get_sample_value("vizochok_call_log_dropped_total")
    assert dropped == log.dropped_store_error
