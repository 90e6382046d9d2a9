"""The admin API on a database that stops answering: the one 503 shape, within a bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests.support.stall_proxy import StallProxy
from vizochok_dispatch import Dispatcher, DispatchSettings, SecretBox, SqlConfigStore
from vizochok_dispatch.admin import create_admin_app

from .support import KEY_1, SHOP_A, WEBHOOKS, FakeResolver, bearer, shop_config

pytestmark = pytest.mark.postgres

CONNECT_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 0.5
#: The worst a request can wait on the database: a pooled connection's ping, a new
#: connection, then the statement; plus scheduling slack on a loaded machine.
BOUND = CONNECT_TIMEOUT + 2 * STATEMENT_TIMEOUT + 1.5
UNAVAILABLE = {
    "error": {
        "code": "store_unavailable",
        "message": "the configuration store is unavailable; retry",
    }
}


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[StallProxy]:
    target = make_url(postgres_url)
    with StallProxy(target.host or "127.0.0.1", target.port or 5432, lifetime_seconds=90) as p:
        yield p


@pytest.fixture
async def key(postgres_url: str) -> AsyncIterator[str]:
    """A tenant and its API key, made straight in the database (not through the proxy)."""
    from vizochok_dispatch import TenantDirectory  # noqa: PLC0415 - local to this fixture

    store = SqlConfigStore(
        postgres_url, auto_migrate=True, secret_box=SecretBox.from_keyring(KEY_1)
    )
    try:
        _, issued = await TenantDirectory.for_store(store).create_tenant("Shop", tenant_id="shop")
        yield issued.key
    finally:
        await store.close()


@pytest.fixture
async def client(
    postgres_url: str, proxy: StallProxy, key: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = DispatchSettings(
        database_url=make_url(postgres_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False),
        secret_keys=SecretStr(KEY_1),
        database_connect_timeout_seconds=CONNECT_TIMEOUT,
        database_statement_timeout_seconds=STATEMENT_TIMEOUT,
        config_cache_seconds=0.5,
    )
    dispatcher = Dispatcher.from_settings(settings)
    app = create_admin_app(settings, dispatcher=dispatcher, resolve=FakeResolver())
    try:
        async with (
            dispatcher,
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://admin.test",
            ) as http,
        ):
            yield http
    finally:
        proxy.close()  # releases held connections before the engine is disposed


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("GET", None),
        ("PATCH", shop_config(SHOP_A)),
        ("PATCH", {"timeout_seconds": "not a number"}),  # the validation path authenticates too
    ],
)
async def test_a_hung_store_is_a_503_within_a_bound(
    client: httpx.AsyncClient,
    proxy: StallProxy,
    key: str,
    method: str,
    body: dict[str, object] | None,
) -> None:
    """Admin API: with the database hung, requests get 503 store_unavailable within a bound."""
    assert (await client.get(WEBHOOKS, headers=bearer(key))).status_code in (
        200,
        409,
    )  # 409: nothing saved yet
    proxy.stall()
    started = time.monotonic()
    async with asyncio.timeout(30):  # the ASGI transport has no timeout of its own
        response = await client.request(method, WEBHOOKS, headers=bearer(key), json=body)
    took = time.monotonic() - started
    assert response.status_code == 503
    assert response.json() == UNAVAILABLE
    assert took < BOUND
