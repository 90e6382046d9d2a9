"""The event webhook tables and migration 0003, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from vizochok_dispatch.events._tables import EventDeliveryRow, EventEndpointRow, EventRow
from vizochok_dispatch.tenants._migrations import current_revision, downgrade, upgrade

EVENT_TABLES = {"event_endpoints", "events", "event_deliveries", "event_attempts"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    created = create_async_engine(database_url)
    try:
        yield created
    finally:
        await created.dispose()


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _event(engine: AsyncEngine, event_id: str, tenant: str, key: str | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(EventRow).values(
                id=event_id,
                tenant_id=tenant,
                event_type="order.created",
                body=b"{}",
                idempotency_key=key,
                created_at=datetime.now(UTC),
            )
        )


async def test_migration_0003_adds_and_removes_the_event_tables(engine: AsyncEngine) -> None:
    """Migration 0003: head has the four event tables; down to 0002 removes only them."""
    await upgrade(engine)
    assert await _tables(engine) >= EVENT_TABLES
    await downgrade(engine, "0002")
    assert await current_revision(engine) == "0002"
    tables = await _tables(engine)
    assert not EVENT_TABLES & tables
    assert {"webhook_configs", "tenants", "api_keys"} <= tables
    await upgrade(engine)
    assert await _tables(engine) >= EVENT_TABLES


async def test_times_come_back_as_the_same_instant_in_utc(engine: AsyncEngine) -> None:
    """Tables: an aware time is stored as UTC and read back aware, the same instant."""
    await upgrade(engine)
    given = datetime(2026, 11, 30, 17, 0, 0, 123000, tzinfo=timezone(timedelta(hours=2)))
    async with engine.begin() as conn:
        await conn.execute(
            insert(EventEndpointRow).values(
                id="ep_1",
                tenant_id="t1",
                url="https://shop.example/hooks",
                event_types=["order.*"],
                signature_scheme="vizochok",
                secret="s",
                timeout_seconds=15.0,
                ordered=False,
                enabled=False,
                disabled_at=given,
                last_sequence=0,
                created_at=given,
                updated_at=given,
            )
        )
    async with engine.connect() as conn:
        row = (await conn.execute(select(EventEndpointRow.__table__))).one()._mapping
    assert row["disabled_at"] == given
    assert row["disabled_at"].utcoffset() == timedelta(0)
    assert row["event_types"] == ["order.*"]


async def test_a_time_without_a_zone_is_refused(engine: AsyncEngine) -> None:
    """Tables: a naive datetime never reaches the database (its zone would be a guess)."""
    await upgrade(engine)
    with pytest.raises(StatementError, match="timezone-aware"):
        async with engine.begin() as conn:
            await conn.execute(
                insert(EventRow).values(
                    id="evt_1",
                    tenant_id="t1",
                    event_type="order.created",
                    body=b"{}",
                    created_at=datetime(2026, 11, 30, 12, 0),
                )
            )


async def test_an_idempotency_key_is_unique_per_tenant(engine: AsyncEngine) -> None:
    """Tables: a key names one event per tenant; other tenants and keyless events are free."""
    await upgrade(engine)
    await _event(engine, "evt_1", "t1", "order-1")
    await _event(engine, "evt_2", "t2", "order-1")
    await _event(engine, "evt_3", "t1", None)
    await _event(engine, "evt_4", "t1", None)
    with pytest.raises(IntegrityError):
        await _event(engine, "evt_5", "t1", "order-1")


@pytest.mark.postgres
async def test_deleting_an_event_deletes_its_deliveries(postgres_url: str) -> None:
    """Tables: deliveries belong to their event (ON DELETE CASCADE; PostgreSQL enforces it)."""
    engine = create_async_engine(postgres_url)
    try:
        await _delete_cascades(engine)
    finally:
        await engine.dispose()


async def _delete_cascades(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await _event(engine, "evt_1", "t1", None)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(EventEndpointRow).values(
                id="ep_1",
                tenant_id="t1",
                url="https://shop.example/hooks",
                event_types=["*"],
                signature_scheme="vizochok",
                secret="s",
                timeout_seconds=15.0,
                ordered=False,
                enabled=True,
                last_sequence=0,
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            insert(EventDeliveryRow).values(
                id="dlv_1",
                event_id="evt_1",
                endpoint_id="ep_1",
                tenant_id="t1",
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(delete(EventRow))
    async with engine.connect() as conn:
        assert (await conn.execute(select(EventDeliveryRow.id))).all() == []
