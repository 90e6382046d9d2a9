"""The delivery log on a large PostgreSQL log: filtered first and next pages, newest first.

Fills a database of its own with ``--log-deliveries`` deliveries (1,000,000 by default) of
``--log-tenants`` tenants (1,000), two endpoints each, through ``generate_series`` in a few
``INSERT ... SELECT`` statements (seconds, not an hour of publishing), with their events and
attempts; then reads pages of random tenants' logs, each filter's first page and the page
after it (its ``next_cursor``), through ``EventService.delivery_log`` and through the admin
API (``GET /api/v1/admin/deliveries`` over ASGI: the key check, validation and JSON
included).  ``EXPLAIN (ANALYZE)`` of the very statement each row ran names the index it used.
The target (issue 12) is under 50 ms for each page; nothing here asserts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import postgres
from bench.results import write_section
from vizochok_dispatch import Dispatcher, Page, SqlConfigStore, TenantDirectory
from vizochok_dispatch.admin import create_admin_app
from vizochok_dispatch.events._values import EventDelivery
from vizochok_dispatch.tenants._crypto import new_key_line

SECTION = "events-log"
#: When the filled log begins; it spans 30 days.
START = datetime(2026, 10, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
TYPES = ("order.created", "order.updated", "chat.session.created", "product.viewed")
PAGE = 50
TARGET_MS = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This section's options on ``python -m bench``."""
    parser.add_argument("--log-deliveries", type=int, default=1_000_000)
    parser.add_argument("--log-tenants", type=int, default=1_000)
    parser.add_argument("--log-samples", type=int, default=200, help="random tenants per row")


# -- filling ----------------------------------------------------------------------------------


def _fill_statements(deliveries: int, tenants: int) -> list[str]:
    """``INSERT ... SELECT generate_series`` for endpoints, events, deliveries and attempts.

    Event ``n`` belongs to tenant ``n % tenants``, goes to both of its endpoints, and is
    created at ``START + n * step``: each tenant's deliveries are spread over the whole month,
    interleaved with every other tenant's (no tenant's rows sit together on disk).  Every
    50th delivery failed after 3 attempts, every 97th is pending, the rest were delivered on
    attempt 1.
    """
    events = deliveries // 2
    step = SPAN.total_seconds() / events
    tenant = f"'tenant-' || lpad((n % {tenants})::text, 5, '0')"
    types = "ARRAY[" + ",".join(f"'{name}'" for name in TYPES) + "]"
    status = (
        "CASE WHEN (2 * n + e) % 50 = 0 THEN 'failed' "
        "WHEN (2 * n + e) % 97 = 0 THEN 'pending' ELSE 'delivered' END"
    )
    created = f"timestamptz '{START.isoformat()}' + n * interval '{step} seconds'"
    return [
        f"""INSERT INTO event_endpoints (id, tenant_id, url, event_types, signature_scheme,
            secret, timeout_seconds, ordered, description, enabled, last_sequence, created_at,
            updated_at)
        SELECT 'ep_' || lpad(n::text, 5, '0') || '_' || e, {tenant},
            'https://shop.example/hooks/' || e, '["*"]', 'vizochok', 'not-read-by-the-bench',
            15, false, NULL, true, 0, timestamptz '{START.isoformat()}',
            timestamptz '{START.isoformat()}'
        FROM generate_series(0, {tenants - 1}) n, generate_series(0, 1) e""",  # noqa: S608 - numbers
        f"""INSERT INTO events (id, tenant_id, event_type, body, idempotency_key, created_at)
        SELECT 'evt_' || lpad(n::text, 9, '0'), {tenant},
            ({types})[1 + (n / {tenants}) % {len(TYPES)}],
            convert_to('{{"id":"evt_' || n || '","data":{{}}}}', 'UTF8'), NULL, {created}
        FROM generate_series(0, {events - 1}) n""",  # noqa: S608 - numbers and constants
        f"""INSERT INTO event_deliveries (id, event_id, endpoint_id, tenant_id, event_type,
            status, attempts, next_attempt_at, claimed_until, claim_token, sequence, detail,
            created_at, updated_at)
        SELECT 'dlv_' || lpad(n::text, 9, '0') || '_' || e, 'evt_' || lpad(n::text, 9, '0'),
            'ep_' || lpad((n % {tenants})::text, 5, '0') || '_' || e, {tenant},
            ({types})[1 + (n / {tenants}) % {len(TYPES)}], s.status,
            CASE s.status WHEN 'failed' THEN 3 WHEN 'pending' THEN 0 ELSE 1 END,
            CASE s.status WHEN 'pending' THEN {created} ELSE NULL END, NULL, NULL, NULL,
            CASE s.status WHEN 'failed' THEN 'http_status' ELSE NULL END, {created}, {created}
        FROM generate_series(0, {events - 1}) n, generate_series(0, 1) e,
            LATERAL (SELECT {status} AS status) s""",  # noqa: S608 - numbers and constants
        """INSERT INTO event_attempts (delivery_id, number, status_code, latency_ms, detail,
            reason, response, attempted_at, trigger)
        SELECT d.id, g, CASE d.status WHEN 'failed' THEN 503 ELSE 200 END, 12.5,
            CASE d.status WHEN 'failed' THEN 'http_status' ELSE NULL END, NULL,
            convert_to('ok', 'UTF8'), d.created_at + g * interval '1 minute', 'scheduled'
        FROM event_deliveries d, generate_series(1, d.attempts) g""",
        "ANALYZE",
    ]


async def fill(url: str, deliveries: int, tenants: int) -> float:
    """Migrate ``url`` and fill it; the seconds it took."""
    store = SqlConfigStore(url, auto_migrate=True, statement_timeout_seconds=3600.0)
    started = time.perf_counter()
    try:
        await store.open()
        async with store.engine.begin() as conn:
            for statement in _fill_statements(deliveries, tenants):
                await conn.execute(text(statement))
    finally:
        await store.close()
    return time.perf_counter() - started


# -- reading ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One kind of page, measured on many tenants."""

    name: str
    first_ms: list[float] = field(default_factory=list)
    next_ms: list[float] = field(default_factory=list)
    api_first_ms: list[float] = field(default_factory=list)
    api_next_ms: list[float] = field(default_factory=list)
    first_plan: str = ""
    next_plan: str = ""


def _filters(tenant: int) -> dict[str, dict[str, Any]]:
    """Each row's filters for tenant number ``tenant``."""
    week = START + timedelta(days=10)
    return {
        "no filter": {},
        "status=failed": {"status": "failed"},
        "status=delivered": {"status": "delivered"},
        "endpoint": {"endpoint_id": f"ep_{tenant:05d}_1"},
        "event type": {"event_type": TYPES[tenant % len(TYPES)]},
        "one week": {"since": week, "until": week + timedelta(days=7)},
        "endpoint + failed": {"endpoint_id": f"ep_{tenant:05d}_0", "status": "failed"},
    }


@contextmanager
def _captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The statements ``engine`` runs in the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:  # noqa: ANN401
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def _plan(engine: AsyncEngine, statement: str, parameters: Any) -> str:  # noqa: ANN401
    """Which indexes the statement's plan scans, and its execution time."""
    async with engine.connect() as conn:
        found = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
        )
        document = found.scalar_one()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]
    indexes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            indexes.append(f"{node['Node Type']} on {node['Index Name']}")
        elif node.get("Node Type") == "Seq Scan":
            indexes.append(f"Seq Scan on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return f"{'; '.join(indexes)} ({plan['Execution Time']:.2f} ms)"


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _service_pages(
    d: Dispatcher, tenant_id: str, filters: dict[str, Any]
) -> tuple[Page[EventDelivery], float, float | None]:
    """The first page and the next one by the service: the first page, and each one's ms."""
    started = time.perf_counter()
    page = await d.events.delivery_log(tenant_id, limit=PAGE, **filters)
    first_ms = _since(started)
    if page.next_cursor is None:
        return page, first_ms, None
    started = time.perf_counter()
    await d.events.delivery_log(tenant_id, limit=PAGE, cursor=page.next_cursor, **filters)
    return page, first_ms, _since(started)


async def _api_pages(
    client: httpx.AsyncClient, key: str, filters: dict[str, Any]
) -> tuple[float, float | None]:
    """The same two pages through the admin API: each one's ms."""
    params = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
    params["limit"] = PAGE
    headers = {"Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    answer = await client.get("/api/v1/admin/deliveries", params=params, headers=headers)
    first_ms = _since(started)
    assert answer.status_code == 200, answer.text
    if (cursor := answer.json()["next_cursor"]) is None:
        return first_ms, None
    started = time.perf_counter()
    answer = await client.get(
        "/api/v1/admin/deliveries", params={**params, "cursor": cursor}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return first_ms, _since(started)


async def measure(url: str, tenants: int, samples: int) -> tuple[list[Row], tuple[float, float]]:
    """Each row's first and next page for ``samples`` random tenants, by the service and the
    admin API; the plans of one sample."""
    d = Dispatcher.from_database_url(
        url, auto_migrate=False, secret_keys=new_key_line("bench"), event_worker="off"
    )
    rows: dict[str, Row] = {}
    before = os.getloadavg()[0]
    rng = random.Random(12)
    async with d:
        store = d.store.inner
        assert isinstance(store, SqlConfigStore)
        directory = TenantDirectory.for_store(store)
        keys: dict[int, str] = {}
        app = create_admin_app(d.settings, dispatcher=d)
        engine = d.events._parts()[0]._engine
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://admin.bench"
            ) as client,
        ):
            picked = [rng.randrange(tenants) for _ in range(samples)]
            for number in picked:
                tenant_id = f"tenant-{number:05d}"
                if number not in keys:
                    _, issued = await directory.create_tenant(tenant_id, tenant_id=tenant_id)
                    keys[number] = issued.key
            # the first tenant twice: its first round warms the pools up and is not counted
            for index, number in enumerate([picked[0], *picked]):
                tenant_id = f"tenant-{number:05d}"
                warm = index == 0
                for name, filters in _filters(number).items():
                    row = rows.setdefault(name, Row(name))
                    page, first_ms, next_ms = await _service_pages(d, tenant_id, filters)
                    api_first, api_next = await _api_pages(client, keys[number], filters)
                    if warm:
                        continue
                    row.first_ms.append(first_ms)
                    row.api_first_ms.append(api_first)
                    if next_ms is not None:
                        row.next_ms.append(next_ms)
                    if api_next is not None:
                        row.api_next_ms.append(api_next)
                    if not row.first_plan:
                        row.first_plan, row.next_plan = await _plans(
                            d, engine, tenant_id, filters, page
                        )
    return list(rows.values()), (before, os.getloadavg()[0])


async def _plans(
    d: Dispatcher,
    engine: AsyncEngine,
    tenant_id: str,
    filters: dict[str, Any],
    first: Page[EventDelivery],
) -> tuple[str, str]:
    """The plans of the first page's and the next page's delivery query."""
    plans = []
    for cursor in (None, first.next_cursor):
        if cursor is None and plans:
            plans.append("(no next page)")
            continue
        with _captured(engine) as seen:
            await d.events.delivery_log(tenant_id, limit=PAGE, cursor=cursor, **filters)
        statement, parameters = next(s for s in seen if "FROM event_deliveries" in s[0])
        plans.append(await _plan(engine, statement, parameters))
    return plans[0], plans[1]


# -- reporting --------------------------------------------------------------------------------


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else float("nan")


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {_p(values, 0.99):.1f}"


def render(
    rows: list[Row], args: argparse.Namespace, fill_seconds: float, load: tuple[float, float]
) -> str:
    """The section of RESULTS.md."""
    worst = max((max(v) for r in rows for v in (r.first_ms, r.next_ms) if v), default=float("nan"))
    p99 = max((_p(v, 0.99) for r in rows for v in (r.first_ms, r.next_ms) if v), default=0)
    out = [
        "## Delivery log on PostgreSQL (issue 12)",
        "",
        f"{args.log_deliveries:,} deliveries of {args.log_tenants:,} tenants (two endpoints "
        f"each, their events and attempts) filled in {fill_seconds:.0f} s by generate_series; "
        f"pages of {PAGE}, newest first, {args.log_samples} random tenants per row. "
        "`python -m bench --only events-log` "
        "(`--log-deliveries`, `--log-tenants`, `--log-samples`).",
        "",
        "p50 / p99 ms: through `EventService.delivery_log` (the page's query and its "
        "attempts), and through the admin API (`GET /api/v1/admin/deliveries` over ASGI: the "
        "key check, validation and JSON too). Target: under 50 ms each. The machine's load "
        f"average (1 min) was {load[0]:.1f} before the reads and {load[1]:.1f} after them "
        f"({os.cpu_count()} CPUs): the Python side of a page waits for the CPU when it is busy.",
        "",
        "| filter | first page | next page | API first page | API next page |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        out.append(
            f"| {row.name} | {_cell(row.first_ms)} | {_cell(row.next_ms)} | "
            f"{_cell(row.api_first_ms)} | {_cell(row.api_next_ms)} |"
        )
    out += [
        "",
        f"Slowest service page of the run: {worst:.1f} ms; highest p99: {p99:.1f} ms "
        f"({'under' if p99 < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target).",
        "",
        "What PostgreSQL ran (`EXPLAIN (ANALYZE)` of the statement itself, one sample tenant):",
        "",
        "| filter | first page | next page |",
        "| --- | --- | --- |",
    ]
    out += [f"| {row.name} | {row.first_plan} | {row.next_plan} |" for row in rows]
    return "\n".join(out)


def run(args: argparse.Namespace, sections: set[str]) -> None:
    """Fill, measure and write this section when ``sections`` asks for it."""
    if SECTION not in sections:
        return
    # no nginx to keep apart from here: the reads may use every CPU, as the database does
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    with postgres.server() as server:

        async def go() -> tuple[list[Row], tuple[float, float], float]:
            async with postgres.database(server, prefix="vizochok_bench_log_") as url:
                print(
                    f"filling {args.log_deliveries:,} deliveries of {args.log_tenants:,} "
                    "tenants ...",
                    flush=True,
                )
                seconds = await fill(url, args.log_deliveries, args.log_tenants)
                print(f"filled in {seconds:.0f} s; reading pages ...", flush=True)
                rows, load = await measure(url, args.log_tenants, args.log_samples)
                return rows, load, seconds

        rows, load, seconds = asyncio.run(go())
    write_section(SECTION, render(rows, args, seconds, load))
    print("wrote the delivery log section of bench/RESULTS.md", flush=True)
