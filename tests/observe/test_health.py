"""Health checks (issue 13): /healthz while the process serves, /readyz only when the store
answers within its bound, the schema is at this code's migration and the event worker runs
where it should; both without a key, in status words only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url, text

from tests.admin.support import KEY_1
from tests.support.stall_proxy import StallProxy
from vizochok_dispatch import Dispatcher, DispatchSettings, SqlConfigStore
from vizochok_dispatch.admin._operations import READY_TIMEOUT_SECONDS, check_readiness

from .support import observed

pytestmark = pytest.mark.loopback

READY = {"status": "ready", "store": "ok", "migrations": "ok", "event_worker": "ok"}
#: Every value /readyz may show: words, never an error, host, version or timing.
WORDS = {
    "ready",
    "not_ready",
    "ok",
    "unreachable",
    "behind",
    "unknown",
    "stopped",
    "external",
    "off",
}


async def test_healthz_answers_ok_without_a_key(tmp_path: Path):
    """/healthz: 200 {"status": "ok"}, no Authorization needed."""
    async with observed(tmp_path) as o:
        response = await o.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_on_a_migrated_store_with_the_worker_running(database_url: str):
    """/readyz: 200 and every check ok, on SQLite and PostgreSQL."""
    async with observed(Path(), database_url=database_url) as o:
        response = await o.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == READY


async def test_readyz_is_not_ready_when_the_schema_is_behind(database_url: str):
    """A database at an older migration than the code: 503, migrations behind."""
    async with observed(Path(), database_url=database_url) as o:
        store = o.dispatcher.store.inner
        assert isinstance(store, SqlConfigStore)
        async with store.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        response = await o.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {**READY, "status": "not_ready", "migrations": "behind"}


async def test_readyz_is_not_ready_when_the_event_worker_stopped(tmp_path: Path):
    """The embedded worker started with the dispatcher and then stopped: 503."""
    async with observed(tmp_path) as o:
        await o.dispatcher.events.worker.stop()
        response = await o.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {**READY, "status": "not_ready", "event_worker": "stopped"}


async def test_readyz_says_off_where_no_worker_should_run(tmp_path: Path):
    """VIZOCHOK_EVENT_WORKER=off: the worker is off, and the instance ready."""
    async with observed(tmp_path, event_worker="off") as o:
        response = await o.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {**READY, "event_worker": "off"}


async def test_an_unreachable_store_is_not_ready():
    """Nothing listens where the database should be: not ready, store unreachable."""
    settings = DispatchSettings(
        database_url="postgresql+asyncpg://postgres:pw-canary-31@127.0.0.1:1/nothing",
        database_connect_timeout_seconds=1,
        secret_keys=SecretStr(KEY_1),
        event_worker="off",
    )
    dispatcher = Dispatcher.from_settings(settings)
    try:
        readiness = await check_readiness(dispatcher)
    finally:
        await dispatcher.aclose()
    shown = readiness.model_dump()
    assert shown == {
        "status": "not_ready",
        "store": "unreachable",
        "migrations": "unknown",
        "event_worker": "off",
    }
    assert set(shown.values()) <= WORDS


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[StallProxy]:
    target = make_url(postgres_url)
    with StallProxy(target.host or "127.0.0.1", target.port or 5432, lifetime_seconds=60) as p:
        yield p


async def test_a_hung_store_is_not_ready_within_the_bound(postgres_url: str, proxy: StallProxy):
    """PostgreSQL hung (a proxy holds every byte): /readyz is 503 within its bound."""
    hung = (
        make_url(postgres_url)
        .set(host="127.0.0.1", port=proxy.port)
        .render_as_string(hide_password=False)
    )
    async with observed(Path(), database_url=hung, event_worker="off") as o:
        assert (await o.client.get("/readyz")).status_code == 200
        proxy.stall()
        started = time.monotonic()
        async with asyncio.timeout(30):  # the ASGI transport has no timeout of its own
            response = await o.client.get("/readyz")
        took = time.monotonic() - started
        proxy.close()  # releases held connections before the engine is disposed
    assert response.status_code == 503
    assert response.json()["store"] == "unreachable"
    assert took < READY_TIMEOUT_SECONDS + 3
