"""The synchronous call log: every failed call and a sample of the others, per tenant.

A call never waits for the log.  The dispatcher hands each entry to :meth:`CallLog.failed` or
:meth:`CallLog.succeeded`: a bounded in-memory queue, an ``append`` and a length check, no
formatting and no copying (the entry keeps references to the call's own frozen values).  A
background task (started with the dispatcher) takes the queue in batches, turns entries into
rows and inserts each batch in one statement; every ``VIZOCHOK_CALL_LOG_PURGE_SECONDS`` it also
purges what retention no longer keeps.

What is lost is counted, never waited for:

- **queue full** (``VIZOCHOK_CALL_LOG_QUEUE_SIZE`` entries waiting): the new entry is dropped
  and counted (``dropped_queue_full``);
- **store failure** (down, hung until the statement timeout, refusing): the batch, and the
  rest of what was queued when that write began, are dropped and counted
  (``dropped_store_error``), so a flush (and closing) on a dead database takes one timeout,
  not one per batch.

Which calls: every failed one (any detail, also those where nothing was sent: ``circuit_open``,
``not_configured``, ``bulkhead_full`` …), every one whose reply had problem lines, and of the
others a random sample of ``VIZOCHOK_CALL_LOG_SAMPLE_RATE`` (the random source is injected).
What an entry holds is :class:`~._calllog_store.LoggedCall`: never a secret, a signature, the
request body or the URL.  Closing the dispatcher writes what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

import structlog

from .._exceptions import InvalidCall, StoreError
from ..contract._text import TextRule, text_problem
from ..events._ids import new_id
from ..http._attempt import Clock
from ..tenants._config import _tenant_id_problem
from ..tenants._pages import Page, decode_cursor, limit_problem
from ._calllog_store import CallFilter, CallLogStore, LoggedCall, attempt_dict
from ._results import Delivery

#: Problem lines kept per entry, and characters per line.
MAX_PROBLEMS: Final = 20
MAX_PROBLEM_CHARS: Final = 500
#: Bytes of a non-200 answer's body kept (and read, within the attempt's time).
RESPONSE_BYTES: Final = 4096
#: Entries a page lists at most, and by default.
MAX_PAGE: Final = 100
DEFAULT_PAGE: Final = 50
WEBHOOKS: Final = ("products", "cart", "cart_get")
OUTCOMES: Final = ("ok", "failed")
#: A detail or delivery id to filter on: short, printable, no spaces.
ID_FILTER: Final = TextRule(1, 64, controls=False, blank=False)
CALL_PREFIX: Final = "call_"

RandomSource = Callable[[], float]

_log = structlog.get_logger("vizochok_dispatch")


class _Entry(NamedTuple):
    """What a call hands over: references only, turned into a row by the writer."""

    wall: float
    tenant_id: str
    webhook: str
    detail: str | None
    delivery: Delivery | None
    problems: tuple[str, ...]


class CallLog:
    """The call log of one dispatcher (``Dispatcher.call_log``; see the module docstring).

    ``store`` is ``None`` on a store that is not SQL: nothing is kept and reading raises
    :class:`InvalidCall`.  ``enabled=False`` (``VIZOCHOK_CALL_LOG=off``) keeps nothing new;
    what was kept can still be read.  ``rand`` draws the sample, ``clock`` stamps entries and
    times purges; ``on_dropped(n)`` hears of every drop (``vizochok_call_log_dropped_total``).
    """

    def __init__(
        self,
        store: CallLogStore | None,
        *,
        clock: Clock,
        enabled: bool = True,
        sample_rate: float = 0.01,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_seconds: float = 1.0,
        max_age_seconds: float = 7 * 86_400.0,
        max_per_tenant: int = 10_000,
        purge_seconds: float = 60.0,
        rand: RandomSource = random.random,
        on_dropped: Callable[[int], object] | None = None,
    ) -> None:
        self._store = store
        #: Told how many entries were dropped, as they are (the dispatcher's metric).
        self._on_dropped = on_dropped
        self._clock = clock
        #: Whether calls are logged at all (a SQL store, and the setting on).
        self.enabled = enabled and store is not None
        #: The share of successes kept, and the draw that decides (the dispatcher checks
        #: ``rand() < sample_rate`` inline: the one cost a successful call pays).
        self.sample_rate = sample_rate
        self._max = queue_size
        self._batch = batch_size
        self._flush_seconds = flush_seconds
        self._max_age = max_age_seconds
        self._max_per_tenant = max_per_tenant
        self._purge_seconds = purge_seconds
        self.rand = rand
        self._queue: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._next_purge: float | None = None
        self._touched: set[str] = set()
        #: Entries dropped because the queue was full.
        self.dropped_queue_full = 0
        #: Entries dropped because they could not be written (the store failed).
        self.dropped_store_error = 0
        #: Entries written.
        self.written = 0

    @property
    def dropped(self) -> int:
        """Entries dropped for any reason (queue full or store failure)."""
        return self.dropped_queue_full + self.dropped_store_error

    @property
    def queued(self) -> int:
        """Entries waiting to be written."""
        return len(self._queue)

    # -- the hot path: an append, or a count --------------------------------------------------

    def failed(
        self,
        tenant_id: str,
        webhook: str,
        detail: str,
        delivery: Delivery | None,
        problems: tuple[str, ...] = (),
    ) -> None:
        """Queue a failed call (never blocks; a full queue drops and counts it)."""
        self._put(_Entry(self._clock.wall(), tenant_id, webhook, detail, delivery, problems))

    def succeeded(
        self, tenant_id: str, webhook: str, delivery: Delivery, problems: tuple[str, ...]
    ) -> None:
        """Queue a successful call (sampled, or with problem lines)."""
        self._put(_Entry(self._clock.wall(), tenant_id, webhook, None, delivery, problems))

    def _put(self, entry: _Entry) -> None:
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped_queue_full += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        queue.append(entry)
        if len(queue) >= self._batch:
            self._wake.set()

    # -- the writer ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background writer (idempotent; nothing to do when not enabled)."""
        if self.enabled and self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._serve(), name="vizochok-call-log")

    async def aclose(self) -> None:
        """Stop the writer once its round ends (a write under way is not cut short), write
        what is queued (dropped and counted if the store fails), and close the store's
        connections."""
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            self._wake.set()
            try:
                await task
            finally:
                task.cancel()  # only if this close was itself cancelled
        await self.flush()
        if self._store is not None:
            await self._store.close()

    async def _serve(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return  # aclose writes what is left
            try:
                await self.flush()
                await self._purge_when_due()
            except Exception:
                _log.exception("call_log.internal_error")

    async def flush(self) -> None:
        """Write every entry queued now, in batches (tests call it to see entries at once).

        When a batch cannot be written (the store fails, or anything else goes wrong), that
        batch and the rest of what was queued when the flush began are dropped and counted:
        one failed write per flush, however long the queue (entries queued meanwhile wait for
        the next flush).  A flush cancelled mid-write counts its batch as dropped.
        """
        if self._store is None:
            return
        async with self._writing:
            pending = len(self._queue)
            while pending > 0 and self._queue:
                batch = [self._queue.popleft() for _ in range(min(self._batch, pending))]
                pending -= len(batch)
                try:
                    await self._store.insert([_row(entry) for entry in batch])
                except asyncio.CancelledError:
                    self._count_dropped(len(batch))
                    raise
                except Exception as exc:
                    rest = min(pending, len(self._queue))
                    for _ in range(rest):
                        self._queue.popleft()
                    lost = len(batch) + rest
                    self._count_dropped(lost)
                    if isinstance(exc, StoreError):
                        _log.warning("call_log.store_error", error=str(exc), dropped=lost)
                    else:
                        _log.exception("call_log.internal_error", dropped=lost)
                    return
                self.written += len(batch)
                self._touched.update(entry.tenant_id for entry in batch)

    def _count_dropped(self, count: int) -> None:
        self.dropped_store_error += count
        if self._on_dropped is not None:
            self._on_dropped(count)

    async def _purge_when_due(self) -> None:
        now = self._clock.monotonic()
        if self._next_purge is None:
            self._next_purge = now + self._purge_seconds
        if now >= self._next_purge:
            self._next_purge = now + self._purge_seconds
            await self.purge()

    async def purge(self) -> int:
        """Delete what retention no longer keeps (bounded; see ``CallLogStore.purge``).

        The count limit is checked for the tenants written since the last purge (and those a
        bounded purge left unchecked). Returns the entries deleted; a store failure is logged
        and deletes nothing.
        """
        if self._store is None:
            return 0
        tenants, self._touched = self._touched, set()
        older_than = None
        if self._max_age > 0:
            older_than = datetime.fromtimestamp(self._clock.wall(), UTC) - timedelta(
                seconds=self._max_age
            )
        try:
            deleted, unfinished = await self._store.purge(
                older_than=older_than,
                keep_per_tenant=self._max_per_tenant or None,
                tenants=sorted(tenants),
            )
        except StoreError as exc:
            self._touched |= tenants
            _log.warning("call_log.purge_failed", error=str(exc))
            return 0
        self._touched.update(unfinished)
        return deleted

    # -- reading -------------------------------------------------------------------------------

    async def calls(
        self,
        tenant_id: str,
        *,
        webhook: str | None = None,
        outcome: str | None = None,
        detail: str | None = None,
        delivery_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> Page[LoggedCall]:
        """One page of the tenant's call log, newest first.

        Filters, all optional and combined: ``webhook`` (``products``, ``cart``,
        ``cart_get``); ``outcome`` (``ok``, ``failed``); ``detail`` (a failure detail,
        docs/webhooks.md §3); ``delivery_id``; ``since`` (inclusive) and ``until``
        (exclusive), aware datetimes, on when the call ended.  ``limit`` is 1-100 (50 by
        default).  ``cursor`` is the previous page's ``next_cursor``: pages stay correct while
        new entries arrive (none is shown twice or skipped).

        Raises :class:`InvalidCall` naming the argument, or on a store that is not SQL;
        :class:`StoreError` when the database fails.
        """
        if self._store is None:
            raise InvalidCall(
                "the call log needs a SQL database: build the dispatcher with "
                "Dispatcher.from_database_url(...) or on a SqlConfigStore"
            )
        where = call_filter(
            webhook=webhook,
            outcome=outcome,
            detail=detail,
            delivery_id=delivery_id,
            since=since,
            until=until,
        )
        if (problem := limit_problem(limit, MAX_PAGE)) is not None:
            raise InvalidCall(f"limit {problem}")
        position = decode_cursor(cursor) if cursor is not None else None
        if _tenant_id_problem(tenant_id) is not None:
            return Page(())
        return await self._store.page(tenant_id, where, cursor=position, limit=limit)


def call_filter(
    *,
    webhook: str | None,
    outcome: str | None,
    detail: str | None,
    delivery_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> CallFilter:
    """The filter these arguments describe; :class:`InvalidCall` naming the first one that
    is not a value the log holds."""
    if webhook is not None and webhook not in WEBHOOKS:
        raise InvalidCall(f"webhook must be one of {', '.join(WEBHOOKS)}")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidCall(f"outcome must be one of {', '.join(OUTCOMES)}")
    for name, value in (("detail", detail), ("delivery_id", delivery_id)):
        if value is not None and (problem := text_problem(value, ID_FILTER)) is not None:
            raise InvalidCall(f"{name} {problem}")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and (not isinstance(moment, datetime) or moment.utcoffset() is None):
            raise InvalidCall(f"{name} must be a timezone-aware datetime")
    return CallFilter(
        webhook=webhook,
        outcome=outcome,  # type: ignore[arg-type]  # checked against OUTCOMES above
        detail=detail,
        delivery_id=delivery_id,
        since=since,
        until=until,
    )


def _row(entry: _Entry) -> dict[str, Any]:
    """The ``webhook_calls`` row of an entry: ids, statuses, times and the 4 KiB only."""
    delivery = entry.delivery
    error_body = delivery.error_body if delivery is not None else None
    return {
        "id": new_id(CALL_PREFIX, entry.wall),
        "tenant_id": entry.tenant_id,
        "webhook": entry.webhook,
        "at": datetime.fromtimestamp(entry.wall, UTC),
        "outcome": "ok" if entry.detail is None else "failed",
        "detail": entry.detail,
        "delivery_id": delivery.delivery_id if delivery is not None else None,
        "status_code": delivery.status if delivery is not None else None,
        "latency_ms": delivery.elapsed_ms if delivery is not None else None,
        "attempts": [attempt_dict(attempt) for attempt in (delivery.attempts if delivery else ())],
        "problems": [line[:MAX_PROBLEM_CHARS] for line in entry.problems[:MAX_PROBLEMS]],
        "response": (
            error_body.data[:RESPONSE_BYTES]
            if error_body is not None and error_body.data is not None
            else None
        ),
    }
