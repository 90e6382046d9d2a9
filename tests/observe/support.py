"""A loopback tenant with one path per failure, and a dispatcher and admin app around it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI

from tests.admin.support import LOOPBACK_NETWORKS, admin_settings_for
from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.observe import Metrics, Tracing

SECRET = "whsec_observe_canary_secret_never_in_telemetry_01"
#: A query value no metric label or span attribute may carry.
QUERY_CANARY = "query-canary-7f3a9c"
OK = {"products": [{"sku": "a", "price": 1, "in_stock": True}]}


async def tenant(request: Received, reply: Reply) -> None:
    """``/ok`` answers, ``/down`` is a 500, ``/garbage`` is a 200 that is not JSON."""
    if request.path == "/ok":
        await reply.json(OK)
    elif request.path == "/down":
        await reply.send(500, b'{"error":"down"}')
    else:
        await reply.send(200, b"not json")


@dataclass
class Observed:
    """A dispatcher on SQLite calling the loopback tenant, and its admin app."""

    server: LoopbackServer
    dispatcher: Dispatcher
    app: FastAPI
    client: httpx.AsyncClient
    time: FakeTime

    async def configure(self, tenant_id: str, url: str) -> None:
        await self.dispatcher.store.save_config(
            tenant_id, products_url=url, cart_url=url, secret=SECRET, timeout_seconds=5.0
        )

    async def products(self, tenant_id: str) -> str | None:
        result = await self.dispatcher.check_products(tenant_id, skus=["a"], store_id="s")
        return result.failure


@contextlib.asynccontextmanager
async def observed(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    own_metrics: Metrics | None = None,
    own_tracing: Tracing | None = None,
    **settings: object,
) -> AsyncIterator[Observed]:
    """The tenant on 127.0.0.1, a dispatcher (fake sleep: a retry waits no real second) and
    the admin app, all stopped at the end."""
    options = admin_settings_for(
        database_url or f"sqlite+aiosqlite:///{tmp_path / 'observe.db'}",
        allow_http=True,
        allowed_networks=LOOPBACK_NETWORKS,
        **settings,
    )
    fake = FakeTime()
    async with serve(tenant) as server:
        dispatcher = Dispatcher.from_settings(
            options, sleep=fake.sleep, metrics=own_metrics, tracing=own_tracing
        )
        app = create_admin_app(options, dispatcher=dispatcher)
        async with (
            dispatcher,
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
            ) as client,
        ):
            yield Observed(server, dispatcher, app, client, fake)
