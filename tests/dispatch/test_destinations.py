"""The SSRF guard: non-public destinations are refused on save, per attempt and at connect."""

from __future__ import annotations

import ipaddress

import httpx
import pytest
import respx

from tests.support.dns import ScriptedResolver
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import (
    ConfigRules,
    Dispatcher,
    DispatchSettings,
    InMemoryConfigStore,
    InvalidConfig,
)
from vizochok_dispatch.http._destinations import DestinationPolicy, GuardedResolver, embedded_ipv4

STRICT = DestinationPolicy()
LOOPBACK_ONLY = DestinationPolicy(
    allowed_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
)

BLOCKED_HOSTS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "10.0.0.8",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fc00::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:169.254.169.254]",
    "[2002:7f00:1::1]",
    "[2002:a9fe:a9fe::1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b::a9fe:a9fe]",
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "224.0.0.1",
]


@pytest.mark.parametrize("host", BLOCKED_HOSTS)
def test_non_public_hosts_are_refused_without_dns(host):
    """Literal, numeric, mapped, 6to4, NAT64, Teredo and local names are all refused."""
    assert STRICT.host_problem(host) is not None


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "[2606:4700::1111]", "[64:ff9b::808:808]", "shop.example"]
)
def test_public_hosts_pass_the_static_check(host):
    """Global addresses (and names, which DNS decides later) pass."""
    assert STRICT.host_problem(host) is None


def test_the_allow_list_opens_only_its_networks():
    """127.0.0.0/8 allowed does not allow 10/8, metadata, or a NAT64 wrapper of 10/8."""
    assert LOOPBACK_ONLY.host_problem("127.0.0.1") is None
    assert LOOPBACK_ONLY.host_problem("localhost") is None
    assert LOOPBACK_ONLY.host_problem("10.0.0.1") is not None
    assert LOOPBACK_ONLY.host_problem("169.254.169.254") is not None
    assert LOOPBACK_ONLY.host_problem("[64:ff9b::a00:1]") is not None


def test_embedded_addresses_are_unwrapped():
    """Every IPv4 hidden in an IPv6 address is found."""
    assert ipaddress.IPv4Address("127.0.0.1") in embedded_ipv4(
        ipaddress.ip_address("2002:7f00:1::")
    )
    assert ipaddress.IPv4Address("10.0.0.1") in embedded_ipv4(
        ipaddress.ip_address("64:ff9b::a00:1")
    )


@pytest.mark.parametrize(
    "url", [f"https://{h}/hook" for h in ("127.1", "[::1]", "169.254.169.254")]
)
async def test_saving_a_blocked_url_is_a_field_error(url):
    """The same check refuses the URL on save, naming the field, storing nothing."""
    store = InMemoryConfigStore()
    with pytest.raises(InvalidConfig) as caught:
        await store.save_config("t1", products_url=url, cart_url="https://shop.example/c")
    assert [e.field for e in caught.value.errors] == ["products_url"]
    assert "non-public" in caught.value.errors[0].message
    assert await store.get_config("t1") is None


def test_allowed_networks_come_from_comma_separated_settings(monkeypatch):
    """VIZOCHOK_ALLOWED_NETWORKS is a comma-separated list of CIDRs; a bad one is refused."""
    monkeypatch.setenv("VIZOCHOK_ALLOWED_NETWORKS", "127.0.0.0/8, ::1/128")
    policy = DispatchSettings().destination_policy()
    assert policy.host_problem("127.0.0.1") is None
    monkeypatch.setenv("VIZOCHOK_ALLOWED_NETWORKS", "127.0.0.0/8,not-a-network")
    with pytest.raises(ValueError, match="allowed_networks"):
        DispatchSettings()


async def test_a_stored_url_that_became_blocked_is_not_called():
    """A URL saved under a looser policy is refused per attempt under the strict one."""
    router = respx.Router()
    route = router.route().mock(return_value=httpx.Response(200, json={"products": []}))
    store = InMemoryConfigStore(rules=ConfigRules(destinations=LOOPBACK_ONLY))
    await store.save_config(
        "t1", products_url="https://127.0.0.1/p", cart_url="https://127.0.0.1/c"
    )
    async with Dispatcher(store, transport=httpx.MockTransport(router.async_handler)) as d:
        result = await d.check_products("t1", skus=["a"], store_id="s")
    assert result.failure == "blocked_destination"
    assert route.call_count == 0


async def test_guarded_resolver_checks_every_answer():
    """First answer allowed, second (rebound to a forbidden address) refused."""
    only_127_0_0_2 = DestinationPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
    guard = GuardedResolver(only_127_0_0_2, ScriptedResolver("127.0.0.2", "127.0.0.1"))
    first = await guard.resolve("tenant.test", 443)
    assert first[0]["host"] == "127.0.0.2"
    with pytest.raises(OSError, match="non-public"):
        await guard.resolve("tenant.test", 443)


@pytest.mark.loopback
async def test_rebinding_is_caught_at_connect_and_the_checked_address_is_used():
    """Over real sockets: the checked 127.0.0.2 is connected (Host kept); a rebind is blocked."""

    async def ok(request: Received, reply: Reply) -> None:
        body = b'{"products": [{"sku": "a", "price": 1, "in_stock": true}]}'
        # Connection: close makes the next call open (and so resolve) a new connection.
        await reply.send(200, body, headers={"Connection": "close"})
        reply.close()

    async with serve(ok, host="127.0.0.2") as server:
        resolver = ScriptedResolver("127.0.0.2", "127.0.0.1")
        settings = DispatchSettings(
            allow_http=True,
            allowed_networks="127.0.0.2/32",
            dns_cache_seconds=0,
        )
        store = InMemoryConfigStore(rules=settings.config_rules())
        port = server.port
        url = f"http://tenant.test:{port}/p"
        await store.save_config("t1", products_url=url, cart_url=url)
        async with Dispatcher(store, settings=settings, resolver=resolver) as d:
            first = await d.check_products("t1", skus=["a"], store_id="s")
            second = await d.check_products("t1", skus=["a"], store_id="s")
    assert first.failure is None
    assert server.received[0].headers["host"] == f"tenant.test:{port}"
    assert second.failure == "blocked_destination"
    assert len(server.received) == 1
