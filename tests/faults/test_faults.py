"""Fault injection: a misbehaving tenant on 127.0.0.1, the contract's outcome, and no leaks.

Each scenario runs three times through one dispatcher, then the same dispatcher must serve
normal calls, with no more file descriptors or tasks than before the faults: a broken tenant
must not leave connections, sockets or tasks behind.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import socket
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, DispatchSettings, InMemoryConfigStore

pytestmark = [pytest.mark.faults, pytest.mark.loopback]

PRODUCTS = b'{"products": [{"sku": "a", "price": 1, "in_stock": true}]}'
TIMEOUT = 0.5


async def hang_before_headers(request: Received, reply: Reply) -> None:
    await asyncio.sleep(3600)


async def drip_headers(request: Received, reply: Reply) -> None:
    await reply.raw(b"HTTP/1.1 200 OK\r\n")
    for i in range(10_000):
        await reply.raw(f"X-Drip-{i}: 1\r\n".encode())
        await asyncio.sleep(0.05)


async def drip_body(request: Received, reply: Reply) -> None:
    await reply.head_only(200, 10_000)
    for _ in range(10_000):
        await reply.raw(b" ")
        await asyncio.sleep(0.05)


async def reset_mid_body(request: Received, reply: Reply) -> None:
    await reply.head_only(200, 1000)
    await reply.raw(b'{"products": [')
    reply.reset()


async def close_without_response(request: Received, reply: Reply) -> None:
    reply.close()


async def garbage(request: Received, reply: Reply) -> None:
    await reply.raw(b"\x16\x03\x01 this is not HTTP at all \x00\xff\r\n\r\n")
    reply.close()


async def answer_100_mib(request: Received, reply: Reply) -> None:
    chunk = b"[" * 65536
    await reply.head_only(200, 100 * 1024 * 1024)
    try:
        for _ in range(1600):
            await reply.raw(chunk)
    except ConnectionError:
        return


async def answer_100_mib_chunked(request: Received, reply: Reply) -> None:
    chunk = b"[" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    await reply.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    reply.keep_alive = False
    try:
        for _ in range(1600):
            await reply.raw(frame)
    except ConnectionError:
        return


BOMB = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)


async def gzip_bomb(request: Received, reply: Reply) -> None:
    await reply.send(200, BOMB, headers={"Content-Encoding": "gzip"})


async def redirect_to_metadata(request: Received, reply: Reply) -> None:
    await reply.send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})


async def too_many_requests(request: Received, reply: Reply) -> None:
    await reply.send(429, headers={"Retry-After": "1"})


def cycle(*statuses: int) -> Callable[[Received, Reply], Awaitable[None]]:
    """Answer the statuses in turn, starting over after the last."""
    served = 0

    async def handler(request: Received, reply: Reply) -> None:
        nonlocal served
        status = statuses[served % len(statuses)]
        served += 1
        await reply.send(status, PRODUCTS if status == 200 else b"")

    return handler


@dataclass(frozen=True)
class Fault:
    name: str
    handler: Callable[[], Callable[[Received, Reply], Awaitable[None]]]
    detail: str | None
    requests: int  # requests the tenant sees for one call
    max_seconds: float


FAULTS = [
    Fault("hang before headers", lambda: hang_before_headers, "timeout", 1, TIMEOUT + 0.15),
    Fault("drip headers", lambda: drip_headers, "timeout", 1, TIMEOUT + 0.15),
    Fault("drip body", lambda: drip_body, "timeout", 1, TIMEOUT + 0.15),
    Fault("reset mid-body", lambda: reset_mid_body, "connect_error", 1, 0.2),
    Fault("close without response", lambda: close_without_response, "connect_error", 1, 0.2),
    Fault("garbage", lambda: garbage, "connect_error", 1, 0.2),
    Fault("100 MiB declared", lambda: answer_100_mib, "invalid_response", 1, 0.3),
    Fault("100 MiB chunked", lambda: answer_100_mib_chunked, "invalid_response", 1, 0.4),
    Fault("gzip bomb", lambda: gzip_bomb, "invalid_response", 1, 0.3),
    Fault("redirect to 169.254.169.254", lambda: redirect_to_metadata, "http_status", 1, 0.2),
    Fault("429 with Retry-After", lambda: too_many_requests, "http_status", 1, 0.2),
    Fault("503 then 200", lambda: cycle(503, 200), None, 2, 0.2),
    Fault("503 then 503", lambda: cycle(503), "http_status", 2, 0.2),
]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settings() -> DispatchSettings:
    """Loopback allowed; the breaker off (it has its own tests), so every call goes out."""
    return DispatchSettings.model_validate(
        {
            "allow_http": True,
            "allowed_networks": "127.0.0.0/8,::1/128",
            "circuit_failure_threshold": 0,
        }
    )


async def healthy_store(healthy: LoopbackServer, s: DispatchSettings) -> InMemoryConfigStore:
    store = InMemoryConfigStore(rules=s.config_rules())
    await store.save_config("healthy", products_url=healthy.url("/p"), cart_url=healthy.url("/c"))
    return store


async def normal_calls(d: Dispatcher, count: int) -> None:
    results = await asyncio.gather(
        *(d.check_products("healthy", skus=["a"], store_id="s") for _ in range(count))
    )
    assert [r.failure for r in results] == [None] * count


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_has_its_contract_outcome_and_leaves_nothing_behind(fault: Fault):
    """The fault ends as the contract says, in bounded time; then normal calls work, no leaks."""
    fake = FakeTime()
    async with serve(cycle(200)) as healthy:
        s = settings()
        store = InMemoryConfigStore(rules=s.config_rules())
        await store.save_config(
            "healthy", products_url=healthy.url("/p"), cart_url=healthy.url("/c")
        )
        async with Dispatcher(store, settings=s, sleep=fake.sleep) as d:
            await normal_calls(d, 4)
            fds, tasks = open_fds(), len(asyncio.all_tasks())
            bad = await LoopbackServer(fault.handler()).start()
            try:
                await d.store.save_config(
                    "faulty",
                    products_url=bad.url("/p"),
                    cart_url=bad.url("/c"),
                    timeout_seconds=TIMEOUT,
                )
                tracemalloc.start()
                for _ in range(3):
                    started = time.monotonic()
                    result = await d.check_products("faulty", skus=["a"], store_id="s")
                    elapsed = time.monotonic() - started
                    assert result.failure == fault.detail, fault.name
                    assert elapsed <= fault.max_seconds, (fault.name, elapsed)
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                assert peak < 10 * 1024 * 1024, (fault.name, peak)
                assert len(bad.received) == 3 * fault.requests
            finally:
                await bad.stop()
            await normal_calls(d, 4)
            assert open_fds() <= fds, fault.name
            assert len(asyncio.all_tasks()) <= tasks, fault.name


class FailingResolver(AbstractResolver):
    """A DNS server that knows no names."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_connection_refused_and_dns_failure_fail_fast_without_leaks():
    """Nobody listening, and a name DNS does not know: connect_error, at once, no leaks."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with serve(cycle(200)) as healthy:
        s = settings()
        store = InMemoryConfigStore(rules=s.config_rules())
        await store.save_config(
            "healthy", products_url=healthy.url("/p"), cart_url=healthy.url("/c")
        )
        refused = f"http://127.0.0.1:{closed_port}/p"
        await store.save_config("refused", products_url=refused, cart_url=refused)
        unknown = f"http://no-such-tenant.test:{healthy.port}/p"
        await store.save_config("unknown", products_url=unknown, cart_url=unknown)
        async with Dispatcher(store, settings=s, resolver=FailingResolver()) as d:
            await normal_calls(d, 4)
            fds, tasks = open_fds(), len(asyncio.all_tasks())
            for tenant in ("refused", "unknown") * 3:
                started = time.monotonic()
                result = await d.check_products(tenant, skus=["a"], store_id="s")
                assert result.failure == "connect_error", tenant
                assert time.monotonic() - started < 0.2
            await normal_calls(d, 4)
            assert open_fds() <= fds
            assert len(asyncio.all_tasks()) <= tasks
