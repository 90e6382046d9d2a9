"""The connect-time SSRF guard on every AiohttpTransport, and a warning when it is absent.

Issue 9, case 10: a user-built ``AiohttpTransport()`` guards by default (only public
addresses, plus the networks it is given); an injected httpx client or transport cannot be
guarded at connect time, so the dispatcher says so once, in a warning.
"""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from tests.dispatch.conftest import LOOPBACK_NETWORKS, SECRET
from tests.support.dns import ScriptedResolver
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import AiohttpTransport, Dispatcher, DispatchSettings, InMemoryConfigStore

pytestmark = pytest.mark.loopback

PRODUCTS = b'{"products": [{"sku": "a", "price": 1, "in_stock": true}]}'
GUARD_EVENT = "dispatcher.connect_guard_absent"


async def ok(request: Received, reply: Reply) -> None:
    await reply.send(200, PRODUCTS)


def targets(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/p",
        f"http://2130706433:{port}/p",
        f"http://localhost:{port}/p",
        f"http://tenant.test:{port}/p",  # resolved by PointsTo to 127.0.0.1
    ]


async def test_a_user_built_transport_refuses_inward_addresses_before_connecting():
    """AiohttpTransport(): literal, numeric, localhost and resolved loopback are all blocked."""
    async with serve(ok) as server:
        transport = AiohttpTransport(resolver=ScriptedResolver("127.0.0.1"))
        async with httpx.AsyncClient(transport=transport) as client:
            for url in targets(server.port):
                with pytest.raises(httpx.ConnectError, match=r"non-public|localhost") as caught:
                    await client.get(url)
                assert type(caught.value).__name__ == "BlockedDestination", url
    assert server.connections == 0


async def test_allowed_networks_open_exactly_those_networks():
    """AiohttpTransport(allowed_networks=...) connects there, and still refuses the rest."""
    async with serve(ok) as server:
        transport = AiohttpTransport(
            allowed_networks=LOOPBACK_NETWORKS, resolver=ScriptedResolver("127.0.0.1")
        )
        only_10 = AiohttpTransport(allowed_networks=["10.0.0.0/8"])
        async with (
            httpx.AsyncClient(transport=transport) as client,
            httpx.AsyncClient(transport=only_10) as other,
        ):
            reachable = [url for url in targets(server.port) if "2130706433" not in url]
            answers = [(await client.get(url)).status_code for url in reachable]
            with pytest.raises(httpx.ConnectError, match="non-public"):
                await other.get(server.url("/p"))
    assert answers == [200] * 3  # aiohttp itself refuses a host written as one number
    assert [r.headers["host"] for r in server.received][-1] == f"tenant.test:{server.port}"
    assert [str(n) for n in transport.allowed_networks] == ["127.0.0.0/8", "::1/128"]


def test_a_bad_network_is_a_value_error():
    """A network that is not a CIDR is refused when the transport is built."""
    with pytest.raises(ValueError, match="not-a-network"):
        AiohttpTransport(allowed_networks="127.0.0.0/8,not-a-network")


async def test_the_fast_path_of_an_injected_aiohttp_transport_is_guarded_too():
    """Dispatcher(transport=AiohttpTransport()): its own guard holds on the fast path."""
    settings = DispatchSettings(allow_http=True, allowed_networks=LOOPBACK_NETWORKS)
    async with serve(ok) as server:
        store = InMemoryConfigStore(rules=settings.config_rules())
        url = f"http://tenant.test:{server.port}/p"
        await store.save_config("t1", products_url=url, cart_url=url, secret=SECRET)
        transport = AiohttpTransport(resolver=ScriptedResolver("127.0.0.1"))
        with capture_logs() as logs:
            async with Dispatcher(store, settings=settings, transport=transport) as d:
                result = await d.check_products("t1", skus=["a"], store_id="s")
        await transport.aclose()
    assert result.failure == "blocked_destination"
    assert server.connections == 0
    assert GUARD_EVENT not in [e["event"] for e in logs]


@pytest.mark.parametrize("engine", ["transport", "client"])
async def test_an_injected_httpx_engine_is_warned_about_once(engine):
    """An injected httpx transport or client: one warning (what is unchecked), none per call."""
    settings = DispatchSettings(allow_http=True, allowed_networks=LOOPBACK_NETWORKS)
    async with serve(ok) as server:
        store = InMemoryConfigStore(rules=settings.config_rules())
        url = server.url("/p")
        await store.save_config("t1", products_url=url, cart_url=url, secret=SECRET)
        inner = httpx.AsyncHTTPTransport()
        client = httpx.AsyncClient(transport=inner) if engine == "client" else None
        with capture_logs() as logs:
            d = Dispatcher(
                store,
                settings=settings,
                transport=inner if engine == "transport" else None,
                client=client,
            )
            async with d:
                results = [await d.check_products("t1", skus=["a"], store_id="s") for _ in range(3)]
        if client is not None:
            await client.aclose()
        await inner.aclose()
    warnings = [e for e in logs if e["event"] == GUARD_EVENT]
    assert [r.failure for r in results] == [None] * 3
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["injected"] == engine
    assert "connect-time" in warnings[0]["unchecked"]


async def test_the_default_engine_logs_no_guard_warning():
    """The dispatcher's own transport is guarded: no warning."""
    store = InMemoryConfigStore()
    with capture_logs() as logs:
        async with Dispatcher(store):
            pass
    assert GUARD_EVENT not in [e["event"] for e in logs]
