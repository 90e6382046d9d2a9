"""Scale-out event delivery on procrastinate (``VIZOCHOK_EVENT_WORKER=procrastinate``, PostgreSQL).

Any number of ``vizochok-dispatch worker`` processes, on any number of machines, deliver from
the PostgreSQL the dispatcher already uses; no other server.  procrastinate is the job queue
(its tables live in their own PostgreSQL schema, ``procrastinate``, made by ``vizochok-dispatch
db upgrade``); the delivery state stays in our tables (``_store``), which remain the truth:
a job only says "look at delivery X", and :meth:`EventService.deliver_due` claims, attempts and
settles it there, under our lease and claim token.  So a duplicate or stray job is harmless: it
finds nothing to claim.

- **Publishing** commits the event and its deliveries (``_store.publish``), then defers one
  ``deliver`` job per delivery (payload: the delivery id), in one batch.  Its ``INSERT`` wakes
  every worker through procrastinate's LISTEN/NOTIFY.  If the process dies between the commit
  and the defer, or the defer fails, the **sweep** finds the delivery: every few seconds one
  worker (procrastinate's periodic task, deferred once per tick whatever the number of
  workers) lists pending deliveries overdue by :data:`SWEEP_GRACE_SECONDS` that no worker
  holds and no waiting or running job names, and defers their jobs again.
- **Per-endpoint cap, across processes**: every job of an endpoint carries a procrastinate
  *lock*, and procrastinate runs at most one job per lock at a time, in every process.  An
  endpoint has ``event_max_in_flight_per_endpoint`` lock *slots* (``ep:<id>:<n>``; a delivery's
  slot is a hash of its id), so at most that many of its attempts are in flight in the whole
  cluster, and an endpoint that hangs holds its own slots only: other endpoints' jobs are
  fetched past its blocked ones.  Slots, not our claim table, because a job that found the cap
  full would have to be put back and polled; a locked job simply is not fetched until its slot
  is free (the worker that frees a slot looks again at once).  Migration 0009 indexes
  procrastinate's jobs by lock, so a fetch stays cheap behind a backlog of locked jobs.
- **Retries**: an attempt that fails settles the delivery ``pending`` with its next attempt
  time (our schedule, ``Retry-After`` included).  A small ``wake`` job, without a lock, is
  scheduled at that time and defers the ``deliver`` job again, so a retry waiting an hour
  never blocks its slot (procrastinate runs a lock's jobs in order, scheduled ones included).
- **Ordered endpoints** (``ordered=True``) have one lock, ``ep:<id>``: one job at a time, in
  the order they were deferred.  A job delivers the endpoint's *head* (its pending delivery
  with the lowest sequence, the only one our claim allows), so two publishers whose defers
  cross still deliver in publish order.  A head that must be retried keeps its job's place
  (procrastinate's retry of the same job, scheduled at the next attempt time): what follows it
  waits, as the embedded worker's claim makes it wait.
- **Retention**: a periodic task (hourly, one worker) runs ``EventService.purge_expired``,
  as the embedded worker does itself.
- **Crashes**: a worker killed mid-attempt leaves its job ``doing``; procrastinate's heartbeat
  marks the worker stalled after ``event_worker_stalled_seconds``, and the periodic task puts
  its jobs back.  Our lease runs out after the endpoint's timeout plus a grace; then the same
  delivery (same delivery id, event id and attempt number) is attempted again.  A worker
  stopped with SIGTERM/SIGINT finishes the attempts in flight first.
"""

from __future__ import annotations

import time
import weakref
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import procrastinate
import psycopg
import psycopg_pool
import structlog
from procrastinate import jobs, manager, retry
from procrastinate.jobs import Notification
from sqlalchemy.engine import URL

from .._exceptions import SchemaNotReady, StoreError
from ..http._attempt import Clock
from ..tenants._sql_store import PING_IDLE_SECONDS, safe_url
from ._store import LEASE_GRACE_SECONDS, DeliveryState, EventStore, Settlement
from ._tables import PENDING
from ._values import EventDelivery

#: The PostgreSQL schema procrastinate's tables and functions live in.
SCHEMA: Final = "procrastinate"
#: The queue every event job goes to.
QUEUE: Final = "vizochok_events"
DELIVER_TASK: Final = "vizochok.events.deliver"
WAKE_TASK: Final = "vizochok.events.wake"
RECOVER_TASK: Final = "vizochok.events.recover"
PURGE_TASK: Final = "vizochok.events.purge"
#: Retention's purge (``EventService.purge_expired``): hourly, at 17 past, on one worker.
PURGE_CRON: Final = "17 * * * *"
#: The periodic task's schedule: every 5 s (procrastinate's cron has seconds as a sixth field).
RECOVER_CRON: Final = "* * * * * */5"
#: How long past due a pending delivery with no job must be before the sweep defers it.
SWEEP_GRACE_SECONDS: Final = 5.0
#: Deliveries one sweep looks at.
SWEEP_BATCH: Final = 500
#: The longest wait before a job that failed for a reason of ours (a database error) runs again.
MAX_JOB_BACKOFF_SECONDS: Final = 30.0
#: How long a stopping worker lets its attempts finish: the longest attempt and its recording.
SHUTDOWN_SECONDS: Final = 30.0 + LEASE_GRACE_SECONDS
#: Connections the procrastinate pool keeps at most (its listener holds one).
POOL_SIZE: Final = 8
#: Times one job follows an ordered endpoint's head, or looks again at a delivery settled under it.
_MAX_HOPS: Final = 4

_log = structlog.get_logger("vizochok_dispatch")

DeliverDue = Callable[[str], Awaitable[Settlement | None]]


class _Later(Exception):
    """Run this job again at ``at``, keeping its place among its lock's jobs."""

    def __init__(self, at: datetime) -> None:
        super().__init__(f"again at {at.isoformat()}")
        self.at = at


#: When each pooled connection was last given back (``_returned``).
_LAST_RETURNED: Final[weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float]] = (
    weakref.WeakKeyDictionary()
)


async def _returned(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's ``reset`` callback: note when ``conn`` went back idle."""
    _LAST_RETURNED[conn] = time.monotonic()


async def _check_when_idle(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's ``check`` callback: ping a connection idle for ``PING_IDLE_SECONDS`` or
    more (one that died idle is replaced), not one given back moments ago: a ping per
    checkout was a round trip on each of a job's fetch, finish and defer (the store's
    engine does the same, ``tenants._sql_store._ping_when_idle``)."""
    last = _LAST_RETURNED.get(conn)
    if last is not None and time.monotonic() - last < PING_IDLE_SECONDS:
        return
    await psycopg_pool.AsyncConnectionPool.check_connection(conn)


def connection_kwargs(url: URL, *, connect_timeout: float) -> dict[str, Any]:
    """libpq connection keywords for the database an asyncpg SQLAlchemy URL names.

    Host, port, user, password and database carry over; asyncpg's ``ssl`` is libpq's
    ``sslmode``; the search path puts procrastinate's schema first.
    """
    kwargs: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        "connect_timeout": max(1, round(connect_timeout)),
        "options": f"-c search_path={SCHEMA}",
        "application_name": "vizochok-dispatch",
    }
    for name, value in url.query.items():
        text = value if isinstance(value, str) else value[-1]
        if name in {"ssl", "sslmode"}:
            kwargs["sslmode"] = text
        elif name in {"sslrootcert", "sslcert", "sslkey"}:
            kwargs[name] = text
    return {name: value for name, value in kwargs.items() if value is not None}


def slot_lock(endpoint_id: str, delivery_id: str, *, ordered: bool, per_endpoint: int) -> str:
    """The procrastinate lock of a delivery's job: the endpoint's one lock when ordered, else
    one of its ``per_endpoint`` slots (a stable hash of the delivery id)."""
    if ordered:
        return f"ep:{endpoint_id}"
    return f"ep:{endpoint_id}:{zlib.crc32(delivery_id.encode()) % per_endpoint}"


class ProcrastinateQueue:
    """The procrastinate app of one dispatcher: defers, and (in a worker) runs, event jobs."""

    def __init__(
        self,
        *,
        store: EventStore,
        deliver_due: DeliverDue,
        clock: Clock,
        url: URL,
        connect_timeout: float,
        per_endpoint: int,
        poll_seconds: float,
        stalled_seconds: float,
        purge: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._store = store
        self._purge = purge
        self._deliver_due = deliver_due
        self._clock = clock
        self._url = url
        self._connect_timeout = connect_timeout
        self._per_endpoint = per_endpoint
        self._poll_seconds = poll_seconds
        self._stalled_seconds = stalled_seconds
        self._app: procrastinate.App | None = None
        self._pool: psycopg_pool.AsyncConnectionPool | None = None
        #: Whether an endpoint is ordered (fixed when it is created), as publishing defers.
        self._ordered: dict[str, bool] = {}

    @property
    def app(self) -> procrastinate.App:
        """The procrastinate app (after :meth:`open`)."""
        if self._app is None:
            raise StoreError("the procrastinate queue is not open")
        return self._app

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (bounded by the connect timeout) and check procrastinate's schema is there;
        idempotent.  Raises :class:`StoreError` / :class:`SchemaNotReady` saying why."""
        if self._app is not None:
            return
        where = safe_url(self._url.render_as_string(hide_password=False))
        pool = psycopg_pool.AsyncConnectionPool(
            kwargs=connection_kwargs(self._url, connect_timeout=self._connect_timeout),
            min_size=1,
            max_size=POOL_SIZE,
            timeout=self._connect_timeout,
            open=False,
            check=_check_when_idle,
            reset=_returned,
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
            async with pool.connection() as conn:
                found = await (
                    await conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.procrastinate_jobs",))
                ).fetchone()
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            await pool.close()
            raise StoreError(
                f"the job queue at {where} cannot be reached: {type(exc).__name__}"
            ) from None
        if found is None or found[0] is None:
            await pool.close()
            raise SchemaNotReady(f"procrastinate's tables are not in {where} (schema {SCHEMA})")
        app = procrastinate.App(connector=procrastinate.PsycopgConnector())
        app.job_manager = _WakingJobManager(app.connector)
        self._register(app)
        await app.open_async(pool)
        self._pool, self._app = pool, app

    async def close(self) -> None:
        """Close the app and its pool; idempotent."""
        app, pool, self._app, self._pool = self._app, self._pool, None, None
        if app is not None:
            await app.close_async()
        if pool is not None:
            await pool.close()

    # -- deferring ---------------------------------------------------------------------------

    async def enqueue(self, deliveries: Sequence[EventDelivery]) -> None:
        """Defer a ``deliver`` job per delivery, now.  Never raises: a delivery whose job is
        not deferred is found by the sweep (it is committed already)."""
        if not deliveries:
            return
        try:
            unknown = [dl.id for dl in deliveries if dl.endpoint_id not in self._ordered]
            if unknown:
                for state in await self._store.delivery_states(unknown):
                    self._ordered[state.endpoint_id] = state.ordered
            await self._defer(
                (dl.id, dl.endpoint_id, self._ordered.get(dl.endpoint_id, False))
                for dl in deliveries
            )
        except Exception as exc:  # the sweep defers them later
            _log.warning(
                "event_queue.defer_failed",
                deliveries=len(deliveries),
                error_type=type(exc).__name__,
                error=str(exc),
            )

    async def enqueue_ids(
        self,
        endpoint_id: str,
        delivery_ids: Sequence[str],
        *,
        ordered: bool,
        at: datetime | None = None,
    ) -> None:
        """Defer, in one batch, a ``deliver`` job per delivery of one endpoint (a recovery's
        batch, a retried delivery's next attempt at ``at``).  Never raises: the sweep finds
        what is not deferred (it is committed already)."""
        try:
            await self._defer(((i, endpoint_id, ordered) for i in delivery_ids), at=at)
        except Exception as exc:  # the sweep defers them later
            _log.warning(
                "event_queue.defer_failed",
                deliveries=len(delivery_ids),
                error_type=type(exc).__name__,
                error=str(exc),
            )

    async def _defer(
        self, targets: Iterable[tuple[str, str, bool]], *, at: datetime | None = None
    ) -> None:
        """Defer ``deliver`` jobs for ``(delivery id, endpoint id, ordered)`` triples."""
        batch = [
            jobs.Job(
                queue=QUEUE,
                task_name=DELIVER_TASK,
                lock=slot_lock(
                    endpoint_id, delivery_id, ordered=ordered, per_endpoint=self._per_endpoint
                ),
                queueing_lock=None,
                task_kwargs={"delivery_id": delivery_id},
                scheduled_at=at,
            )
            for delivery_id, endpoint_id, ordered in targets
        ]
        if batch:
            await self.app.job_manager.batch_defer_jobs_async(batch)

    async def _defer_states(self, states: Iterable[DeliveryState]) -> None:
        await self._defer((state.id, state.endpoint_id, state.ordered) for state in states)

    async def _wake_at(self, delivery_id: str, at: datetime) -> None:
        job = jobs.Job(
            queue=QUEUE,
            task_name=WAKE_TASK,
            lock=None,
            queueing_lock=None,
            task_kwargs={"delivery_id": delivery_id},
            scheduled_at=at,
        )
        await self.app.job_manager.defer_job_async(job)

    # -- the worker --------------------------------------------------------------------------

    async def run_worker(self, *, concurrency: int, name: str = "vizochok-events") -> None:
        """Run a worker until SIGTERM/SIGINT (then the attempts in flight finish first)."""
        await self.app.run_worker_async(
            queues=[QUEUE],
            name=name,
            concurrency=concurrency,
            fetch_job_polling_interval=self._poll_seconds,
            abort_job_polling_interval=max(self._poll_seconds, 5.0),
            shutdown_graceful_timeout=SHUTDOWN_SECONDS,
            listen_notify=True,
            delete_jobs="always",
            update_heartbeat_interval=max(self._stalled_seconds / 3, 0.5),
            stalled_worker_timeout=self._stalled_seconds,
        )

    def _register(self, app: procrastinate.App) -> None:
        retry = _RetryLater()

        async def deliver(delivery_id: str) -> None:
            await self._deliver(delivery_id)

        async def wake(delivery_id: str) -> None:
            states = await self._store.delivery_states([delivery_id])
            await self._defer_states(state for state in states if state.status == PENDING)

        async def recover(timestamp: int) -> None:
            del timestamp
            await self._recover()

        app.task(name=DELIVER_TASK, queue=QUEUE, retry=retry)(deliver)
        app.task(name=WAKE_TASK, queue=QUEUE, retry=retry)(wake)
        periodic = app.task(
            name=RECOVER_TASK, queue=QUEUE, priority=100, queueing_lock=RECOVER_TASK
        )(recover)
        app.periodic(cron=RECOVER_CRON, periodic_id=RECOVER_TASK)(periodic)
        if self._purge is not None:
            purge_expired = self._purge

            async def purge(timestamp: int) -> None:
                del timestamp
                await purge_expired()

            # behind the deliveries (lowest priority), one at a time across the cluster
            purging = app.task(
                name=PURGE_TASK, queue=QUEUE, priority=-100, queueing_lock=PURGE_TASK
            )(purge)
            app.periodic(cron=PURGE_CRON, periodic_id=PURGE_TASK)(purging)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    async def _state(self, delivery_id: str) -> DeliveryState | None:
        found = await self._store.delivery_states([delivery_id])
        return found[0] if found else None

    async def _deliver(self, delivery_id: str) -> None:
        """One ``deliver`` job: bring one delivery (an ordered endpoint's head) to its end, or
        to its next attempt (module docstring)."""
        target = delivery_id
        for _ in range(_MAX_HOPS):
            settlement = await self._deliver_due(target)
            if settlement is not None and settlement.status != PENDING:
                return  # delivered or failed: this job's work is done
            state = await self._state(target)
            if state is None:
                return  # gone with its endpoint
            if not state.enabled:
                return  # paused: enabled again, the sweep defers its job
            if state.ordered:
                if state.head_id is None:
                    return  # nothing pending on the endpoint
                if state.head_id != target:
                    target = state.head_id  # publish order: the head goes first
                    continue
            elif state.status != PENDING:
                return
            now = self._now()
            due = state.next_attempt_at or now
            if state.claimed_until is not None and state.claimed_until > now:
                raise _Later(state.claimed_until)  # held (a crashed worker's lease)
            if due > now:
                if state.ordered:
                    raise _Later(due)  # the endpoint waits for its head
                await self._wake_at(state.id, due)  # the slot is free meanwhile
                return
        raise _Later(self._now() + timedelta(seconds=self._poll_seconds))

    async def _recover(self) -> None:
        """The periodic task: put stalled jobs back, and defer jobs for deliveries that lost
        theirs."""
        manager = self.app.job_manager
        for job in await manager.get_stalled_jobs(seconds_since_heartbeat=self._stalled_seconds):
            try:
                await manager.retry_job(job)
            except Exception as exc:  # another worker put it back first
                _log.info("event_queue.stalled_retry_skipped", job_id=job.id, error=str(exc))
            else:
                _log.warning("event_queue.stalled_job_retried", job_id=job.id, task=job.task_name)
        before = self._now() - timedelta(seconds=SWEEP_GRACE_SECONDS)
        overdue = await self._store.overdue(before=before, limit=SWEEP_BATCH)
        if not overdue:
            return
        rows = await self.app.connector.execute_query_all_async(
            query=_ACTIVE_JOBS, task_names=[DELIVER_TASK, WAKE_TASK], ids=overdue
        )
        have = {row["delivery_id"] for row in rows}
        lost = [delivery_id for delivery_id in overdue if delivery_id not in have]
        if lost:
            await self._defer_states(await self._store.delivery_states(lost))
            _log.warning("event_queue.requeued", deliveries=len(lost))


#: The delivery ids among ``ids`` that a waiting or running job names.
_ACTIVE_JOBS: Final = """
SELECT args->>'delivery_id' AS delivery_id
  FROM procrastinate_jobs
 WHERE status IN ('todo', 'doing')
   AND task_name = ANY(%(task_names)s)
   AND args->>'delivery_id' = ANY(%(ids)s)
"""


class _RetryLater(retry.BaseRetryStrategy):
    """Every job is retried: at the time :class:`_Later` names, else (a database error, a bug)
    after a wait doubling from 1 s up to :data:`MAX_JOB_BACKOFF_SECONDS`; the sweep stays the
    safety net."""

    def get_retry_decision(self, *, exception: BaseException, job: jobs.Job) -> retry.RetryDecision:
        if isinstance(exception, _Later):
            return retry.RetryDecision(retry_at=exception.at)
        wait = min(2.0 ** min(job.attempts, 16), MAX_JOB_BACKOFF_SECONDS)
        _log.warning(
            "event_queue.job_error",
            job_id=job.id,
            task=job.task_name,
            error_type=type(exception).__name__,
            error=str(exception),
            retry_in=wait,
        )
        return retry.RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=wait))


class _WakingJobManager(manager.JobManager):
    """procrastinate's job manager, telling this process's worker to look for jobs again when
    one of its jobs with a lock ends: the next job of that lock may run now, and no ``INSERT``
    (procrastinate's only notification) says so."""

    _on_notification: manager.NotificationCallback | None = None

    async def listen_for_jobs(
        self,
        *,
        on_notification: manager.NotificationCallback,
        queues: Iterable[str] | None = None,
    ) -> None:
        self._on_notification = on_notification
        await super().listen_for_jobs(on_notification=on_notification, queues=queues)

    async def finish_job(self, job: jobs.Job, status: jobs.Status, delete_job: bool) -> None:
        await super().finish_job(job=job, status=status, delete_job=delete_job)
        await self._lock_freed(job)

    async def retry_job(
        self,
        job: jobs.Job,
        retry_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        await super().retry_job(job, retry_at=retry_at, priority=priority, queue=queue, lock=lock)
        await self._lock_freed(job)

    async def _lock_freed(self, job: jobs.Job) -> None:
        if job.lock is not None and self._on_notification is not None and job.id is not None:
            notification: Notification = {"type": "job_inserted", "job_id": job.id}
            await self._on_notification(channel=QUEUE, notification=notification)
