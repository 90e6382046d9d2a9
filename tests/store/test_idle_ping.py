"""PostgreSQL pool connections: pinged on checkout after an idle spell, not on every checkout.

``tenants._sql_store._ping_when_idle``: a connection used within ``PING_IDLE_SECONDS`` goes
straight to work (the event worker's hot path); one idle longer is pinged first, and one that
died while idle is replaced without the caller seeing an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from vizochok_dispatch.tenants import _sql_store
from vizochok_dispatch.tenants._sql_store import PING_IDLE_SECONDS, create_engine_for


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(_sql_store, "_monotonic", fake)
    return fake


@pytest.fixture
async def engine(postgres_url: str, clock: _Clock) -> AsyncIterator[AsyncEngine]:
    del clock  # installed before the engine's first connection
    made = create_engine_for(postgres_url)
    try:
        yield made
    finally:
        await made.dispose()


def _count_pings(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    dialect = engine.sync_engine.dialect
    real = dialect.do_ping
    pings = [0]

    def counting(dbapi_connection: Any) -> bool:
        pings[0] += 1
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    return pings


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_used_within_the_idle_spell_is_not_pinged(
    engine: AsyncEngine, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle ping: a fresh connection and one checked in moments ago go to work unpinged."""
    pings = _count_pings(engine, monkeypatch)
    first = await _backend_pid(engine)
    clock.now += PING_IDLE_SECONDS / 2
    assert await _backend_pid(engine) == first
    assert pings == [0]
    clock.now += PING_IDLE_SECONDS
    assert await _backend_pid(engine) == first
    assert pings == [1], "idle for longer than PING_IDLE_SECONDS: pinged once"


async def test_a_connection_that_died_while_idle_is_replaced_unseen(
    engine: AsyncEngine, postgres_url: str, clock: _Clock
) -> None:
    """Idle ping: a pooled connection the server ended is found by the ping and replaced."""
    first = await _backend_pid(engine)
    killer = create_engine_for(postgres_url)
    try:
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    finally:
        await killer.dispose()
    clock.now += PING_IDLE_SECONDS * 2
    assert await _backend_pid(engine) != first
