"""The served admin app (``vizochok-dispatch serve``) and event delivery: with the embedded
worker (the default) it delivers what other processes publish and stops it on shutdown; with
procrastinate it only publishes and /readyz says workers elsewhere deliver."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.events.support import TENANT, example, settings_for, wait_for
from tests.support.loopback import Received, Reply, serve
from vizochok_dispatch import Dispatcher
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.admin._deps import AdminContext

pytestmark = pytest.mark.loopback


async def _ok(request: Received, reply: Reply) -> None:
    await reply.send(200, b"")


def _served(app: FastAPI) -> Dispatcher:
    context: AdminContext = app.state.admin
    return context.dispatcher


async def test_served_app_delivers_events_another_process_publishes(database_url: str):
    """serve on the embedded default runs the worker: a CLI-style publish gets delivered."""
    settings = settings_for(database_url)
    app = create_admin_app(settings)
    async with serve(_ok) as server, app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client:
            ready = await client.get("/readyz")
        assert ready.json()["event_worker"] == "ok"
        # What `vizochok-dispatch events publish` does: a dispatcher that delivers nothing.
        quiet = settings.model_copy(update={"event_worker": "off"})
        async with Dispatcher.from_settings(quiet) as publisher:
            await publisher.events.create_endpoint(
                TENANT, url=server.url("/hooks"), event_types=["order.*"]
            )
            published = await publisher.events.publish(TENANT, "order.created", data=example())
        await wait_for(lambda: len(server.received) == 1)
        worker = _served(app).events.worker
        assert worker.running
    assert server.received[0].json()["id"] == published.id  # type: ignore[index]
    assert not worker.running  # shutdown stopped it


async def test_served_app_with_the_worker_off_delivers_nothing(sqlite_url: str):
    """VIZOCHOK_EVENT_WORKER=off: the served app runs no worker and /readyz says off."""
    app = create_admin_app(settings_for(sqlite_url, event_worker="off"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client:
            ready = await client.get("/readyz")
        assert not _served(app).events.worker.running
    assert ready.status_code == 200
    assert ready.json()["event_worker"] == "off"


@pytest.mark.postgres
async def test_served_app_on_procrastinate_only_publishes(postgres_url: str):
    """VIZOCHOK_EVENT_WORKER=procrastinate: no worker in the app; /readyz says external."""
    app = create_admin_app(settings_for(postgres_url, event_worker="procrastinate"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client:
            ready = await client.get("/readyz")
        events = _served(app).events
        assert events.queue_open
        assert not events.worker.running
    assert ready.status_code == 200
    assert ready.json()["event_worker"] == "external"
