"""What event attempts read of an answer, on both senders: a header, and the first bytes of the
body without waiting for the rest (loopback server and respx)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import AiohttpTransport
from vizochok_dispatch.http._wire import Sender, httpx_sender

pytestmark = pytest.mark.loopback

LOOPBACK = "127.0.0.0/8"
BODY = bytes(range(256)) * 40  # 10,240 bytes


async def _answer(request: Received, reply: Reply) -> None:
    if request.path == "/hang":
        # promises far more than it sends, then holds the connection
        await reply.head_only(503, 1_000_000, **{"Retry-After": "120"})
        await reply.raw(BODY[:5000])
        await asyncio.Event().wait()
    elif request.path == "/short":
        await reply.send(410, b"gone", headers={"Retry-After": "5"})
    else:
        await reply.send(200, BODY, headers={"X-Custom": "yes"})


@pytest.fixture(params=["aiohttp", "httpx"])
async def sender(request: pytest.FixtureRequest) -> AsyncIterator[Sender]:
    transport = AiohttpTransport(allowed_networks=LOOPBACK)
    try:
        yield (
            transport.send_wire if request.param == "aiohttp" else httpx_sender(transport=transport)
        )
    finally:
        await transport.aclose()


async def test_read_prefix_gives_the_first_bytes(sender: Sender) -> None:
    """read_prefix(n): the first n bytes of a longer body; headers read in any case."""
    async with serve(_answer) as server:
        response = await sender("POST", server.url("/long"), {}, b"{}")
        try:
            assert response.header("x-custom") == "yes"
            assert response.header("X-CUSTOM") == "yes"
            assert response.header("retry-after") is None
            assert await response.read_prefix(4096) == BODY[:4096]
        finally:
            await response.aclose()


async def test_read_prefix_of_a_short_body_is_all_of_it(sender: Sender) -> None:
    """read_prefix(n): a body shorter than n comes whole."""
    async with serve(_answer) as server:
        response = await sender("POST", server.url("/short"), {}, b"{}")
        try:
            assert response.status == 410
            assert response.header("Retry-After") == "5"
            assert await response.read_prefix(4096) == b"gone"
        finally:
            await response.aclose()


async def test_read_prefix_does_not_wait_for_the_rest(sender: Sender) -> None:
    """read_prefix(n): once n bytes are in, it returns, though the server holds the rest back."""
    async with serve(_answer) as server:
        response = await sender("POST", server.url("/hang"), {}, b"{}")
        try:
            assert response.header("retry-after") == "120"
            async with asyncio.timeout(5):
                assert await response.read_prefix(4096) == BODY[:4096]
        finally:
            await response.aclose()


async def test_read_prefix_through_respx() -> None:
    """read_prefix(n) and header() work on an httpx mock transport's pre-read body too."""
    router = respx.Router()
    router.post("https://tenant.example/hook").respond(
        429, content=BODY, headers={"Retry-After": "7"}
    )
    send = httpx_sender(transport=httpx.MockTransport(router.async_handler))
    response = await send("POST", "https://tenant.example/hook", {}, b"{}")
    try:
        assert response.status == 429
        assert response.header("retry-after") == "7"
        assert await response.read_prefix(100) == BODY[:100]
    finally:
        await response.aclose()
