"""Recover and retry with ``VIZOCHOK_EVENT_WORKER=procrastinate`` defer their jobs at once
(recover: one batch insert per 500 re-queued; retry: the next attempt's job at its time),
instead of leaving the deliveries to the 5-second sweep; on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher
from vizochok_dispatch.events._procrastinate import DELIVER_TASK, SCHEMA

from .support import TENANT, example, settings_for
from .test_recovery_load import _failed_backlog

pytestmark = [pytest.mark.postgres, pytest.mark.loopback]

RECOVERED = 1_200  # three batches of 500, 500 and 200


async def _refuse(_request: Received, reply: Reply) -> None:
    await reply.send(500)


@pytest.fixture
async def refusing() -> AsyncIterator[LoopbackServer]:
    async with serve(_refuse) as server:
        yield server


async def _scheduled(d: Dispatcher) -> list[tuple[str, datetime | None]]:
    """Every waiting ``deliver`` job as (delivery id, scheduled time), unscheduled first."""
    async with d.store.inner.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = await conn.execute(
            text(
                f"SELECT args->>'delivery_id', scheduled_at FROM {SCHEMA}.procrastinate_jobs "  # noqa: S608 - constants
                "WHERE task_name = :task AND status = 'todo' ORDER BY scheduled_at NULLS FIRST"
            ),
            {"task": DELIVER_TASK},
        )
        return [(str(delivery_id), at) for delivery_id, at in rows]


async def test_recover_defers_a_job_per_recovered_delivery_at_once(
    postgres_url: str, refusing: LoopbackServer
):
    """procrastinate recover: every re-queued delivery has its deliver job when recover returns."""
    settings = settings_for(postgres_url, event_worker="procrastinate")
    async with Dispatcher.from_settings(settings) as d:
        endpoint = await d.events.create_endpoint(
            TENANT, url=refusing.url("/hook"), event_types=["order.*"]
        )
        await _failed_backlog(d, TENANT, endpoint.id, RECOVERED)
        assert await _scheduled(d) == []
        report = await d.events.recover(
            TENANT, endpoint.id, since=datetime.now(UTC) - timedelta(hours=2)
        )
        assert not isinstance(report, str) and report is not None
        assert report.recovered == RECOVERED
        jobs = await _scheduled(d)
    expected = {f"dlv_{TENANT}_{index:06d}" for index in range(RECOVERED)}
    assert len(jobs) == RECOVERED and {delivery_id for delivery_id, _ in jobs} == expected


async def test_retry_defers_the_next_attempts_job_at_its_time(
    postgres_url: str, refusing: LoopbackServer
):
    """procrastinate retry: a failed manual attempt's next attempt has a job scheduled then."""
    settings = settings_for(
        postgres_url, event_worker="procrastinate", event_retry_schedule="30s,30s,30s"
    )
    async with Dispatcher.from_settings(settings) as d:
        await d.events.create_endpoint(TENANT, url=refusing.url("/hook"), event_types=["order.*"])
        published = await d.events.publish(TENANT, "order.created", data=example())
        (delivery,) = published.deliveries
        # the publish's own job (due now), taken by no worker here
        assert await _scheduled(d) == [(delivery.id, None)]
        after = await d.events.retry_delivery(TENANT, delivery.id)
        assert not isinstance(after, str) and after is not None
        assert after.status == "pending" and after.next_attempt_at is not None
        jobs = await _scheduled(d)
    assert jobs == [(delivery.id, None), (delivery.id, after.next_attempt_at)]
