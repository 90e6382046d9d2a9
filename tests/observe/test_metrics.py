"""Prometheus metrics (issue 13): the series a scrape of the admin app shows after real calls
to a loopback tenant, per-tenant labels only when switched on, and nothing secret in them."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.events.support import example
from vizochok_dispatch import StoreError
from vizochok_dispatch.observe import Backlog, Metrics

from .support import QUERY_CANARY, SECRET, observed

pytestmark = pytest.mark.loopback


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_a_scrape_shows_calls_by_webhook_outcome_and_detail(tmp_path: Path):
    """After calls that succeed and fail four ways, /metrics counts each by its detail."""
    async with observed(tmp_path) as o:
        await o.configure("t-ok", o.server.url(f"/ok?token={QUERY_CANARY}"))
        await o.configure("t-down", o.server.url("/down"))
        await o.configure("t-garbage", o.server.url("/garbage"))
        await o.configure("t-refused", "http://127.0.0.1:1/nothing-listens")
        assert await o.products("t-ok") is None
        assert await o.products("t-ok") is None
        assert await o.products("t-down") == "http_status"
        assert await o.products("t-garbage") == "invalid_response"
        assert await o.products("t-refused") == "connect_error"
        assert await o.products("t-none") == "not_configured"
        response = await o.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    found = samples(text)
    calls = "vizochok_webhook_calls_total"
    assert value(found, calls, webhook="products", outcome="ok", detail="none") == 2
    for detail in ("http_status", "invalid_response", "connect_error", "not_configured"):
        assert value(found, calls, webhook="products", outcome="failed", detail=detail) == 1
    attempts = "vizochok_webhook_attempts_total"
    # the 500 was retried once: two attempts; not_configured made none
    assert value(found, attempts, webhook="products", outcome="failed", detail="http_status") == 2
    # an attempt is judged as HTTP: the garbage 200 is an ok attempt of a failed call
    assert value(found, attempts, webhook="products", outcome="ok", detail="none") == 3
    assert value(found, attempts, webhook="products", outcome="failed", detail="connect_error") == 1
    assert value(found, "vizochok_webhook_retries_total", webhook="products") == 1
    histogram = "vizochok_webhook_call_duration_seconds"
    assert value(found, f"{histogram}_count", webhook="products", outcome="ok") == 2
    assert value(found, f"{histogram}_count", webhook="products", outcome="failed") == 4
    assert value(found, f"{histogram}_bucket", webhook="products", outcome="ok", le="30.0") == 2
    assert value(found, f"{histogram}_bucket", webhook="products", outcome="ok", le="0.005") >= 0
    attempt_seconds = "vizochok_webhook_attempt_duration_seconds_count"
    assert value(found, attempt_seconds, webhook="products") == 6
    # the cache: saved configs are served from it; only the unknown tenant read the store
    assert value(found, "vizochok_config_cache_misses_total") == 1
    assert value(found, "vizochok_config_cache_hits_total") == 5
    assert ("vizochok_config_cache_refresh_lag_seconds", ()) in found
    assert value(found, "vizochok_webhook_circuits", webhook="products", state="open") == 0
    for gauge in (
        "vizochok_event_backlog_deliveries",
        "vizochok_event_backlog_oldest_age_seconds",
        "vizochok_event_endpoints_disabled",
    ):
        assert (gauge, ()) in found
    # the call log: the four failures queued or written, none dropped
    logged = value(found, "vizochok_call_log_written_total") + value(
        found, "vizochok_call_log_queued"
    )
    assert logged >= 4
    assert ("vizochok_call_log_dropped_total", ()) in found
    assert all("tenant" not in dict(labels) for _, labels in found), "off by default"
    assert "t-ok" not in text
    assert QUERY_CANARY not in text
    assert SECRET not in text
    assert "127.0.0.1" not in text, "no URL in a label"


async def test_circuit_state_transitions_and_bulkhead_rejections_are_counted(tmp_path: Path):
    """A circuit that opens shows in the open gauge and the transition counter; calls over
    the bulkhead cap are counted."""
    async with observed(tmp_path, circuit_failure_threshold=2) as o:
        await o.configure("t-down", o.server.url("/down"))
        await o.products("t-down")
        await o.products("t-down")
        assert await o.products("t-down") == "circuit_open"
        found = samples((await o.client.get("/metrics")).text)
    assert value(found, "vizochok_webhook_circuits", webhook="products", state="open") == 1
    transitions = "vizochok_webhook_circuit_transitions_total"
    assert value(found, transitions, webhook="products", from_state="closed", to_state="open") == 1
    calls = "vizochok_webhook_calls_total"
    assert value(found, calls, webhook="products", outcome="failed", detail="circuit_open") == 1


async def test_bulkhead_rejections_are_counted(tmp_path: Path):
    """A call refused because the tenant has too many in flight counts as a rejection."""
    async with observed(tmp_path, max_in_flight_per_tenant=1) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        series = o.dispatcher.metrics
        assert series is not None
        assert o.dispatcher._bulkhead.try_enter("t-ok")  # one call in flight already
        assert await o.products("t-ok") == "bulkhead_full"
        o.dispatcher._bulkhead.leave("t-ok")
        found = samples((await o.client.get("/metrics")).text)
    assert value(found, "vizochok_webhook_bulkhead_rejections_total", webhook="products") == 1


async def test_tenant_labels_when_switched_on(tmp_path: Path):
    """VIZOCHOK_METRICS_TENANT_LABELS adds the tenant to the per-call series."""
    async with observed(tmp_path, metrics_tenant_labels=True) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        await o.products("t-ok")
        found = samples((await o.client.get("/metrics")).text)
    calls = "vizochok_webhook_calls_total"
    assert value(found, calls, tenant="t-ok", webhook="products", outcome="ok", detail="none") == 1


async def test_the_hosts_registry_is_used_and_the_global_one_is_left_alone(tmp_path: Path):
    """A registry passed in gets our series; the default registry gets none of them."""
    registry = CollectorRegistry()
    async with observed(tmp_path, own_metrics=Metrics(registry)) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        await o.products("t-ok")
    ours = samples(generate_latest(registry).decode())
    assert (
        value(ours, "vizochok_webhook_calls_total", webhook="products", outcome="ok", detail="none")
        == 1
    )
    assert b"vizochok_" not in generate_latest(REGISTRY)


async def test_metrics_off_means_no_series_and_a_404(tmp_path: Path):
    """VIZOCHOK_METRICS=false: the dispatcher keeps none and /metrics is 404."""
    async with observed(tmp_path, metrics=False) as o:
        await o.configure("t-ok", o.server.url("/ok"))
        assert await o.products("t-ok") is None
        assert o.dispatcher.metrics is None
        assert (await o.client.get("/metrics")).status_code == 404


async def test_a_metrics_token_is_required_when_set(tmp_path: Path):
    """VIZOCHOK_METRICS_TOKEN set: /metrics without it (or with another) is 401."""
    async with observed(tmp_path, metrics_token="scrape-token-0123") as o:
        assert (await o.client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await o.client.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-token-0123"}
        assert (await o.client.get("/metrics", headers=right)).status_code == 200


def test_histogram_buckets_follow_prometheus_le():
    """A value on a bucket bound counts in that bucket; one past 30 s only in +Inf."""
    metrics = Metrics(CollectorRegistry())
    series = metrics.webhook("t", "products")
    for seconds in (0.005, 0.0051, 30.0, 31.0):
        series.attempt(None, seconds)
    found = samples(generate_latest(metrics.registry).decode())
    bucket = "vizochok_webhook_attempt_duration_seconds_bucket"
    assert value(found, bucket, webhook="products", le="0.005") == 1
    assert value(found, bucket, webhook="products", le="0.01") == 2
    assert value(found, bucket, webhook="products", le="30.0") == 3
    assert value(found, bucket, webhook="products", le="+Inf") == 4
    total = value(found, "vizochok_webhook_attempt_duration_seconds_sum", webhook="products")
    assert total == pytest.approx(61.0101)


async def test_event_series_and_the_backlog_read_at_scrape_time(database_url: str):
    """Event attempts by outcome, and the backlog (due count, oldest age, disabled endpoints)
    read from the database when scraped, on SQLite and PostgreSQL."""
    now = [0.0]
    metrics = Metrics(clock=lambda: now[0])
    async with observed(
        Path(), database_url=database_url, event_worker="off", own_metrics=metrics
    ) as o:
        events = o.dispatcher.events
        ok = await events.create_endpoint("t-ev", url=o.server.url("/ok"), event_types=["order.*"])
        down = await events.create_endpoint(
            "t-ev", url=o.server.url("/down"), event_types=["order.*"]
        )
        off = await events.create_endpoint(
            "t-ev", url=o.server.url("/ok"), event_types=["product.*"]
        )
        await events.update_endpoint("t-ev", off.id, enabled=False)
        await events.publish("t-ev", "order.created", data=example())
        before = samples((await o.client.get("/metrics")).text)
        for delivery in await events.deliveries("t-ev"):
            await events.deliver_due(delivery.id)
        same = samples((await o.client.get("/metrics")).text)
        now[0] += 5.0  # the backlog read is reused for 5 s
        after = samples((await o.client.get("/metrics")).text)
    assert ok.id != down.id
    assert value(before, "vizochok_event_backlog_deliveries") == 2
    assert value(before, "vizochok_event_backlog_oldest_age_seconds") >= 0
    assert value(before, "vizochok_event_endpoints_disabled") == 1
    assert value(same, "vizochok_event_backlog_deliveries") == 2, "read at most every 5 s"
    assert value(after, "vizochok_event_backlog_deliveries") == 0, "the retry is not due yet"
    attempts = "vizochok_event_attempts_total"
    assert value(after, attempts, outcome="delivered", detail="none") == 1
    assert value(after, attempts, outcome="retrying", detail="http_status") == 1
    assert value(after, "vizochok_event_deliveries_total", outcome="delivered") == 1
    assert value(after, "vizochok_event_attempt_duration_seconds_count") == 2


async def test_a_failed_backlog_read_keeps_the_last_values_and_is_counted():
    """The database failing at scrape time: the scrape still answers, the gauges keep what
    they had, and vizochok_metrics_refresh_errors_total counts it."""
    now = [0.0]
    metrics = Metrics(CollectorRegistry(), clock=lambda: now[0])
    answers: list[Backlog | Exception] = [Backlog(3, 12.5, 1), StoreError("database down")]

    async def backlog() -> Backlog:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics.watch_event_backlog(backlog)
    first = samples((await metrics.exposition()).decode())
    now[0] += 5.0
    second = samples((await metrics.exposition()).decode())
    assert value(first, "vizochok_event_backlog_deliveries") == 3
    assert value(second, "vizochok_event_backlog_deliveries") == 3
    assert value(second, "vizochok_event_backlog_oldest_age_seconds") == 12.5
    assert value(first, "vizochok_metrics_refresh_errors_total") == 0
    assert value(second, "vizochok_metrics_refresh_errors_total") == 1
