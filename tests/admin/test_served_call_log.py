"""The served admin app (``vizochok-dispatch serve``) writes the call log while it serves:
its lifespan starts the call log's writer as ``async with Dispatcher`` does (issue 13)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.events.support import settings_for
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.admin._deps import AdminContext

from .support import CALLS, WEBHOOKS, bearer, shop_config

pytestmark = pytest.mark.loopback


async def _broken(request: Received, reply: Reply) -> None:
    await reply.send(500, b"")


async def test_served_app_writes_failed_calls_while_it_serves(database_url: str) -> None:
    """serve: a failed call appears in GET /webhooks/calls while the app runs, not at shutdown."""
    # A batch of one wakes the writer at once: no flush interval to wait for.
    app = create_admin_app(settings_for(database_url, call_log_batch_size=1))
    async with serve(_broken) as shop, app.router.lifespan_context(app):
        context: AdminContext = app.state.admin
        _, issued = await context.tenants.create_tenant("Shop A", tenant_id="shop-a")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client:
            saved = await client.patch(
                WEBHOOKS, headers=bearer(issued.key), json=shop_config(shop.url(""))
            )
            assert saved.status_code == 200, saved.text
            _, delivery = await context.dispatcher.check_products_with_delivery(
                "shop-a", skus=["milk-001"], store_id="s1"
            )
            assert delivery is not None
            seen: list[str] = []
            async with asyncio.timeout(10):  # bounded: the writer has the entry at once
                while not seen:
                    page = await client.get(CALLS, headers=bearer(issued.key))
                    seen = [call["delivery_id"] for call in page.json()["calls"]]
                    await asyncio.sleep(0.02)
        assert seen == [delivery.delivery_id]
