"""Dispatchers wired to respx or to a real loopback server, with injected time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import respx

from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
)

SECRET = "whsec_test_secret_for_dispatch_tests_0001"
BASE = "https://tenant.example"
PRODUCTS_URL = f"{BASE}/vizochok/check-products"
CART_URL = f"{BASE}/vizochok/cart"
CART_GET_URL = f"{BASE}/vizochok/cart/items"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)


@pytest.fixture
async def dispatcher(router: respx.Router, fake_time: FakeTime) -> AsyncIterator[Dispatcher]:
    """A dispatcher whose HTTP goes to respx and whose time is fake; tenant ``t1`` is set up."""
    store = InMemoryConfigStore()
    await store.save_config(
        "t1",
        products_url=PRODUCTS_URL,
        cart_url=CART_URL,
        cart_get_url=CART_GET_URL,
        timeout_seconds=2.0,
        secret=SECRET,
    )
    async with Dispatcher(
        store,
        transport=httpx.MockTransport(router.async_handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    ) as instance:
        yield instance


#: What the loopback tests allow, as the settings' comma-separated CIDRs.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"

LoopbackFactory = Callable[..., Awaitable[Dispatcher]]


@pytest.fixture
async def loopback_dispatcher() -> AsyncIterator[LoopbackFactory]:
    """Builds real dispatchers (default aiohttp transport) for tenants on 127.0.0.1."""
    made: list[Dispatcher] = []

    async def make(
        *,
        products_url: str,
        cart_url: str | None = None,
        cart_get_url: str | None = None,
        timeout_seconds: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        **settings: object,
    ) -> Dispatcher:
        loopback = DispatchSettings(
            allow_http=True,
            allowed_networks=LOOPBACK_NETWORKS,
            **settings,  # type: ignore[arg-type]
        )
        store = InMemoryConfigStore(rules=loopback.config_rules())
        await store.save_config(
            "t1",
            products_url=products_url,
            cart_url=cart_url or products_url,
            cart_get_url=cart_get_url,
            timeout_seconds=timeout_seconds,
            secret=SECRET,
        )
        instance = Dispatcher(
            store,
            settings=loopback,
            sleep=sleep or asyncio.sleep,
        )
        made.append(await instance.__aenter__())
        return instance

    yield make
    for instance in made:
        await instance.aclose()
