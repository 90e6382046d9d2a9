"""The procrastinate worker (``VIZOCHOK_EVENT_WORKER=procrastinate``, ``vizochok-dispatch
worker``): real worker processes on PostgreSQL deliver 2,000 events none lost and none twice
with the per-endpoint cap held across them, a worker SIGKILLed mid-attempt loses nothing, an
ordered endpoint keeps publish order across processes, a lost job is found by the sweep; on
SQLite it refuses, and the CLI's errors are one line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, EventDelivery, InvalidConfig
from vizochok_dispatch._cli import main
from vizochok_dispatch.events._procrastinate import (
    _LAST_RETURNED,
    DELIVER_TASK,
    SCHEMA,
    _check_when_idle,
    _returned,
    slot_lock,
)
from vizochok_dispatch.tenants._sql_store import PING_IDLE_SECONDS

from .support import KEYS, LOOPBACK_NETWORKS, example, settings_for, wait_for

pytestmark = pytest.mark.loopback

REPO = Path(__file__).resolve().parents[2]
#: The worker command, run from this checkout (what ``vizochok-dispatch worker`` runs).
WORKER = (
    "import sys; from vizochok_dispatch._cli import main; sys.argv[0] = 'vizochok-dispatch'; main()"
)


@dataclass
class Receiver:
    """Answers 200 (paths under ``/hold`` wait for ``opened``); counts requests in flight."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    now: Counter[str] = field(default_factory=Counter)
    most: Counter[str] = field(default_factory=Counter)

    async def __call__(self, request: Received, reply: Reply) -> None:
        path = request.path
        self.now[path] += 1
        self.most[path] = max(self.most[path], self.now[path])
        try:
            # a moment on the wire, so attempts of one endpoint overlap when the cap allows
            await asyncio.sleep(0.002)
            if path.startswith("/hold"):
                await self.opened.wait()
            await reply.send(200, b"")
        finally:
            self.now[path] -= 1


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[LoopbackServer, Receiver]]:
    handler = Receiver()
    async with serve(handler) as server:
        try:
            yield server, handler
        finally:
            handler.opened.set()


def _env(url: str, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VIZOCHOK_") or key == "VIZOCHOK_TEST_POSTGRES_URL"
    }
    env.update(
        {
            "PYTHONWARNINGS": "error",
            "VIZOCHOK_DATABASE_URL": url,
            "VIZOCHOK_SECRET_KEYS": KEYS,
            "VIZOCHOK_ALLOW_HTTP": "true",
            "VIZOCHOK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
            "VIZOCHOK_EVENT_POLL_SECONDS": "0.2",
            "VIZOCHOK_EVENT_WORKER_STALLED_SECONDS": "2",
            **{f"VIZOCHOK_{name.upper()}": value for name, value in settings.items()},
        }
    )
    return env


@dataclass
class Workers:
    """``vizochok-dispatch worker`` processes, each logging to a file of its own."""

    url: str
    logs: Path
    settings: dict[str, str]
    running: list[asyncio.subprocess.Process] = field(default_factory=list)
    started: int = 0

    async def start(self, concurrency: int = 8) -> asyncio.subprocess.Process:
        log = (self.logs / f"worker-{self.started}.log").open("wb")
        self.started += 1
        with log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                "worker",
                "--concurrency",
                str(concurrency),
                cwd=REPO,
                env=_env(self.url, **self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self.running.append(process)
        return process

    def log(self, index: int) -> str:
        return (self.logs / f"worker-{index}.log").read_text("utf-8", errors="replace")

    def attempts(self, index: int) -> int:
        return self.log(index).count("event.attempt")

    async def stop(self) -> list[int | None]:
        """SIGTERM each, wait (bounded) for a clean exit; their exit codes."""
        for process in self.running:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in self.running:
            try:
                async with asyncio.timeout(40):
                    codes.append(await process.wait())
            except TimeoutError:
                process.kill()
                codes.append(await process.wait())
        return codes


@asynccontextmanager
async def workers(url: str, logs: Path, **settings: str) -> AsyncIterator[Workers]:
    group = Workers(url, logs, settings)
    try:
        yield group
    finally:
        for process in group.running:
            if process.returncode is None:
                process.kill()
                await process.wait()


def _publisher(url: str, **settings: Any) -> Dispatcher:
    return Dispatcher.from_settings(settings_for(url, event_worker="procrastinate", **settings))


async def _delivery_rows(url: str) -> list[dict[str, Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT d.id, d.status, d.attempts, e.id AS event_id FROM event_deliveries d "
                    "JOIN events e ON e.id = d.event_id ORDER BY d.id"
                )
            )
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


# -- the scale-out guarantees ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.timeout(900)
async def test_two_workers_deliver_2000_events_once_each_within_the_cap(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """Two worker processes: 2,000 events, each delivered exactly once, cap 2 per endpoint held."""
    server, handler = receiver
    cap, tenants, count = 2, 4, 2000
    published: list[str] = []
    async with (
        _publisher(postgres_url, event_max_in_flight_per_endpoint=cap) as d,
        workers(postgres_url, tmp_path, event_max_in_flight_per_endpoint=str(cap)) as group,
    ):
        for n in range(tenants):
            await d.events.create_endpoint(
                f"tenant-{n}", url=server.url(f"/ep{n}"), event_types=["order.*"]
            )
        await group.start()
        await group.start()

        async def publish(first: int) -> None:
            for n in range(first, count, 8):
                event = await d.events.publish(
                    f"tenant-{n % tenants}", "order.created", data=example()
                )
                published.append(event.id)

        async with asyncio.timeout(400):
            await asyncio.gather(*(publish(first) for first in range(8)))
        await wait_for(lambda: len(server.received) >= count, seconds=400)
        codes = await group.stop()
    assert codes == [0, 0], "both stopped cleanly on SIGTERM"
    delivered = [request.headers["x-vizochok-delivery"] for request in server.received]
    assert len(delivered) == count and sorted(delivered) == sorted(published), "none lost or twice"
    rows = await _delivery_rows(postgres_url)
    assert len(rows) == count
    assert {(row["status"], row["attempts"]) for row in rows} == {("delivered", 1)}
    assert all(handler.most[f"/ep{n}"] <= cap for n in range(tenants)), handler.most
    assert max(handler.most.values()) == cap, "the cap, not the workers, was the limit"
    assert group.attempts(0) > 0 and group.attempts(1) > 0, "both processes delivered"
    assert group.attempts(0) + group.attempts(1) == count


@pytest.mark.postgres
async def test_a_worker_killed_mid_attempt_is_redelivered_after_a_restart(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """SIGKILL while the receiver holds the attempt: after a restart, the same delivery again."""
    server, handler = receiver
    async with (
        _publisher(postgres_url) as d,
        workers(postgres_url, tmp_path) as group,
    ):
        await d.events.create_endpoint(
            "tenant-1", url=server.url("/hold"), event_types=["order.*"], timeout_seconds=1
        )
        first_worker = await group.start()
        event = await d.events.publish("tenant-1", "order.created", data=example())
        await wait_for(lambda: len(server.received) == 1, seconds=30)
        first_worker.send_signal(signal.SIGKILL)
        async with asyncio.timeout(10):
            assert await first_worker.wait() == -signal.SIGKILL
        (held,) = await d.events.deliveries("tenant-1")
        assert held.status == "pending" and held.attempts == (), "killed before recording"
        handler.opened.set()
        await group.start()
        await wait_for(lambda: len(server.received) == 2, seconds=60)
        await wait_for(lambda: "event.attempt" in group.log(1), seconds=10)
        (after,) = await d.events.deliveries("tenant-1")
        await group.stop()
    first, second = server.received
    assert after.id == held.id and after.status == "delivered"
    assert [a.number for a in after.attempts] == [1]
    assert first.headers["x-vizochok-delivery"] == second.headers["x-vizochok-delivery"] == event.id
    assert first.headers["x-vizochok-attempt"] == second.headers["x-vizochok-attempt"] == "1"
    assert first.body == second.body


@pytest.mark.postgres
async def test_an_ordered_endpoint_gets_publish_order_across_two_workers(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """Ordered: two worker processes deliver one at a time, in publish order."""
    server, handler = receiver
    count = 40
    async with (
        _publisher(postgres_url) as d,
        workers(postgres_url, tmp_path) as group,
    ):
        await d.events.create_endpoint(
            "tenant-1", url=server.url("/ordered"), event_types=["order.*"], ordered=True
        )
        await d.events.create_endpoint(
            "tenant-1", url=server.url("/parallel"), event_types=["order.*"]
        )
        await group.start()
        await group.start()
        published = [
            (await d.events.publish("tenant-1", "order.created", data=example())).id
            for _ in range(count)
        ]
        await wait_for(lambda: len(server.received) == 2 * count, seconds=60)
        await group.stop()
    ordered = [r.headers["x-vizochok-delivery"] for r in server.received if r.path == "/ordered"]
    assert ordered == published, "publish order"
    assert handler.most["/ordered"] == 1, "one at a time"
    assert group.attempts(0) + group.attempts(1) == 2 * count


@pytest.mark.postgres
async def test_a_worker_looks_again_when_its_locked_job_ends(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """Cap 1, a backlog queued before the worker starts: each job's end fetches the next at
    once (no insert announces it; polling every 30 s and the 5 s sweep would take > 35 s)."""
    server, handler = receiver
    count = 8
    async with (
        _publisher(postgres_url, event_max_in_flight_per_endpoint=1) as d,
        workers(
            postgres_url, tmp_path, event_max_in_flight_per_endpoint="1", event_poll_seconds="30"
        ) as group,
    ):
        await d.events.create_endpoint("tenant-1", url=server.url("/one"), event_types=["order.*"])
        for _ in range(count):
            await d.events.publish("tenant-1", "order.created", data=example())
        await group.start()
        await wait_for(lambda: len(server.received) == 1, seconds=60)  # the worker is up
        await wait_for(lambda: len(server.received) == count, seconds=20)
        await group.stop()
    assert handler.most["/one"] == 1


@pytest.mark.postgres
async def test_a_delivery_whose_job_was_lost_is_found_by_the_sweep(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """A crash between our commit and the defer: the periodic sweep defers the job."""
    server, _ = receiver
    async with (
        _publisher(postgres_url) as d,
        workers(postgres_url, tmp_path) as group,
    ):
        await d.events.create_endpoint("tenant-1", url=server.url("/x"), event_types=["order.*"])
        queue = d.events.queue

        async def lost(deliveries: Sequence[EventDelivery]) -> None:  # the defer never happens
            del deliveries

        queue.enqueue = lost  # type: ignore[method-assign]
        event = await d.events.publish("tenant-1", "order.created", data=example())
        await group.start()
        await wait_for(lambda: len(server.received) == 1, seconds=60)
        await group.stop()
    assert server.received[0].headers["x-vizochok-delivery"] == event.id
    assert "event_queue.requeued" in group.log(0)


@pytest.mark.postgres
async def test_a_disabled_endpoints_job_waits_for_it_to_be_enabled(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], tmp_path: Path
) -> None:
    """Disabled by hand: its job ends unattempted; enabled again, the sweep delivers it."""
    server, _ = receiver
    async with (
        _publisher(postgres_url) as d,
        workers(postgres_url, tmp_path) as group,
    ):
        ep = await d.events.create_endpoint(
            "tenant-1", url=server.url("/paused"), event_types=["order.*"]
        )
        event = await d.events.publish("tenant-1", "order.created", data=example())
        await d.events.update_endpoint("tenant-1", ep.id, enabled=False)
        await group.start()
        engine = create_async_engine(postgres_url)
        try:

            async def jobs_left() -> int:
                async with engine.connect() as conn:
                    found = await conn.execute(
                        text(
                            f"SELECT count(*) FROM {SCHEMA}.procrastinate_jobs "  # noqa: S608 - constants
                            "WHERE task_name = :task"
                        ),
                        {"task": DELIVER_TASK},
                    )
                    return int(found.scalar_one())

            async with asyncio.timeout(60):
                while await jobs_left():  # noqa: ASYNC110 - polls the queue, bounded
                    await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        assert server.received == [], "no attempt while disabled"
        (waiting,) = await d.events.deliveries("tenant-1")
        assert (waiting.status, waiting.attempts) == ("pending", ())
        await d.events.update_endpoint("tenant-1", ep.id, enabled=True)
        await wait_for(lambda: len(server.received) == 1, seconds=60)
        await group.stop()
    assert server.received[0].headers["x-vizochok-delivery"] == event.id


# -- refusals and the CLI ----------------------------------------------------------------------


async def test_procrastinate_on_sqlite_is_refused_naming_the_setting(sqlite_url: str) -> None:
    """SQLite: VIZOCHOK_EVENT_WORKER=procrastinate is an InvalidConfig naming the setting."""
    dispatcher = Dispatcher.from_settings(settings_for(sqlite_url, event_worker="procrastinate"))
    with pytest.raises(InvalidConfig) as refused:
        async with dispatcher:
            pass
    assert [error.field for error in refused.value.errors] == ["VIZOCHOK_EVENT_WORKER"]
    assert "PostgreSQL" in str(refused.value) and "embedded" in str(refused.value)


def _invoke(*args: str, **settings: str) -> Any:
    """Run the CLI with no ``VIZOCHOK_*`` setting but ``settings``."""
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("VIZOCHOK_")}
    env.update({f"VIZOCHOK_{name.upper()}": value for name, value in settings.items()})
    return CliRunner().invoke(main, list(args), env=env)


def test_the_worker_command_on_sqlite_says_the_embedded_worker_delivers(sqlite_url: str) -> None:
    """CLI: `worker` on SQLite exits 1 with one line pointing at the embedded worker."""
    result = _invoke("--database-url", sqlite_url, "worker")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the worker needs PostgreSQL")
    assert "embedded" in lines[0]


def test_the_worker_command_refuses_a_bad_concurrency() -> None:
    """CLI: --concurrency 0 is a usage error (exit 2)."""
    result = _invoke("worker", "--concurrency", "0")
    assert result.exit_code == 2 and "--concurrency" in result.output


def test_the_worker_command_on_an_unreachable_database_is_one_line() -> None:
    """CLI: a PostgreSQL nobody listens on is one line and exit 1, password masked."""
    url = "postgresql+asyncpg://postgres:hunter2-canary@127.0.0.1:1/nothing"
    result = _invoke("--database-url", url, "worker", secret_keys=KEYS)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "hunter2-canary" not in result.output


@pytest.mark.postgres
def test_the_worker_command_without_the_queue_schema_asks_for_db_upgrade(
    postgres_url: str,
) -> None:
    """CLI: a database migrated to 0003 only (no procrastinate schema) says to run db upgrade."""

    async def migrate_to_0003() -> None:
        from vizochok_dispatch.tenants._migrations import upgrade  # noqa: PLC0415

        engine = create_async_engine(postgres_url)
        try:
            await upgrade(engine, "0003")
        finally:
            await engine.dispose()

    asyncio.run(migrate_to_0003())
    result = _invoke("--database-url", postgres_url, "worker", secret_keys=KEYS)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "db upgrade" in lines[0], result.output


@pytest.mark.postgres
def test_db_upgrade_makes_a_fresh_database_ready_for_workers(postgres_url: str) -> None:
    """A fresh PostgreSQL: `db upgrade` creates procrastinate's schema beside ours."""
    assert _invoke("--database-url", postgres_url, "db", "upgrade").exit_code == 0

    async def tables() -> set[str]:
        engine = create_async_engine(postgres_url)
        try:
            async with engine.connect() as conn:
                found = await conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": SCHEMA}
                )
                return set(found.scalars())
        finally:
            await engine.dispose()

    assert "procrastinate_jobs" in asyncio.run(tables())


def test_an_endpoints_jobs_share_its_cap_in_lock_slots() -> None:
    """Locks: an ordered endpoint has one, another has `cap` slots its deliveries spread over."""
    assert slot_lock("ep_1", "dlv_a", ordered=True, per_endpoint=4) == "ep:ep_1"
    slots = {slot_lock("ep_1", f"dlv_{n}", ordered=False, per_endpoint=4) for n in range(200)}
    assert slots == {f"ep:ep_1:{n}" for n in range(4)}
    assert slot_lock("ep_1", "dlv_a", ordered=False, per_endpoint=4) == slot_lock(
        "ep_1", "dlv_a", ordered=False, per_endpoint=4
    )


class _CountingConnection:
    """Enough of a psycopg connection for the pool's check: counts the pings it gets."""

    autocommit = True

    def __init__(self) -> None:
        self.pings = 0

    async def execute(self, query: str) -> None:
        assert query == ""
        self.pings += 1


async def test_the_queue_pool_pings_a_connection_only_after_it_sat_idle() -> None:
    """Queue pool check: a connection given back moments ago is not pinged; an idle one is."""
    conn = _CountingConnection()
    check: Any = _check_when_idle
    await check(conn)
    assert conn.pings == 1, "never given back: pinged"
    await _returned(conn)  # type: ignore[arg-type]
    await check(conn)
    assert conn.pings == 1, "given back just now: straight to work"
    _LAST_RETURNED[conn] -= PING_IDLE_SECONDS * 2  # type: ignore[index]
    await check(conn)
    assert conn.pings == 2, "idle past PING_IDLE_SECONDS: pinged"
