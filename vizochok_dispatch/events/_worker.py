"""The embedded worker: delivers due events from the database, inside the dispatcher's process.

One asyncio task (started with the dispatcher unless ``VIZOCHOK_EVENT_WORKER=off``) claims due
deliveries with a lease and runs their attempts as tasks:

- **Capacity**: at most ``concurrency`` attempts at once in this process, and at most
  ``per_endpoint`` per endpoint (one for an ordered endpoint, whose head only is claimable),
  so an endpoint that hangs holds its own slots only; claims go round robin across endpoints,
  and endpoints already at their cap are left out of the claim, so another endpoint's delivery
  waits for a free slot at most, never behind a hanging endpoint's backlog.
- **Wake-up**: ``publish`` in this process hands its deliveries to the worker (``offer``) and
  wakes it at once (an ``asyncio.Event``): the worker leases them by id, within its caps,
  before it looks for anything else due, so an idle worker's attempt starts one transaction
  after the publish, not two.  What it does not take (caps full, not claimable) waits for the
  usual claim.  A finished attempt wakes it too (a slot is free).  Otherwise it waits until
  the next delivery falls due (a retry's time, a lease running out), polling every
  ``poll_seconds`` at the longest for what other processes publish.  Those waits are real
  time; the injected clock says what is due.
- **Crashes**: a lease outlives the attempt's own time limit by a few seconds; a process that
  dies mid-attempt leaves the lease to run out, and the delivery is due again (same delivery,
  same event id, same attempt number).  Stopping (``stop``) waits for attempts that are
  recording their outcome, cancels the ones still on the wire and gives their leases back,
  so the next start delivers them at once.
- **Database failures**: logged (``event_worker.store_error``) and tried again, the waits
  doubling from ``poll_seconds`` up to 30 s; an attempt whose outcome cannot be recorded is
  made again once its lease runs out.

:meth:`Worker.drain` runs the same claims in the caller's task until nothing is due (waiting,
with the injected sleep, for retries that fall due before its timeout: a test's fake sleep
makes a schedule of hours take no time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import structlog

from .._exceptions import StoreError
from ..http._attempt import Clock, Sleep
from ._delivery import EventDeliverer, new_token
from ._store import Claim, EventStore
from ._values import EventDelivery

#: Claim rounds one fill may make (each leaves out the endpoints the last one filled).
_MAX_ROUNDS: Final = 8
#: The shortest wait when something due could not be claimed (held elsewhere a moment).
_MIN_WAIT_SECONDS: Final = 0.05
#: The longest wait between tries while the database fails.
_MAX_BACKOFF_SECONDS: Final = 30.0

_log = structlog.get_logger("vizochok_dispatch")


@dataclass(slots=True)
class _Running:
    claim: Claim
    #: The attempt is done and its outcome is being recorded: let it finish on stop.
    settling: bool = False


@dataclass(slots=True)
class _Stats:
    #: Attempts this worker finished (recorded or not), for ``drain``'s report.
    attempts: int = 0


class Worker:
    """Claims due deliveries and runs their attempts within the caps (module docstring)."""

    def __init__(
        self,
        *,
        store: EventStore,
        deliverer: EventDeliverer,
        clock: Clock,
        sleep: Sleep,
        concurrency: int,
        per_endpoint: int,
        poll_seconds: float,
        purge: Callable[[], Awaitable[object]] | None = None,
        purge_interval_seconds: float = 3600.0,
    ) -> None:
        self._store = store
        self._purge = purge
        self._purge_interval = purge_interval_seconds
        self._next_purge: float | None = None
        self._purging: asyncio.Task[None] | None = None
        self._deliverer = deliverer
        self._clock = clock
        self._sleep = sleep
        self._concurrency = concurrency
        self._per_endpoint = per_endpoint
        self._poll_seconds = poll_seconds
        self._running: dict[asyncio.Task[None], _Running] = {}
        self._busy: Counter[str] = Counter()
        self._fill_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Deliveries just published in this process, not yet looked at (``offer``).
        self._offered: list[EventDelivery] = []
        self._loop: asyncio.Task[None] | None = None
        self._stats = _Stats()

    @property
    def running(self) -> bool:
        """Whether the background loop is on."""
        return self._loop is not None and not self._loop.done()

    @property
    def in_flight(self) -> int:
        """Attempts under way in this process."""
        return len(self._running)

    def in_flight_for(self, endpoint_id: str) -> int:
        """Attempts under way in this process for one endpoint."""
        return self._busy[endpoint_id]

    def wake(self) -> None:
        """Something may be due now (a publish in this process)."""
        self._wake.set()

    def offer(self, deliveries: Sequence[EventDelivery]) -> None:
        """Deliveries this process just published (committed): lease them by id at the next
        fill, and wake the worker.  Only when it runs (``drain`` claims as usual)."""
        if self.running:
            self._offered.extend(deliveries)
        self._wake.set()

    def start(self) -> None:
        """Start the background loop (idempotent)."""
        if not self.running:
            self._loop = asyncio.create_task(self._serve(), name="vizochok-event-worker")

    async def stop(self) -> None:
        """Stop the loop; attempts recording their outcome finish, the others are cancelled
        and their leases given back."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._purging is not None:
            self._purging.cancel()  # a purge is batches of their own: cut short, nothing lost
            with contextlib.suppress(asyncio.CancelledError):
                await self._purging
            self._purging = None
        on_the_wire = [task for task, running in self._running.items() if not running.settling]
        for task in on_the_wire:
            task.cancel()
        cut_short = [self._running[task].claim for task in on_the_wire]
        await asyncio.gather(*self._running, return_exceptions=True)
        if cut_short:
            try:
                await self._store.release(cut_short)
            except StoreError as exc:  # the leases run out instead
                _log.warning("event_worker.release_failed", error=str(exc), count=len(cut_short))

    # -- claiming ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall(), UTC)

    def _saturated(self) -> list[str]:
        return [endpoint for endpoint, count in self._busy.items() if count >= self._per_endpoint]

    async def fill(self) -> int:
        """Claim what is due, up to the free capacity, and start the attempts; how many."""
        started = 0
        async with self._fill_lock:
            started += await self._take_offered()
            for _ in range(_MAX_ROUNDS):
                free = self._concurrency - len(self._running)
                if free <= 0:
                    break
                claims = await self._store.claim_due(
                    now=self._now(),
                    limit=free,
                    busy={endpoint: n for endpoint, n in self._busy.items() if n},
                    per_endpoint=self._per_endpoint,
                    token=new_token(),
                )
                for claim in claims:
                    self._start(claim)
                started += len(claims)
                if not claims:
                    break
        return started

    async def _take_offered(self) -> int:
        """Lease the offered deliveries that fit the free capacity and their endpoint's cap
        (the lease itself refuses what is not due, held, or behind its ordered endpoint's
        head); how many started.  The rest are claimed as usual."""
        offered, self._offered = self._offered, []
        free = self._concurrency - len(self._running)
        taking: list[str] = []
        room: Counter[str] = Counter()
        for delivery in offered:
            endpoint = delivery.endpoint_id
            if len(taking) >= free:
                break
            if self._busy[endpoint] + room[endpoint] < self._per_endpoint:
                taking.append(delivery.id)
                room[endpoint] += 1
        if not taking:
            return 0
        claims = await self._store.claim_ids(taking, now=self._now(), token=new_token())
        for claim in claims:
            self._start(claim)
        return len(claims)

    def _start(self, claim: Claim) -> None:
        running = _Running(claim)
        task = asyncio.create_task(
            self._attempt(running), name=f"vizochok-event-{claim.delivery_id}"
        )
        self._running[task] = running
        self._busy[claim.endpoint_id] += 1 if not claim.ordered else self._per_endpoint
        task.add_done_callback(self._finished)

    async def _attempt(self, running: _Running) -> None:
        claim = running.claim
        try:
            await self._deliverer.deliver(claim, on_settling=lambda: _settling(running))
        except StoreError as exc:
            # the outcome is not recorded: the lease runs out and the attempt is made again
            _log.warning("event_worker.store_error", delivery_id=claim.delivery_id, error=str(exc))
        except Exception as exc:
            _log.exception(
                "event_worker.internal_error",
                delivery_id=claim.delivery_id,
                error_type=type(exc).__name__,
            )
        finally:
            self._stats.attempts += 1

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A task's end: its slot is free."""
        running = self._running.pop(task)
        claim = running.claim
        self._busy[claim.endpoint_id] -= 1 if not claim.ordered else self._per_endpoint
        if self._busy[claim.endpoint_id] <= 0:
            del self._busy[claim.endpoint_id]
        self._wake.set()  # a slot is free

    # -- the background loop -----------------------------------------------------------------

    async def _serve(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            self._maybe_purge()
            try:
                started = await self.fill()
                wait = await self._wait_after(started)
                failures = 0
            except StoreError as exc:
                failures += 1
                wait = self._backoff(failures)
                _log.warning(
                    "event_worker.store_error", error=str(exc), failures=failures, retry_in=wait
                )
            except Exception as exc:  # the loop outlives any one bad round
                failures += 1
                wait = self._backoff(failures)
                _log.exception("event_worker.internal_error", error_type=type(exc).__name__)
            await self._nap(wait)

    def _maybe_purge(self) -> None:
        """Start retention's purge (on the side, in batches) when it is due: at start, then
        every ``purge_interval_seconds`` of the injected clock."""
        if self._purge is None or (self._purging is not None and not self._purging.done()):
            return
        now = self._clock.monotonic()
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + self._purge_interval
        self._purging = asyncio.create_task(self._purge_once(), name="vizochok-event-purge")

    async def _purge_once(self) -> None:
        assert self._purge is not None  # noqa: S101 - only started with one
        try:
            await self._purge()
        except StoreError as exc:  # tried again at the next interval
            _log.warning("event_worker.purge_failed", error=str(exc))
        except Exception as exc:
            _log.exception("event_worker.internal_error", error_type=type(exc).__name__)

    def _backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed rounds in a row: ``poll_seconds`` doubling, up to
        :data:`_MAX_BACKOFF_SECONDS` (a publish here still wakes the worker at once)."""
        doubled: float = self._poll_seconds * float(2 ** min(failures - 1, 16))
        return min(doubled, max(self._poll_seconds, _MAX_BACKOFF_SECONDS))

    async def _wait_after(self, started: int) -> float:
        """Seconds until the next claim is worth trying (0: at once)."""
        if started and len(self._running) < self._concurrency:
            return 0.0  # there may be more due
        due = await self._store.next_due(saturated=self._saturated())
        if due is None:
            return self._poll_seconds
        wait = (due - self._now()).total_seconds()
        if wait <= 0:
            # due, yet nothing was claimed: held elsewhere for a moment
            wait = 0.0 if started else _MIN_WAIT_SECONDS
        return min(wait, self._poll_seconds)

    async def _nap(self, seconds: float) -> None:
        """Wait ``seconds`` of real time, or until woken.

        Real time, not the injected sleep: a test's sleep returns at once (moving its clock),
        which would spin this loop and run the test's clock away; a test moves its clock
        itself, and the next look (``poll_seconds`` later at most) sees what fell due.
        """
        if seconds <= 0 or self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    # -- drain -------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - in the injected clock
        """Deliver what is due in this process, retries included, until nothing is pending
        that falls due within ``timeout`` seconds (the injected clock's); the attempts made."""
        deadline = self._clock.monotonic() + timeout
        before = self._stats.attempts
        while True:
            await self.fill()
            remaining = deadline - self._clock.monotonic()
            if self._running:
                if remaining <= 0:
                    break
                await asyncio.wait(
                    set(self._running), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                continue
            due = await self._store.next_due(saturated=[])
            if due is None:
                break
            wait = (due - self._now()).total_seconds()
            if wait > remaining:
                break
            await self._sleep(max(wait, _MIN_WAIT_SECONDS))
        return self._stats.attempts - before


def _settling(running: _Running) -> None:
    running.settling = True
