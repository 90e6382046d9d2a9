"""Event webhooks' rows: publish rate and latency, idle end-to-end latency, memory over 100,000.

- **Publish**: ``Dispatcher.events.publish`` alone (worker off), back to back for a fixed time,
  on SQLite (the embedded default: a file database) and on PostgreSQL, to a tenant with one and
  with four subscribed endpoints, from one publisher and from 16 at once.
- **Idle end-to-end latency**: one event at a time, published while the embedded worker is
  idle, timed from the call to ``publish`` until a loopback receiver in this process has read
  the request (its ``X-VIZOCHOK-Delivery`` names the event).
- **Memory**: 100,000 deliveries by the embedded worker on SQLite to nginx's ``/fast``
  (outside this process, so the resident memory is the dispatcher's), published in batches;
  resident memory sampled after each batch.

Every endpoint is on 127.0.0.1, everything is bounded in count and time.  Nothing asserts a
timing: the targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web

from bench import postgres
from bench.nginx import Nginx
from bench.results import write_section
from bench.run import LOOPBACK, load, rss_mib
from vizochok_dispatch import EVENT_TYPES, Dispatcher
from vizochok_dispatch.tenants._crypto import new_key_line

TENANT = "bench-events"
EVENT_TYPE = "order.created"
ENGINES = ("sqlite", "postgresql")
#: Endpoints each event of the memory row fans out to (fewer commits to publish 100,000).
ENDPOINTS_FOR_MEMORY = 10
#: The idle end-to-end targets (issue 11), in ms of p50.
LATENCY_TARGET_MS = {"sqlite": 20.0, "postgresql": 50.0}


@dataclass
class PublishRow:
    engine: str
    endpoints: int
    publishers: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class LatencyRow:
    engine: str
    samples: int
    #: Of the whole: until ``publish`` returned (committed).
    publish_p50_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def target_ms(self) -> float:
        return LATENCY_TARGET_MS[self.engine]


@dataclass
class MemoryRow:
    deliveries: int
    seconds: float
    endpoints: int
    batch: int
    #: (deliveries so far, resident MiB, Python objects the collector tracks) after each
    #: sample's batch.
    samples: list[tuple[int, float, int]] = field(default_factory=list)

    @property
    def after_warmup(self) -> list[tuple[int, float, int]]:
        """The samples past the first fifth (imports, caches and pools filled by then)."""
        return self.samples[len(self.samples) // 5 :]

    @property
    def slope_mib_per_100k(self) -> float:
        """Least-squares slope of RSS over deliveries after warm-up, MiB per 100,000."""
        return _slope(self.after_warmup)

    @property
    def last_half_slope_mib_per_100k(self) -> float:
        """The same over the last half of the samples: whether growth goes on or levels."""
        return _slope(self.samples[len(self.samples) // 2 :])

    @property
    def objects_growth(self) -> float:
        """Python objects at the end over after warm-up, minus 1 (0.01: 1 % more)."""
        warm = self.after_warmup
        return warm[-1][2] / warm[0][2] - 1 if warm else 0.0

    @property
    def flat(self) -> bool:
        """No growth trend after warm-up: the last half's slope under 1 MiB per 100,000
        deliveries, and no more Python objects (under 1 % more) than after warm-up."""
        return (
            len(self.samples) >= 4
            and self.last_half_slope_mib_per_100k < 1.0
            and self.objects_growth < 0.01
        )


def _slope(points: Sequence[tuple[int, float, int]]) -> float:
    """Least-squares slope of RSS over deliveries, MiB per 100,000."""
    if len(points) < 2:
        return 0.0
    xs = [float(n) for n, _, _ in points]
    ys = [rss for _, rss, _ in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return cov / var * 100_000 if var else 0.0


@dataclass
class EventsReport:
    publish: list[PublishRow] = field(default_factory=list)
    latency: list[LatencyRow] = field(default_factory=list)
    memory: MemoryRow | None = None
    #: Per row kind: (seconds it took, load average when it ended).
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


@contextlib.asynccontextmanager
async def _database(engine: str, db_dir: Path, pg_server: str | None) -> AsyncIterator[str]:
    if engine == "sqlite":
        path = db_dir / f"events-{time.monotonic_ns()}.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    assert pg_server is not None
    async with postgres.database(pg_server) as url:
        yield url


def _dispatcher(url: str, **overrides: Any) -> Dispatcher:  # noqa: ANN401 - settings fields
    if not url.startswith("sqlite"):
        # PostgreSQL is a production database: it migrates on request and needs a key.
        overrides = {"auto_migrate": True, "secret_keys": new_key_line("bench"), **overrides}
    return Dispatcher.from_database_url(url, **LOOPBACK, **overrides)


async def _endpoints(d: Dispatcher, url: str, count: int) -> None:
    for _ in range(count):
        await d.events.create_endpoint(TENANT, url=url, event_types=["order.*"])


# -- publish -----------------------------------------------------------------------------------


async def publish_rows(
    nginx: Nginx, seconds: float, db_dir: Path, engines: Sequence[str], pg_server: str | None
) -> list[PublishRow]:
    rows: list[PublishRow] = []
    data = EVENT_TYPES[EVENT_TYPE].example
    for engine in engines:
        for endpoints in (1, 4):
            async with (
                _database(engine, db_dir, pg_server) as url,
                _dispatcher(url, event_worker="off") as d,
            ):
                await _endpoints(d, nginx.url("/fast"), endpoints)

                async def one(d: Dispatcher = d) -> bool:
                    published = await d.events.publish(TENANT, EVENT_TYPE, data=data)
                    return bool(published.deliveries)

                for publishers in (1, 16):
                    await load(one, publishers, min(0.5, seconds / 4))  # warm up
                    latencies, errors, wall, _ = await load(one, publishers, seconds)
                    latencies.sort()
                    row = PublishRow(
                        engine=engine,
                        endpoints=endpoints,
                        publishers=publishers,
                        events=len(latencies) - errors,
                        seconds=wall,
                        p50_ms=statistics.median(latencies) * 1000,
                        p99_ms=_percentile(latencies, 0.99) * 1000,
                    )
                    rows.append(row)
                    print(
                        f"publish {engine:10} endpoints={endpoints} publishers={publishers:<3} "
                        f"{row.rate:8.0f} events/s p50 {row.p50_ms:6.2f} ms "
                        f"p99 {row.p99_ms:6.2f} ms",
                        flush=True,
                    )
    return rows


# -- idle end-to-end latency -------------------------------------------------------------------


class Receiver:
    """A fast loopback endpoint in this process: answers 204 and notes when each event came."""

    def __init__(self) -> None:
        self.arrived: dict[str, asyncio.Future[float]] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _receive(self, request: web.Request) -> web.Response:
        await request.read()
        now = time.perf_counter()
        waiting = self.arrived.get(request.headers.get("X-VIZOCHOK-Delivery", ""))
        if waiting is not None and not waiting.done():
            waiting.set_result(now)
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def latency_rows(
    samples: int, db_dir: Path, engines: Sequence[str], pg_server: str | None
) -> list[LatencyRow]:
    rows: list[LatencyRow] = []
    data = EVENT_TYPES[EVENT_TYPE].example
    for engine in engines:
        async with (
            Receiver() as receiver,
            _database(engine, db_dir, pg_server) as url,
            _dispatcher(url) as d,
        ):
            await _endpoints(d, receiver.url, 1)
            worker = d.events.worker
            latencies: list[float] = []
            publish_times: list[float] = []
            for index in range(samples + 5):
                # idle: the last attempt is settled and the worker has gone back to waiting
                while worker.in_flight:  # noqa: ASYNC110 - polls the worker's state, bounded
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0.02)
                started = time.perf_counter()
                published = await d.events.publish(TENANT, EVENT_TYPE, data=data)
                returned = time.perf_counter()
                arrived = receiver.arrived.setdefault(
                    published.id, asyncio.get_running_loop().create_future()
                )
                received = await asyncio.wait_for(arrived, timeout=10)
                del receiver.arrived[published.id]
                if index >= 5:  # the first few warm the pools
                    latencies.append(received - started)
                    publish_times.append(returned - started)
            latencies.sort()
            row = LatencyRow(
                engine=engine,
                samples=len(latencies),
                publish_p50_ms=statistics.median(publish_times) * 1000,
                p50_ms=statistics.median(latencies) * 1000,
                p99_ms=_percentile(latencies, 0.99) * 1000,
                max_ms=latencies[-1] * 1000,
            )
            rows.append(row)
            print(
                f"latency {engine:10} n={row.samples} p50 {row.p50_ms:6.2f} ms "
                f"p99 {row.p99_ms:6.2f} ms max {row.max_ms:6.2f} ms "
                f"(target p50 <= {row.target_ms:g} ms)",
                flush=True,
            )
    return rows


# -- memory ------------------------------------------------------------------------------------


async def memory_row(
    nginx: Nginx, deliveries: int, db_dir: Path, *, endpoints: int = ENDPOINTS_FOR_MEMORY
) -> MemoryRow:
    """``deliveries`` by the embedded worker on SQLite to nginx, RSS sampled 50 times."""
    data = EVENT_TYPES[EVENT_TYPE].example
    events_per_batch = 250
    per_batch = events_per_batch * endpoints
    row = MemoryRow(deliveries=0, seconds=0.0, endpoints=endpoints, batch=per_batch)
    async with _database("sqlite", db_dir, None) as url, _dispatcher(url) as d:
        await _endpoints(d, nginx.url("/fast"), endpoints)

        async def publish(n: int) -> None:
            for _ in range(n):
                await d.events.publish(TENANT, EVENT_TYPE, data=data)

        started = time.perf_counter()
        every = max(deliveries // 50, per_batch)
        while row.deliveries < deliveries:
            await asyncio.gather(*(publish(events_per_batch // 5) for _ in range(5)))
            # the worker was woken by the first publish; wait until it has delivered them all
            while (await d.events.delivery_log(TENANT, status="pending", limit=1)).items:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.02)
            row.deliveries += per_batch
            if row.deliveries % every < per_batch:
                gc.collect()
                row.samples.append((row.deliveries, rss_mib(), len(gc.get_objects())))
                print(
                    f"memory: {row.deliveries:>7} deliveries  rss {row.samples[-1][1]:.1f} MiB "
                    f"objects {row.samples[-1][2]:,} "
                    f"({row.deliveries / (time.perf_counter() - started):.0f}/s)",
                    flush=True,
                )
        row.seconds = time.perf_counter() - started
        failed = (await d.events.delivery_log(TENANT, status="failed", limit=1)).items
        if failed:
            raise SystemExit(f"memory: a delivery failed ({failed[0].attempts}); see nginx")
    return row


# -- the run and its section of RESULTS.md -----------------------------------------------------

ROWS = ("events-publish", "events-latency", "events-memory")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The event rows' options, on ``python -m bench``'s parser."""
    group = parser.add_argument_group("event webhooks")
    group.add_argument(
        "--quick",
        action="store_true",
        help="event rows in about a minute: 0.5 s publish cells, 50 latency samples, "
        "20,000 deliveries for memory",
    )
    group.add_argument("--publish-seconds", type=float, default=2.0, help="per publish cell")
    group.add_argument("--latency-samples", type=int, default=200)
    group.add_argument("--event-deliveries", type=int, default=100_000, help="memory row")
    group.add_argument(
        "--event-engines", default=",".join(ENGINES), help="sqlite, postgresql or both"
    )


def run(nginx: Nginx, args: argparse.Namespace, db_dir: Path, sections: set[str]) -> None:
    """Run the event rows ``sections`` asks for and write their section of RESULTS.md."""
    rows = set(ROWS) if "events" in sections else sections & set(ROWS)
    if not rows:
        return
    if args.quick:
        args.publish_seconds = min(args.publish_seconds, 0.5)
        args.latency_samples = min(args.latency_samples, 50)
        args.event_deliveries = min(args.event_deliveries, 20_000)
    engines = [e for e in args.event_engines.split(",") if e in ENGINES]
    report = EventsReport()
    with contextlib.ExitStack() as stack:
        pg_server = None
        if "postgresql" in engines:
            pg_server = stack.enter_context(postgres.server())
        if "events-publish" in rows:
            started = time.perf_counter()
            report.publish = asyncio.run(
                publish_rows(nginx, args.publish_seconds, db_dir, engines, pg_server)
            )
            report.seconds["publish"] = _ran(started)
        if "events-latency" in rows:
            started = time.perf_counter()
            report.latency = asyncio.run(
                latency_rows(args.latency_samples, db_dir, engines, pg_server)
            )
            report.seconds["latency"] = _ran(started)
    if "events-memory" in rows:
        started = time.perf_counter()
        report.memory = asyncio.run(memory_row(nginx, args.event_deliveries, db_dir))
        report.seconds["memory"] = _ran(started)
    for name, body in render(report, args).items():
        write_section(name, body)
    print("wrote the event webhooks sections of bench/RESULTS.md", flush=True)


def _ran(started: float) -> tuple[float, float]:
    """Seconds since ``started`` and the load average now."""
    return time.perf_counter() - started, os.getloadavg()[0]


def _written(report: EventsReport, rows: str) -> str:
    command = "make bench" if sys.argv[1:] == [] else "python -m bench " + " ".join(sys.argv[1:])
    seconds, load = report.seconds[rows]
    return (
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{seconds:.0f} s; load average {load:.1f} when these rows ended (the machine is "
        "shared: compare figures within one run)."
    )


def render(report: EventsReport, args: argparse.Namespace) -> dict[str, str]:
    """Sections of RESULTS.md: ``events`` (what every row shares) and one per row kind that
    ran, each with its date, command and load, targets beside the figures."""
    sections: dict[str, str] = {}
    sections["events"] = "\n".join(
        [
            "## Event webhooks",
            "",
            f"{machine()}.",
            "",
            "Every endpoint is on 127.0.0.1. SQLite is the embedded default (a file database, WAL); "
            "PostgreSQL is the local server, in a database the run creates and drops. "
            "Worker: the embedded one, default settings (concurrency 64, 4 in flight per endpoint, "
            "1 s poll).",
        ]
    )
    if report.publish:
        out = [
            "### Publish",
            "",
            _written(report, "publish"),
            "",
            f"`Dispatcher.events.publish` alone (worker off), back to back for "
            f"{args.publish_seconds:g} s a cell after a warm-up, `order.created` to a tenant "
            "whose endpoints all subscribe `order.*`. Each call commits the event and one "
            "delivery per endpoint.",
            "",
            "| database | endpoints | publishers | events/s | deliveries/s | p50 ms | p99 ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        out += [
            f"| {r.engine} | {r.endpoints} | {r.publishers} | {r.rate:,.0f} | "
            f"{r.rate * r.endpoints:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |"
            for r in report.publish
        ]
        sections["events-publish"] = "\n".join(out)
    if report.latency:
        out = [
            "### Idle end-to-end latency",
            "",
            _written(report, "latency"),
            "",
            "One event at a time, published while the embedded worker waits (the last "
            "delivery settled 20 ms before), from the call to `publish` until a fast "
            "receiver in the process (aiohttp, 204) has read the request; "
            f"{report.latency[0].samples} samples after 5 to warm up.",
            "",
            "| database | publish returned p50 ms | received p50 ms | p99 ms | max ms | "
            "target p50 | met |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        out += [
            f"| {r.engine} | {r.publish_p50_ms:.2f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.max_ms:.2f} | ≤ {r.target_ms:g} ms | {'yes' if r.p50_ms <= r.target_ms else 'no'} |"
            for r in report.latency
        ]
        sections["events-latency"] = "\n".join(out)
    if (m := report.memory) is not None and m.samples:
        rss = [v for _, v, _ in m.samples]
        warm = m.after_warmup
        shown = m.samples[:: max(len(m.samples) // 10, 1)]
        shown += [] if shown[-1] == m.samples[-1] else [m.samples[-1]]
        out = [
            "### Resident memory",
            "",
            _written(report, "memory"),
            "",
            f"{m.deliveries:,} deliveries by the embedded worker on SQLite to nginx's `/fast` "
            f"(outside this process), {m.endpoints} endpoints per event, published in batches "
            f"of {m.batch:,} deliveries, each delivered before the next; "
            f"{m.deliveries / m.seconds:,.0f} deliveries/s with the publishing. "
            "RSS and the count of Python objects the collector tracks sampled after a full "
            "collection; warm-up is the first fifth. Flat (the target): the last half's slope "
            "under 1 MiB per 100,000 and under 1 % more Python objects than after warm-up.",
            "",
            "| first MiB | last MiB | max MiB | slope after warm-up, MiB / 100,000 | "
            "slope, last half | Python objects after warm-up → end | flat |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| {rss[0]:.1f} | {rss[-1]:.1f} | {max(rss):.1f} | {m.slope_mib_per_100k:+.2f} | "
            f"{m.last_half_slope_mib_per_100k:+.2f} | {warm[0][2]:,} → {warm[-1][2]:,} "
            f"({m.objects_growth:+.1%}) | {'yes' if m.flat else 'no'} |",
            "",
            "Samples (deliveries: MiB): " + ", ".join(f"{n:,}: {v:.1f}" for n, v, _ in shown) + ".",
            "",
            "RSS that grows a little and levels off while the Python objects stay flat is native "
            "memory: glibc gives each of aiosqlite's connection threads a malloc arena of its "
            "own, which fills with fragments (run with `MALLOC_ARENA_MAX=1` to compare).",
        ]
        sections["events-memory"] = "\n".join(out)
    return sections


def machine() -> str:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"Machine: {os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}, "
        f"vizochok-dispatch {version('vizochok-dispatch')}; client pinned to CPU 0, nginx to CPU 1"
    )
