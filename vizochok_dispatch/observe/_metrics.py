"""Prometheus metrics of the synchronous webhooks, the config cache and event deliveries.

One :class:`Metrics` per dispatcher, on a ``CollectorRegistry`` of its own (or the one the
host passes, to merge ours with its series).  The admin app serves it at ``GET /metrics``;
a host that exports metrics itself calls :meth:`Metrics.refresh` before its scrape (the
event backlog is read from the database then) and reads :attr:`Metrics.registry`.

Cost on the call path: the per-call series are plain counts and bucket arrays kept per
webhook (:class:`WebhookSeries`), turned into Prometheus counters and histograms when
scraped, so a call adds a few integer increments and two bucket look-ups (well under a
microsecond), no lock and no allocation.  Per-tenant labels (``tenant_labels=True``,
``VIZOCHOK_METRICS_TENANT_LABELS``) add a ``tenant`` label to the per-call series and the
circuit gauge: one series set per tenant, kept for the life of the process, so memory and
scrape size grow with the number of tenants that were called (about 60 series, a few KiB,
per tenant and webhook).

Labels carry only fixed words (webhook names, outcomes, the contract's failure details,
circuit states) and, when switched on, tenant ids: never a URL, header, secret or body.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

_log = structlog.get_logger("vizochok_dispatch")

#: Latency buckets in seconds: 5 ms (a local tenant) up to 30 s (the longest timeout).
LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
)
#: The ``detail`` label of a success.
NONE: Final = "none"
#: The failure details a label may carry (docs/webhooks.md §3 and §9); anything else is
#: ``other``, so no text from outside ever becomes a label value.
KNOWN_DETAILS: Final = frozenset(
    {
        "timeout",
        "connect_error",
        "blocked_destination",
        "http_status",
        "invalid_response",
        "not_configured",
        "circuit_open",
        "bulkhead_full",
        "store_error",
        "internal_error",
        "endpoint_disabled",
    }
)
CIRCUIT_STATES: Final = ("closed", "open", "half_open")
#: Content type of :meth:`Metrics.exposition` (Prometheus text format 0.0.4).
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST


def detail_label(detail: str | None) -> str:
    """The ``detail`` label for a failure detail: ``none`` for a success, ``other`` for
    anything that is not one of the contract's details."""
    if detail is None:
        return NONE
    return detail if detail in KNOWN_DETAILS else "other"


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What the config cache reports at scrape time."""

    hits: int
    misses: int
    #: Seconds since the store last confirmed the least recently confirmed cached config.
    refresh_lag_seconds: float


@dataclass(frozen=True, slots=True)
class CallLogStats:
    """What the synchronous call log reports at scrape time."""

    written: int
    #: Waiting to be written.
    queued: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """Event deliveries waiting, read from the database at scrape time."""

    #: Deliveries due now (capped by the reader: a count of ``cap`` means "at least").
    due: int
    #: Seconds since the oldest due delivery became due; 0 when none is due.
    oldest_due_age_seconds: float
    #: Event endpoints disabled (by a 410, or by the tenant).
    disabled_endpoints: int


class _Histogram:
    """One histogram's buckets (per :data:`LATENCY_BUCKETS`, then +Inf) and sum."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # the first bucket whose bound is >= seconds: Prometheus' ``le``
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by ``le``, as the exposition format wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(_LE, self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


def float_label(bound: float) -> str:
    """An ``le`` value as prometheus_client writes it (``0.005``, ``1.0``)."""
    return repr(float(bound))


_LE: Final = (*map(float_label, LATENCY_BUCKETS), "+Inf")


class WebhookSeries:
    """The counts of one webhook (and one tenant's, with tenant labels).

    The call path only adds to plain numbers here (one event loop owns a dispatcher, so no
    lock is needed, and a call costs well under a microsecond); a scrape turns them into
    Prometheus counters and histograms (:class:`_ScrapeTime`).
    """

    __slots__ = (
        "attempt_seconds",
        "attempts",
        "bulkhead_rejections",
        "call_failure_seconds",
        "call_ok_seconds",
        "calls",
        "labels",
        "retries",
    )

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        #: Calls and attempts by failure detail (``None``: success).
        self.calls: dict[str | None, int] = {}
        self.attempts: dict[str | None, int] = {}
        self.call_ok_seconds = _Histogram()
        self.call_failure_seconds = _Histogram()
        self.attempt_seconds = _Histogram()
        self.retries = 0
        self.bulkhead_rejections = 0

    def call(self, detail: str | None, seconds: float) -> None:
        """One call ended with ``detail`` (``None``: success) after ``seconds``."""
        calls = self.calls
        calls[detail] = calls.get(detail, 0) + 1
        (self.call_ok_seconds if detail is None else self.call_failure_seconds).observe(seconds)

    def attempt(self, detail: str | None, seconds: float) -> None:
        """One attempt (one HTTP request) ended with ``detail`` after ``seconds``."""
        attempts = self.attempts
        attempts[detail] = attempts.get(detail, 0) + 1
        self.attempt_seconds.observe(seconds)

    def retried(self) -> None:
        """An attempt after the first is about to be made."""
        self.retries += 1

    def rejected(self) -> None:
        """A call was refused because the tenant had too many in flight."""
        self.bulkhead_rejections += 1


class Metrics:
    """Every series this package exports (see the module docstring for the names' list).

    ``registry``: where to register (default: a new ``CollectorRegistry``, never the
    ``prometheus_client`` global one).  ``tenant_labels``: add a ``tenant`` label to the
    per-call series (off by default: its cost grows with the tenants).  ``backlog_seconds``:
    how long an event backlog read is reused; ``backlog_timeout_seconds``: how long a scrape
    waits for it (a slow database leaves the last values in place).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        tenant_labels: bool = False,
        backlog_seconds: float = 5.0,
        backlog_timeout_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.tenant_labels = tenant_labels
        self._backlog_seconds = backlog_seconds
        self._backlog_timeout = backlog_timeout_seconds
        self._clock = clock
        r = self.registry
        who = ("tenant", "webhook") if tenant_labels else ("webhook",)
        per = ("tenant",) if tenant_labels else ()
        self.circuit_transitions = Counter(
            "vizochok_webhook_circuit_transitions",
            "Circuit state changes, by webhook and the states before and after.",
            [*who, "from_state", "to_state"],
            registry=r,
        )
        self.event_attempts = Counter(
            "vizochok_event_attempts",
            "Event delivery attempts, by what they made of the delivery "
            "(delivered, retrying, failed) and the failure detail.",
            [*per, "outcome", "detail"],
            registry=r,
        )
        self.event_attempt_seconds = Histogram(
            "vizochok_event_attempt_duration_seconds",
            "One event delivery attempt's duration.",
            list(per),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_deliveries = Counter(
            "vizochok_event_deliveries",
            "Event deliveries finished, by outcome (delivered, failed).",
            [*per, "outcome"],
            registry=r,
        )
        self.event_backlog = Gauge(
            "vizochok_event_backlog_deliveries",
            "Event deliveries due now and not yet attempted (read at scrape time, capped).",
            registry=r,
        )
        self.event_backlog_age = Gauge(
            "vizochok_event_backlog_oldest_age_seconds",
            "Seconds since the oldest due event delivery became due (0: none is due).",
            registry=r,
        )
        self.event_endpoints_disabled = Gauge(
            "vizochok_event_endpoints_disabled",
            "Event endpoints disabled (by a 410 answer or by their tenant).",
            registry=r,
        )
        self.scrape_errors = Counter(
            "vizochok_metrics_refresh_errors",
            "Scrape-time reads (the event backlog) that failed or took too long.",
            registry=r,
        )
        #: The call log counts every entry it drops here (a full queue, a failed write).
        self.call_log_dropped = Counter(
            "vizochok_call_log_dropped",
            "Call log entries dropped instead of written (a full queue or a failed write).",
            registry=r,
        )
        self._series: dict[object, WebhookSeries] = {}
        self._circuits: Callable[[], Iterable[tuple[str, str, str]]] | None = None
        self._cache: Callable[[], CacheStats] | None = None
        self._call_log: Callable[[], CallLogStats] | None = None
        self._backlog: Callable[[], Awaitable[Backlog]] | None = None
        self._backlog_at: float | None = None
        self._backlog_lock = asyncio.Lock()
        r.register(_ScrapeTime(self))

    # -- the call path --------------------------------------------------------------------

    def webhook(self, tenant_id: str, webhook: str) -> WebhookSeries:
        """The series of ``webhook`` (of ``tenant_id`` too, with tenant labels)."""
        key: object = (tenant_id, webhook) if self.tenant_labels else webhook
        series = self._series.get(key)
        if series is None:
            labels = (tenant_id, webhook) if self.tenant_labels else (webhook,)
            series = self._series[key] = WebhookSeries(labels)
        return series

    def circuit_changed(self, tenant_id: str, webhook: str, before: str, after: str) -> None:
        """A circuit went from ``before`` to ``after``."""
        who = (tenant_id, webhook) if self.tenant_labels else (webhook,)
        self.circuit_transitions.labels(*who, before, after).inc()

    def event_attempt(
        self, tenant_id: str, outcome: str, detail: str | None, seconds: float | None
    ) -> None:
        """One event delivery attempt made the delivery ``outcome`` (``delivered``,
        ``retrying`` or ``failed``); ``seconds`` is ``None`` when no request was made."""
        per = (tenant_id,) if self.tenant_labels else ()
        self.event_attempts.labels(*per, outcome, detail_label(detail)).inc()
        if seconds is not None:
            histogram = self.event_attempt_seconds
            (histogram.labels(*per) if per else histogram).observe(seconds)
        if outcome != "retrying":
            self.event_deliveries.labels(*per, outcome).inc()

    # -- scrape time ----------------------------------------------------------------------

    def watch_circuits(self, circuits: Callable[[], Iterable[tuple[str, str, str]]]) -> None:
        """Read ``(tenant, webhook, state)`` of every kept circuit at scrape time."""
        self._circuits = circuits

    def watch_config_cache(self, stats: Callable[[], CacheStats]) -> None:
        """Read the config cache's counts at scrape time."""
        self._cache = stats

    def watch_call_log(self, stats: Callable[[], CallLogStats]) -> None:
        """Read the call log's written and queued counts at scrape time (drops are pushed
        to :attr:`call_log_dropped` as they happen)."""
        self._call_log = stats

    def watch_event_backlog(self, backlog: Callable[[], Awaitable[Backlog]]) -> None:
        """Read the event backlog from the database in :meth:`refresh`."""
        self._backlog = backlog

    async def refresh(self) -> None:
        """Read what needs the database (the event backlog), at most once per
        ``backlog_seconds`` and within ``backlog_timeout_seconds``; never raises (a failed
        read keeps the last values and counts in ``vizochok_metrics_refresh_errors_total``)."""
        if self._backlog is None:
            return
        async with self._backlog_lock:  # concurrent scrapes share one read
            now = self._clock()
            if self._backlog_at is not None and now - self._backlog_at < self._backlog_seconds:
                return
            try:
                async with asyncio.timeout(self._backlog_timeout):
                    backlog = await self._backlog()
            except Exception as exc:
                self.scrape_errors.inc()
                _log.warning("metrics.backlog_failed", error=type(exc).__name__)
                return
            self._backlog_at = now
            self.event_backlog.set(backlog.due)
            self.event_backlog_age.set(backlog.oldest_due_age_seconds)
            self.event_endpoints_disabled.set(backlog.disabled_endpoints)

    async def exposition(self) -> bytes:
        """:meth:`refresh`, then every series in Prometheus' text format (:data:`CONTENT_TYPE`)."""
        await self.refresh()
        return generate_latest(self.registry)


class _ScrapeTime(Collector):
    """The series computed when scraped: circuits by state, the config cache's counts."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return ()  # computed at scrape time; nothing to check against other collectors

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        yield from self._webhook_series(list(metrics._series.values()), metrics.tenant_labels)
        if metrics._circuits is not None:
            yield self._circuit_gauge(metrics._circuits(), tenant=metrics.tenant_labels)
        if metrics._cache is not None:
            stats = metrics._cache()
            yield CounterMetricFamily(
                "vizochok_config_cache_hits",
                "Config lookups answered from the in-process cache.",
                value=stats.hits,
            )
            yield CounterMetricFamily(
                "vizochok_config_cache_misses",
                "Config lookups that read the store.",
                value=stats.misses,
            )
            yield GaugeMetricFamily(
                "vizochok_config_cache_refresh_lag_seconds",
                "Seconds since the store last confirmed the least recently confirmed cached "
                "config (the cross-process staleness bound at work).",
                value=stats.refresh_lag_seconds,
            )

        if metrics._call_log is not None:
            log = metrics._call_log()
            yield CounterMetricFamily(
                "vizochok_call_log_written",
                "Call log entries written to the store.",
                value=log.written,
            )
            yield GaugeMetricFamily(
                "vizochok_call_log_queued",
                "Call log entries waiting to be written.",
                value=log.queued,
            )

    @staticmethod
    def _webhook_series(every: list[WebhookSeries], tenant: bool) -> Iterator[Metric]:
        who = ["tenant", "webhook"] if tenant else ["webhook"]
        calls = CounterMetricFamily(
            "vizochok_webhook_calls",
            "Synchronous webhook calls, by webhook, outcome (ok, failed) and failure detail.",
            labels=[*who, "outcome", "detail"],
        )
        attempts = CounterMetricFamily(
            "vizochok_webhook_attempts",
            "HTTP requests made for synchronous webhook calls, by outcome and detail.",
            labels=[*who, "outcome", "detail"],
        )
        call_seconds = HistogramMetricFamily(
            "vizochok_webhook_call_duration_seconds",
            "Synchronous webhook calls' duration, config lookup and retries included.",
            labels=[*who, "outcome"],
        )
        attempt_seconds = HistogramMetricFamily(
            "vizochok_webhook_attempt_duration_seconds",
            "One HTTP request's duration (connect, send, read the answer).",
            labels=who,
        )
        retries = CounterMetricFamily(
            "vizochok_webhook_retries",
            "Synchronous webhook attempts after the first (a 5xx retried).",
            labels=who,
        )
        rejections = CounterMetricFamily(
            "vizochok_webhook_bulkhead_rejections",
            "Calls refused at once because the tenant had too many in flight.",
            labels=who,
        )
        for series in every:
            labels = list(series.labels)
            for family, counts in ((calls, series.calls), (attempts, series.attempts)):
                for detail, count in list(counts.items()):
                    outcome = "ok" if detail is None else "failed"
                    family.add_metric([*labels, outcome, detail_label(detail)], count)
            for outcome, histogram in (
                ("ok", series.call_ok_seconds),
                ("failed", series.call_failure_seconds),
            ):
                call_seconds.add_metric(
                    [*labels, outcome], histogram.buckets(), sum_value=histogram.total
                )
            attempt_seconds.add_metric(
                labels, series.attempt_seconds.buckets(), sum_value=series.attempt_seconds.total
            )
            retries.add_metric(labels, series.retries)
            rejections.add_metric(labels, series.bulkhead_rejections)
        yield from (calls, attempts, call_seconds, attempt_seconds, retries, rejections)

    @staticmethod
    def _circuit_gauge(circuits: Iterable[tuple[str, str, str]], *, tenant: bool) -> Metric:
        labels = ["tenant", "webhook", "state"] if tenant else ["webhook", "state"]
        family = GaugeMetricFamily(
            "vizochok_webhook_circuits",
            "Circuits by webhook and state (closed ones only once they have failed).",
            labels=labels,
        )
        counts: dict[tuple[str, ...], int] = {}
        for tenant_id, webhook, state in circuits:
            key: tuple[str, ...] = (tenant_id, webhook, state) if tenant else (webhook, state)
            counts[key] = counts.get(key, 0) + 1
        if not tenant:  # every webhook's open count is there, 0 included, for alerts
            for webhook in ("products", "cart", "cart_get"):
                for state in CIRCUIT_STATES:
                    counts.setdefault((webhook, state), 0)
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count)
        return family
