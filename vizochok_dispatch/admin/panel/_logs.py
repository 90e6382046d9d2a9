"""The panel's call log and health pages (issue 13's synchronous call log).

Health reads the call log, not the metrics: the log is per tenant and kept for days, while
the Prometheus series are per process since its start and carry no tenant unless
``VIZOCHOK_METRICS_TENANT_LABELS`` is on.  The log holds every failed call and a sample of
the successful ones (``VIZOCHOK_CALL_LOG_SAMPLE_RATE``), so failures are counted exactly and
the successes and latencies are those of the sample; the page says so.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..._exceptions import InvalidCall
from ...webhooks._calllog import DEFAULT_PAGE, MAX_PAGE
from ...webhooks._calllog_store import LoggedCall
from ._pages import WEBHOOKS
from ._web import PREFIX, context_of, page, require_session

router = APIRouter(prefix=PREFIX, include_in_schema=False)

HOURS: Final = 24
#: Call log entries read per webhook for the health page at most (the newest).
MAX_READ: Final = 2000
OUTCOMES: Final = ("ok", "failed")


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` 0-1) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class Hour:
    """One hour of a webhook's logged calls."""

    start: datetime
    calls: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float | None:
        """Median latency, ms."""
        return percentile(self.latencies, 0.5)

    @property
    def p95(self) -> float | None:
        """95th percentile latency, ms."""
        return percentile(self.latencies, 0.95)


@dataclass
class Health:
    """A webhook's last 24 hours from the call log."""

    webhook: str
    label: str
    circuit: str
    hours: list[Hour]
    failures_by_detail: Counter[str]
    truncated: bool

    @property
    def calls(self) -> int:
        """Calls logged."""
        return sum(hour.calls for hour in self.hours)

    @property
    def failures(self) -> int:
        """Failed calls logged (all of them)."""
        return sum(hour.failures for hour in self.hours)

    @property
    def p50(self) -> float | None:
        """Median latency over the day, ms."""
        return percentile([v for hour in self.hours for v in hour.latencies], 0.5)

    @property
    def p95(self) -> float | None:
        """95th percentile latency over the day, ms."""
        return percentile([v for hour in self.hours for v in hour.latencies], 0.95)


def summarise(
    webhook: str,
    label: str,
    circuit: str,
    calls: list[LoggedCall],
    now: datetime,
    *,
    truncated: bool,
) -> Health:
    """Hourly buckets (oldest first) of ``calls`` over the :data:`HOURS` before ``now``."""
    first = now - timedelta(hours=HOURS)
    hours = [Hour(start=first + timedelta(hours=i)) for i in range(HOURS)]
    by_detail: Counter[str] = Counter()
    for call in calls:
        # the newest hour ends at ``now`` included (a call logged this instant is in it)
        index = HOURS - 1 - int((now - call.at).total_seconds() // 3600)
        if not 0 <= index < HOURS:
            continue
        hour = hours[index]
        hour.calls += 1
        if call.outcome != "ok":
            hour.failures += 1
            by_detail[call.detail or "unknown"] += 1
        if call.latency_ms is not None:
            hour.latencies.append(call.latency_ms)
    return Health(webhook, label, circuit, hours, by_detail, truncated)


def bars_svg(health: Health, *, width: int = 480, height: int = 110) -> dict[str, Any]:
    """The geometry of the calls chart: one bar per hour, failures in red at its foot."""
    top = max((hour.calls for hour in health.hours), default=0) or 1
    step = width / HOURS
    bars = []
    for i, hour in enumerate(health.hours):
        total = hour.calls / top * (height - 20)
        failed = hour.failures / top * (height - 20)
        bars.append(
            {
                "x": round(i * step + 1, 1),
                "w": round(step - 2, 1),
                "ok_y": round(height - total, 1),
                "ok_h": round(total - failed, 1),
                "bad_y": round(height - failed, 1),
                "bad_h": round(failed, 1),
                "title": f"{hour.start:%H}:00 UTC: {hour.calls} calls, {hour.failures} failed",
            }
        )
    return {"width": width, "height": height, "top": top, "bars": bars}


def lines_svg(health: Health, *, width: int = 480, height: int = 110) -> dict[str, Any]:
    """The geometry of the latency chart: p50 and p95 per hour (hours without calls skipped)."""
    top = max((hour.p95 or 0.0 for hour in health.hours), default=0.0) or 1.0
    step = width / HOURS

    def points(pick: str) -> list[tuple[float, float]]:
        found = []
        for i, hour in enumerate(health.hours):
            value = getattr(hour, pick)
            if value is not None:
                found.append(
                    (round(i * step + step / 2, 1), round(height - value / top * (height - 20), 1))
                )
        return found

    return {
        "width": width,
        "height": height,
        "top": top,
        "p50": points("p50"),
        "p95": points("p95"),
    }


@router.get("/health")
async def health_page(request: Request) -> Response:
    """Per webhook: its circuit, and the last 24 hours of calls, failures by detail and
    latency p50/p95, drawn as server-rendered SVG."""
    session = await require_session(request)
    context = context_of(request)
    dispatcher = context.dispatcher
    config = await dispatcher.store.inner.get_config(session.tenant.id)
    circuits = {} if config is None else dispatcher.circuit_states(session.tenant.id, config)
    now = dispatcher.now()
    shown = []
    for webhook, label, _ in WEBHOOKS:
        calls: list[LoggedCall] = []
        cursor = None
        while len(calls) < MAX_READ:
            found = await dispatcher.call_log.calls(
                session.tenant.id,
                webhook=webhook,
                since=now - timedelta(hours=HOURS),
                limit=MAX_PAGE,
                cursor=cursor,
            )
            calls.extend(found.items)
            cursor = found.next_cursor
            if cursor is None:
                break
        health = summarise(
            webhook,
            label,
            circuits.get(webhook, "closed"),
            calls,
            now,
            truncated=cursor is not None,
        )
        shown.append((health, bars_svg(health), lines_svg(health)))
    return page(
        request,
        "health.html",
        session,
        shown=shown,
        configured=config is not None,
        sample_rate=context.settings.call_log_sample_rate,
        max_read=MAX_READ,
    )


def _call_filters(request: Request) -> dict[str, str]:
    names = ("webhook", "outcome", "detail", "delivery_id", "hours")
    return {name: request.query_params.get(name, "").strip() for name in names}


@router.get("/calls")
async def calls_page(request: Request) -> Response:
    """The synchronous call log, newest first, filtered, a page at a time."""
    session = await require_session(request)
    context = context_of(request)
    shown = _call_filters(request)
    errors: dict[str, str] = {}
    since = None
    if shown["hours"]:
        try:
            since = context.dispatcher.now() - timedelta(hours=float(shown["hours"]))
        except (ValueError, OverflowError):
            errors["hours"] = "must be a number of hours"
    entries: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        try:
            found = await context.dispatcher.call_log.calls(
                session.tenant.id,
                webhook=shown["webhook"] or None,
                outcome=shown["outcome"] or None,
                detail=shown["detail"] or None,
                delivery_id=shown["delivery_id"] or None,
                since=since,
                limit=DEFAULT_PAGE,
                cursor=request.query_params.get("cursor") or None,
            )
        except InvalidCall as exc:
            name, _, problem = str(exc).partition(" ")
            errors[name] = problem
        else:
            entries = [call.as_dict() for call in found.items]
            next_cursor = found.next_cursor
    return page(
        request,
        "calls.html",
        session,
        status=422 if errors else 200,
        calls=entries,
        next_cursor=next_cursor,
        filters=shown,
        errors=errors,
        webhooks=WEBHOOKS,
        outcomes=OUTCOMES,
        query={name: value for name, value in shown.items() if value},
    )
