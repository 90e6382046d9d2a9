"""The admin API under test: a real app, a real database (SQLite and PostgreSQL), fake time.

``admin`` runs the app's lifespan and talks to it through httpx's ASGI transport; its
dispatcher sends webhook requests to a respx router (``router``), sleeps on fake time, and
the save-time DNS check asks ``resolver`` (no real DNS in tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from tests.support.fakes import FakeTime
from vizochok_dispatch import Dispatcher, DispatchSettings, SqlConfigStore
from vizochok_dispatch.admin import create_admin_app

from .support import Admin, FakeResolver, admin_settings_for


@pytest.fixture
def admin_settings(database_url: str) -> DispatchSettings:
    return admin_settings_for(database_url)


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest.fixture
async def admin(
    admin_settings: DispatchSettings,
    router: respx.Router,
    fake_time: FakeTime,
    resolver: FakeResolver,
) -> AsyncIterator[Admin]:
    dispatcher = Dispatcher.from_settings(
        admin_settings,
        transport=httpx.MockTransport(router.async_handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    app = create_admin_app(
        admin_settings, dispatcher=dispatcher, clock=fake_time.monotonic, resolve=resolver
    )
    async with (
        dispatcher,
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://admin.test"
        ) as client,
    ):
        store = dispatcher.store.inner
        assert isinstance(store, SqlConfigStore)
        yield Admin(
            app=app,
            client=client,
            dispatcher=dispatcher,
            tenants=app.state.admin.tenants,
            store=store,
            time=fake_time,
            resolver=resolver,
        )
