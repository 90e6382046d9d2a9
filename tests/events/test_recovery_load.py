"""A recovery of 10,000 failed deliveries (issue 12, "Must hold"): it neither blocks the admin
API (another tenant's request is answered while it runs) nor starves other tenants' deliveries
(the worker takes theirs beside the recovered backlog), on SQLite and PostgreSQL, against a
real loopback receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select

from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import Dispatcher, TenantDirectory
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.events._tables import EventDeliveryRow, EventRow

from .support import MakeDispatcher, example, make

__all__ = ["make"]

pytestmark = pytest.mark.loopback

BACKLOG = 10_000


async def _answer(_request: Received, reply: Reply) -> None:
    await reply.send(200)


async def _failed_backlog(d: Dispatcher, tenant_id: str, endpoint_id: str, count: int) -> None:
    """``count`` failed deliveries of the last hour for one endpoint, written in bulk
    (``dlv_<tenant>_000000`` …)."""
    now = datetime.now(UTC)
    body = b'{"id": "evt_bulk", "event": "order.created", "timestamp": "", "data": {}}'
    events, deliveries = [], []
    for index in range(count):
        at = now - timedelta(seconds=3600 - index * 0.3)
        events.append(
            {
                "id": f"evt_{tenant_id}_{index:06d}",
                "tenant_id": tenant_id,
                "event_type": "order.created",
                "body": body,
                "created_at": at,
            }
        )
        deliveries.append(
            {
                "id": f"dlv_{tenant_id}_{index:06d}",
                "event_id": f"evt_{tenant_id}_{index:06d}",
                "endpoint_id": endpoint_id,
                "tenant_id": tenant_id,
                "event_type": "order.created",
                "status": "failed",
                "attempts": 1,
                "detail": "http_status",
                "test": False,
                "created_at": at,
                "updated_at": at,
            }
        )
    for start in range(0, count, 1000):  # each insert well within the statement timeout
        async with d.store.inner.engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(insert(EventRow), events[start : start + 1000])
            await conn.execute(insert(EventDeliveryRow), deliveries[start : start + 1000])


async def _count(d: Dispatcher, endpoint_id: str, status: str) -> int:
    async with d.store.inner.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(EventDeliveryRow)
                    .where(
                        EventDeliveryRow.endpoint_id == endpoint_id,
                        EventDeliveryRow.status == status,
                    )
                )
            ).scalar_one()
        )


@pytest.fixture
async def client_for(make: MakeDispatcher) -> AsyncIterator[tuple[Dispatcher, httpx.AsyncClient]]:
    d = await make(
        event_worker="off",
        event_retry_schedule="none",
        event_worker_concurrency=8,
        event_max_in_flight_per_endpoint=4,
    )
    app = create_admin_app(d.settings, dispatcher=d)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client,
    ):
        yield d, client


async def test_recovering_10000_deliveries_blocks_no_one(
    client_for: tuple[Dispatcher, httpx.AsyncClient],
) -> None:
    """Recovery at scale: another tenant's admin request is answered while 10,000 deliveries
    are re-queued, and its new delivery goes out beside the recovered backlog, not after it."""
    d, client = client_for
    store = d.store.inner
    directory = TenantDirectory.for_store(store)  # type: ignore[arg-type]
    _, key_1 = await directory.create_tenant("Shop 1", tenant_id="tenant-1")
    _, key_2 = await directory.create_tenant("Shop 2", tenant_id="tenant-2")
    async with serve(_answer) as server:
        a = await d.events.create_endpoint("tenant-1", url=server.url("/a"), event_types=["*"])
        b = await d.events.create_endpoint("tenant-2", url=server.url("/b"), event_types=["*"])
        await _failed_backlog(d, "tenant-1", a.id, BACKLOG)
        await _failed_backlog(d, "tenant-2", b.id, 1)  # one of tenant-2's, to retry meanwhile

        since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        recovery = asyncio.create_task(
            client.post(
                f"/api/v1/admin/event-endpoints/{a.id}/recover",
                headers={"Authorization": f"Bearer {key_1.key}"},
                json={"since": since},
            )
        )
        async with asyncio.timeout(30):
            while await _count(d, a.id, "pending") == 0:  # noqa: ASYNC110 - polls the database, bounded
                await asyncio.sleep(0.005)
        retried = await client.post(
            "/api/v1/admin/deliveries/dlv_tenant-2_000000/retry",
            headers={"Authorization": f"Bearer {key_2.key}"},
        )
        assert retried.status_code == 200 and retried.json()["status"] == "delivered"
        under_way = await _count(d, a.id, "pending")
        assert not recovery.done() and under_way < BACKLOG, (
            f"the other request was answered only after the recovery ({under_way} re-queued)"
        )

        answer = await recovery
        assert answer.status_code == 200, answer.text
        assert (answer.json()["recovered"], answer.json()["more"]) == (BACKLOG, False)
        assert await _count(d, a.id, "pending") == BACKLOG

        # tenant-2 publishes now: the worker takes its delivery beside the 10,000 due before it
        await d.events.publish(
            "tenant-2", "chat.session.created", data=example("chat.session.created")
        )
        d.events.worker.start()
        async with asyncio.timeout(30):
            while await _count(d, b.id, "delivered") < 2:  # noqa: ASYNC110 - polls the database, bounded
                await asyncio.sleep(0.005)
        done = await _count(d, a.id, "delivered")
        assert done < BACKLOG // 10, f"tenant-2 waited for {done} of tenant-1's deliveries"
        assert len([r for r in server.received if r.path == "/b"]) == 2
