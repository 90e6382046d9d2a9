"""The embedded worker: started with the dispatcher, woken by publish, polling for other
processes, per-endpoint caps and fairness, ordered endpoints, a clean stop, leases that run
out, and a process killed mid-attempt (a real subprocess), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, EventAttempt, SecretBox, StoreError
from vizochok_dispatch.events._delivery import new_token
from vizochok_dispatch.events._store import Claim, EventStore, Settlement
from vizochok_dispatch.events._tables import EventDeliveryRow
from vizochok_dispatch.tenants._sql_store import SqlConfigStore

from .support import KEYS, TENANT, MakeDispatcher, example, make, settings_for, settled, wait_for

__all__ = ["make"]

pytestmark = pytest.mark.loopback

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Gate:
    """A receiver that holds requests to paths under ``/hold`` until ``open``; counts overlap."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 200
    now: int = 0
    most: dict[str, int] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)  # replies in order, then ``status``

    async def __call__(self, request: Received, reply: Reply) -> None:
        path = request.path
        self.current[path] = self.current.get(path, 0) + 1
        self.most[path] = max(self.most.get(path, 0), self.current[path])
        try:
            if path.startswith("/hold"):
                await self.opened.wait()
            status = self.statuses.pop(0) if self.statuses else self.status
            await reply.send(status, b"")
        finally:
            self.current[path] -= 1


@pytest.fixture
async def gate() -> AsyncIterator[tuple[LoopbackServer, Gate]]:
    handler = Gate()
    async with serve(handler) as server:
        try:
            yield server, handler
        finally:
            handler.opened.set()


def _at(server: LoopbackServer, path: str) -> list[Received]:
    return [r for r in server.received if r.path == path]


async def _statuses(d: Dispatcher, tenant: str = TENANT) -> list[str]:
    return [dl.status for dl in await d.events.deliveries(tenant)]


# -- starting, waking, polling ------------------------------------------------------------------


async def test_the_embedded_worker_delivers_without_being_asked(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Embedded: started with the dispatcher, a publish is delivered with no drain call."""
    server, _ = gate
    d = await make()
    assert d.events.worker.running
    await d.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(server.received) == 1)
    assert server.received[0].headers["x-vizochok-delivery"] == ev.id
    await settled(d, {"delivered"})


async def test_a_publish_hands_its_deliveries_to_the_worker_by_id(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hand-off: what this process publishes is leased by id, not found by the due query."""
    server, _ = gate
    d = await make(event_poll_seconds=30)  # idle: only the publish wakes it
    store = d.events._store
    assert store is not None
    for path in ("/a", "/b", "/c"):
        await d.events.create_endpoint(TENANT, url=server.url(path), event_types=["order.*"])
    by_query: list[str] = []
    claim_due = store.claim_due

    async def spying(**options: Any) -> list[Claim]:
        claims = await claim_due(**options)
        by_query.extend(claim.delivery_id for claim in claims)
        return claims

    monkeypatch.setattr(store, "claim_due", spying)
    await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(server.received) == 3)
    assert by_query == []
    await settled(d, {"delivered"})


async def test_the_worker_off_delivers_nothing_until_drained(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """VIZOCHOK_EVENT_WORKER=off: no worker runs; drain delivers in the caller's task."""
    server, _ = gate
    d = await make(event_worker="off")
    assert not d.events.worker.running
    await d.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["order.*"])
    await d.events.publish(TENANT, "order.created", data=example())
    assert await _statuses(d) == ["pending"]
    assert (await d.events.drain(timeout=10)).pending == 0
    assert await _statuses(d) == ["delivered"]


async def test_what_another_process_publishes_is_found_by_polling(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Polling: a publish the worker is not told of (another dispatcher) is delivered too."""
    server, _ = gate
    worker = await make(event_poll_seconds=0.05)
    publisher = await make(event_worker="off")
    await publisher.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["*"])
    await publisher.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(server.received) == 1)
    assert worker.events.worker.running and not publisher.events.worker.running


async def test_the_worker_outlives_a_database_failure(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate], database_url: str
) -> None:
    """Embedded: a failing database is logged and tried again, backing off; delivery resumes."""
    server, _ = gate
    d = await make(event_poll_seconds=0.05)
    await d.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["*"])
    engine = create_async_engine(database_url)
    try:
        with capture_logs() as logs:
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE event_deliveries RENAME TO parked"))
            await wait_for(lambda: sum(e["event"] == "event_worker.store_error" for e in logs) >= 3)
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE parked RENAME TO event_deliveries"))
    finally:
        await engine.dispose()
    waits = [e["retry_in"] for e in logs if e["event"] == "event_worker.store_error"][:3]
    assert waits == [0.05, 0.1, 0.2], "the waits double"
    assert d.events.worker.running
    await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(server.received) == 1)
    await settled(d, {"delivered"})


# -- capacity, fairness and order ---------------------------------------------------------------


async def test_an_endpoint_has_at_most_its_cap_in_flight(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Per-endpoint cap: a held endpoint has only its cap of attempts open; others still go."""
    server, handler = gate
    d = await make(event_max_in_flight_per_endpoint=2)
    held = await d.events.create_endpoint(TENANT, url=server.url("/hold"), event_types=["order.*"])
    await d.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["chat.*"])
    for _ in range(6):
        await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(_at(server, "/hold")) == 2)
    await d.events.publish(TENANT, "chat.session.created", data=example("chat.session.created"))
    await wait_for(lambda: len(_at(server, "/fast")) == 1)
    assert len(_at(server, "/hold")) == 2, "no third attempt while two are held"
    assert d.events.worker.in_flight_for(held.id) == 2
    handler.opened.set()
    await wait_for(lambda: len(_at(server, "/hold")) == 6)
    assert handler.most["/hold"] == 2
    await settled(d, {"delivered"})


async def _deliver_one_by_one(d: Dispatcher, server: LoopbackServer, count: int) -> None:
    """Publish ``count`` chat events to B, each only once the one before arrived."""
    for _ in range(count):
        wanted = len(_at(server, "/fast")) + 1
        await d.events.publish(TENANT, "chat.session.created", data=example("chat.session.created"))
        await wait_for(lambda: len(_at(server, "/fast")) >= wanted)  # noqa: B023 - awaited here


async def test_a_hanging_endpoint_does_not_slow_another(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Fairness: while endpoint A hangs with a backlog, B's events are delivered one after
    another, every one of them before any of A's held attempts ends."""
    server, handler = gate
    # Without the cap A would take all 8 slots; without leaving A out of the claim, its
    # backlog (due first) would fill every claim's candidates and B would wait behind it,
    # i.e. until A's attempts end (its 30 s timeout, or the gate): what is checked, no clock.
    d = await make(event_max_in_flight_per_endpoint=4, event_worker_concurrency=8)
    held = await d.events.create_endpoint(
        TENANT, url=server.url("/hold"), event_types=["order.*"], timeout_seconds=30
    )
    await d.events.create_endpoint(TENANT, url=server.url("/fast"), event_types=["chat.*"])
    for _ in range(40):
        await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(lambda: len(_at(server, "/hold")) == 4)
    await _deliver_one_by_one(d, server, 9)
    assert (len(_at(server, "/hold")), handler.current["/hold"]) == (4, 4), "A still held"
    assert len(_at(server, "/fast")) == 9
    of_a = [dl for dl in await d.events.deliveries(TENANT) if dl.endpoint_id == held.id]
    assert [dl.status for dl in of_a] == ["pending"] * 40, "A's attempts all still held"


async def test_an_ordered_endpoint_gets_publish_order_one_at_a_time(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Ordered: one attempt at a time, in publish order; a retry holds the ones behind it."""
    server, handler = gate
    handler.statuses = [500]  # the first event's first attempt fails
    d = await make(event_retry_schedule="50ms", event_max_in_flight_per_endpoint=8)
    await d.events.create_endpoint(
        TENANT, url=server.url("/fast"), event_types=["order.*"], ordered=True
    )
    published = [await d.events.publish(TENANT, "order.created", data=example()) for _ in range(6)]
    await wait_for(lambda: len(server.received) == 7)
    arrived = [r.headers["x-vizochok-delivery"] for r in server.received]
    ids = [ev.id for ev in published]
    assert arrived == [ids[0], *ids]
    assert [r.headers["x-vizochok-attempt"] for r in server.received[:2]] == ["1", "2"]
    assert handler.most["/fast"] == 1
    await settled(d, {"delivered"})


async def test_other_endpoints_stay_parallel_beside_an_ordered_one(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Ordered: only its own deliveries wait in line; an unordered endpoint takes several."""
    server, handler = gate
    d = await make(event_max_in_flight_per_endpoint=3)
    await d.events.create_endpoint(TENANT, url=server.url("/hold"), event_types=["order.*"])
    await d.events.create_endpoint(
        TENANT, url=server.url("/hold-ordered"), event_types=["order.*"], ordered=True
    )
    for _ in range(4):
        await d.events.publish(TENANT, "order.created", data=example())
    await wait_for(
        lambda: len(_at(server, "/hold")) == 3 and len(_at(server, "/hold-ordered")) == 1
    )
    handler.opened.set()
    await wait_for(
        lambda: len(_at(server, "/hold")) == 4 and len(_at(server, "/hold-ordered")) == 4
    )
    assert handler.most == {"/hold": 3, "/hold-ordered": 1}


# -- stopping and crashing ----------------------------------------------------------------------


async def _delivery_row(url: str) -> dict[str, object]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(select(EventDeliveryRow.__table__))).one()
            return dict(row._mapping)
    finally:
        await engine.dispose()


async def test_closing_cuts_attempts_short_and_gives_their_leases_back(
    database_url: str, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Stop: close returns at once mid-attempt; the delivery is due again, sent on next start."""
    server, handler = gate
    settings = settings_for(database_url)
    async with Dispatcher.from_settings(settings) as first:
        await first.events.create_endpoint(TENANT, url=server.url("/hold"), event_types=["*"])
        ev = await first.events.publish(TENANT, "order.created", data=example())
        await wait_for(lambda: len(server.received) == 1)
        started = time.monotonic()
    assert time.monotonic() - started < 2, "close did not wait for the 15 s attempt"
    row = await _delivery_row(database_url)
    assert (row["status"], row["claimed_until"], row["claim_token"], row["attempts"]) == (
        "pending",
        None,
        None,
        0,
    )
    handler.opened.set()
    async with Dispatcher.from_settings(settings) as second:
        await wait_for(lambda: len(server.received) == 2)
        await settled(second, {"delivered"})
    again = server.received[1]
    assert again.headers["x-vizochok-delivery"] == ev.id
    assert again.headers["x-vizochok-attempt"] == "1"
    assert again.body == server.received[0].body


async def test_a_lease_that_runs_out_is_claimed_again(
    make: MakeDispatcher, gate: tuple[LoopbackServer, Gate], database_url: str
) -> None:
    """Lease: a delivery held by a worker that vanished is due again once its lease runs out."""
    server, _ = gate
    fake = FakeTime(now=time.time())
    d = await make(event_worker="off", clock=fake.clock, sleep=fake.sleep)
    await d.events.create_endpoint(
        TENANT, url=server.url("/fast"), event_types=["*"], timeout_seconds=2
    )
    ev = await d.events.publish(TENANT, "order.created", data=example())
    # another worker claims it and is never heard of again
    box = None if database_url.startswith("sqlite") else SecretBox.from_keyring(KEYS)
    other = EventStore(SqlConfigStore(database_url, auto_migrate=False, secret_box=box))
    try:
        claims = await other.claim_due(
            now=datetime.fromtimestamp(fake.now, UTC),
            limit=10,
            busy={},
            per_endpoint=4,
            token=new_token(),
        )
    finally:
        await other.close()
        await other._config.close()
    assert [c.event_id for c in claims] == [ev.id]
    started = fake.now
    report = await d.events.drain(timeout=60)
    assert report.pending == 0
    assert fake.now - started == pytest.approx(2 + 5, abs=0.1), "waited for the lease only"
    (dl,) = await d.events.deliveries(TENANT)
    assert dl.status == "delivered" and [a.number for a in dl.attempts] == [1]
    assert len(server.received) == 1


@pytest.fixture
async def other_store(database_url: str) -> AsyncIterator[EventStore]:
    """A second event store on the test's database (another worker's view of it)."""
    box = None if database_url.startswith("sqlite") else SecretBox.from_keyring(KEYS)
    store = EventStore(SqlConfigStore(database_url, auto_migrate=False, secret_box=box))
    try:
        yield store
    finally:
        await store.close()
        await store._config.close()


async def _claimed(d: Dispatcher, store: EventStore, count: int) -> list[Claim]:
    await d.events.create_endpoint(TENANT, url="https://shop.example/hooks", event_types=["*"])
    for _ in range(count):
        await d.events.publish(TENANT, "order.created", data=example())
    claims = await store.claim_due(
        now=datetime.now(UTC), limit=count, busy={}, per_endpoint=count, token=new_token()
    )
    assert len(claims) == count
    return claims


def _delivered(claim: Claim) -> Settlement:
    attempt = EventAttempt(claim.attempt, 200, 1.0, None, datetime.now(UTC))
    return Settlement("delivered", None, None, attempt)


async def test_settlements_that_come_together_commit_together(
    make: MakeDispatcher, other_store: EventStore
) -> None:
    """Settling: settlements at once share a commit; each caller gets its own outcome."""
    d = await make(event_worker="off")
    claims = await _claimed(d, other_store, 20)
    lost = replace(claims[7], token=new_token())  # its lease went to another worker
    claims[7] = lost
    await other_store.open()
    commits: list[object] = []
    engine = other_store._engine.sync_engine
    count = commits.append  # one bound method: event.remove needs the same object
    event.listen(engine, "commit", count)
    try:
        now = datetime.now(UTC)
        recorded = await asyncio.gather(
            *(other_store.settle(c, _delivered(c), now=now) for c in claims)
        )
    finally:
        event.remove(engine, "commit", count)
    assert [s.recorded for s in recorded] == [c is not lost for c in claims]
    assert len(commits) <= 2, "20 settlements at once took a commit each"
    by_id = {dl.id: dl for dl in await d.events.deliveries(TENANT)}
    assert by_id[lost.delivery_id].status == "pending" and not by_id[lost.delivery_id].attempts
    others = [by_id[c.delivery_id] for c in claims if c is not lost]
    assert {dl.status for dl in others} == {"delivered"}
    assert all([a.number for a in dl.attempts] == [1] for dl in others)


async def test_a_failed_group_commit_fails_each_settlement_in_it(
    make: MakeDispatcher, other_store: EventStore, database_url: str
) -> None:
    """Settling: when the shared transaction fails, every caller in it gets the error."""
    d = await make(event_worker="off")
    claims = await _claimed(d, other_store, 5)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE event_attempts RENAME TO parked"))
        now = datetime.now(UTC)
        outcomes = await asyncio.gather(
            *(other_store.settle(c, _delivered(c), now=now) for c in claims),
            return_exceptions=True,
        )
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE parked RENAME TO event_attempts"))
    finally:
        await engine.dispose()
    assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
    assert {dl.status for dl in await d.events.deliveries(TENANT)} == {"pending"}


CRASHING_WORKER = """
import asyncio, sys
from vizochok_dispatch import Dispatcher, EventAttempt, SecretBox, StoreError
from vizochok_dispatch.events._catalog import EVENT_TYPES

async def main(url, hook):
    async with Dispatcher.from_database_url(
        url, allow_http=True, allowed_networks="127.0.0.0/8", auto_migrate=True
    ) as d:
        await d.events.create_endpoint(
            "tenant-1", url=hook, event_types=["order.*"], timeout_seconds=1
        )
        await d.events.publish(
            "tenant-1", "order.created", data=EVENT_TYPES["order.created"].example
        )
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_worker_killed_mid_attempt_loses_nothing(
    database_url: str, gate: tuple[LoopbackServer, Gate]
) -> None:
    """Crash: SIGKILL while the receiver holds the attempt; a new process delivers it, same ids."""
    server, handler = gate
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    env.pop("VIZOCHOK_DATABASE_URL", None)
    env.pop("VIZOCHOK_SECRET_KEYS", None)
    if not database_url.startswith("sqlite"):
        env["VIZOCHOK_SECRET_KEYS"] = KEYS
    # A plain Popen, waited for in a thread: its own waitpid is the only one.  With
    # asyncio.create_subprocess_exec, 3.11's child-watcher thread and Popen.poll() (from the
    # transport's kill/close) both reap the child, and the loser reads returncode 255
    # ("Unknown child process pid").
    process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own script; waited for in a thread
        [sys.executable, "-c", CRASHING_WORKER, database_url, server.url("/hold")],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_for(lambda: len(server.received) == 1, seconds=30)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()  # no-op once it is dead (Popen knows; nothing else reaps it)
        await asyncio.to_thread(process.wait, 10)
    assert process.returncode == -signal.SIGKILL
    row = await _delivery_row(database_url)
    assert row["status"] == "pending" and row["claim_token"] is not None, "killed holding the lease"
    handler.opened.set()
    async with Dispatcher.from_settings(settings_for(database_url)) as after:
        await wait_for(lambda: len(server.received) == 2, seconds=20)
        await settled(after, {"delivered"})
        (dl,) = await after.events.deliveries(TENANT)
    first, second = server.received
    assert dl.id == row["id"]
    assert (
        second.headers["x-vizochok-delivery"] == first.headers["x-vizochok-delivery"] == dl.event_id
    )
    assert second.headers["x-vizochok-attempt"] == first.headers["x-vizochok-attempt"] == "1"
    assert second.body == first.body
    assert [a.number for a in dl.attempts] == [1]
