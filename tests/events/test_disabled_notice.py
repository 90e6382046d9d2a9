"""The optional ``endpoint.disabled`` platform event (issue 12, auto-disable): with
``VIZOCHOK_EVENT_DISABLED_NOTICE`` on, a disabled endpoint is announced to the tenant's other
subscribed endpoints, never to itself; off (the default), nothing is published; the operator
hook runs either way; on SQLite and PostgreSQL, against a real loopback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import EndpointDisabled

from .support import TENANT, MakeDispatcher, example, make, settled, wait_for

__all__ = ["make"]

pytestmark = pytest.mark.loopback


async def _answer(request: Received, reply: Reply) -> None:
    await reply.send(410 if request.path == "/gone" else 200)


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    async with serve(_answer) as running:
        yield running


async def _run(make: MakeDispatcher, server: LoopbackServer, *, notice: bool) -> list[str]:
    """An order.created to an endpoint that answers 410 and is disabled (the operator hook
    called once): ``"<path> <event type>"`` of each request the receiver got, in order."""
    hooked: list[EndpointDisabled] = []
    d = await make(
        event_disabled_notice=notice,
        event_retry_schedule="none",
        on_event_endpoint_disabled=hooked.append,
    )
    gone = await d.events.create_endpoint(TENANT, url=server.url("/gone"), event_types=["*"])
    await d.events.create_endpoint(
        TENANT, url=server.url("/watch"), event_types=["endpoint.disabled"]
    )
    await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(hooked) == 1)
    expected = {"failed", "delivered"} if notice else {"failed"}
    await settled(d, expected)
    assert hooked[0].endpoint_id == gone.id and hooked[0].cause == "gone"
    return [f"{r.path} {r.json()['event']}" for r in server.received]  # type: ignore[index]


async def test_a_disabled_endpoint_is_announced_to_the_others(
    make: MakeDispatcher, server: LoopbackServer
):
    """Notice on: the watcher gets endpoint.disabled naming the endpoint; the disabled one not."""
    seen = await _run(make, server, notice=True)
    assert seen == ["/gone order.created", "/watch endpoint.disabled"]
    body = server.received[1].json()
    assert isinstance(body, dict)
    assert body["data"]["cause"] == "gone"
    assert body["data"]["url"] == server.url("/gone")


async def test_no_platform_event_by_default(make: MakeDispatcher, server: LoopbackServer):
    """Notice off (the default): the hook runs, nothing is published."""
    seen = await _run(make, server, notice=False)
    assert seen == ["/gone order.created"]
