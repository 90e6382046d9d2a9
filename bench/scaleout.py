"""Event delivery on procrastinate (PostgreSQL): deliveries/s with one and two worker processes
beside procrastinate's own throughput for a no-op job, and idle publish → received latency.

Measured in one run, on a database made for it (dropped after) on the PostgreSQL that
``bench/postgres.py`` gives (``VIZOCHOK_BENCH_POSTGRES_URL``, else the local server).

- **Throughput**: ``--events`` events are published (``VIZOCHOK_EVENT_WORKER=procrastinate``)
  to 16 endpoints on nginx's ``/fast`` while no worker runs; then 1 (or 2) ``vizochok-dispatch
  worker`` processes start, and the rate is the deliveries over the time from the first
  attempt to the last (our attempt times: process start-up is left out).  The engine's limit
  is measured the same way: as many no-op procrastinate jobs, deferred before a plain
  procrastinate worker with the same concurrency starts, over the time from the first job's
  start to the last one's end (procrastinate's own event times).
- **Latency**: one idle worker; an event is published, and the time until a receiver in this
  process gets it is taken, one event at a time.

``python -m bench --only event-workers`` (or ``python -m bench.scaleout``) runs it alone and
rewrites its section of ``bench/RESULTS.md``; plain ``make bench`` runs it with the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from sqlalchemy.engine import make_url

from bench import postgres
from bench.nginx import Nginx
from bench.results import write_section
from vizochok_dispatch import Dispatcher, DispatchSettings, SecretBox
from vizochok_dispatch.events._catalog import EVENT_TYPES
from vizochok_dispatch.events._procrastinate import SCHEMA, connection_kwargs
from vizochok_dispatch.tenants._sql_store import SqlConfigStore

REPO = Path(__file__).resolve().parents[1]
ENDPOINTS = 16
CONCURRENCY = 32
NOOP_TASK = "bench.noop"
WORKER = (
    "import sys; from vizochok_dispatch._cli import main; sys.argv[0] = 'vizochok-dispatch'; main()"
)
#: The no-op worker, run so procrastinate's app is not made in a ``__main__`` module.
NOOP_WORKER = (
    "import asyncio, sys; from bench.scaleout import noop_worker; "
    "asyncio.run(noop_worker(sys.argv[1], int(sys.argv[2])))"
)
LOOPBACK = {"allowed_networks": "127.0.0.0/8,::1/128"}


@dataclass
class Result:
    events: int
    noop: dict[int, float]
    ours: dict[int, float]
    latency_ms: list[float]
    #: Worker CPU per job: ours (less a worker's start-up) and procrastinate's no-op.
    noop_cpu_ms: float = 0.0
    ours_cpu_ms: float = 0.0
    #: The machine's 1-minute load average at the end (other work shares the CPUs).
    load: float = 0.0

    def lines(self) -> list[str]:
        one, two, noop = self.ours[1], self.ours[2], self.noop[1]
        p50 = statistics.median(self.latency_ms)
        p99 = sorted(self.latency_ms)[max(0, round(len(self.latency_ms) * 0.99) - 1)]
        return [
            "## Event delivery on procrastinate (PostgreSQL worker processes)",
            "",
            f"{self.events:,} events to {ENDPOINTS} endpoints on nginx `/fast` (cap 4 each), "
            f"worker concurrency {CONCURRENCY} a process; the no-op row is procrastinate's own "
            "worker running as many jobs that do nothing (the engine's limit). Rates are taken "
            "from the first attempt (job start) to the last.",
            "",
            "| worker processes | deliveries/s | no-op jobs/s | deliveries ÷ no-op |",
            "| ---: | ---: | ---: | ---: |",
            f"| 1 | {one:,.0f} | {noop:,.0f} | {one / noop:.2f} × |",
            f"| 2 | {two:,.0f} | {self.noop[2]:,.0f} | {two / self.noop[2]:.2f} × |",
            "",
            "| target | measured | met |",
            "| --- | --- | --- |",
            f"| 1 process ≥ 0.5 × no-op | {one / noop:.2f} × | {'yes' if one / noop >= 0.5 else 'no'} |",
            f"| 2 processes ≥ 1.6 × 1 | {two / one:.2f} × | {'yes' if two / one >= 1.6 else 'no'} |",
            f"| idle publish → received p50 ≤ 50 ms | p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({len(self.latency_ms)} events) | {'yes' if p50 <= 50 else 'no'} |",
            "",
            f"Worker CPU per job (1 process, each worker's start-up taken off): a delivery "
            f"{self.ours_cpu_ms:.2f} ms, a no-op job {self.noop_cpu_ms:.2f} ms: "
            f"{self.noop_cpu_ms / max(self.ours_cpu_ms, 1e-9):.2f} × the no-op's rate when the "
            f"CPU is the limit. 1-minute load average at the end: {self.load:.1f} on "
            f"{os.cpu_count()} CPUs: rates fall when other work shares them, and the CPU "
            "figures (user + system) grow too, less so.",
        ]


def _env(url: str, keys: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIZOCHOK_")}
    env.update(
        VIZOCHOK_DATABASE_URL=url,
        VIZOCHOK_SECRET_KEYS=keys,
        VIZOCHOK_ALLOW_HTTP="true",
        VIZOCHOK_ALLOWED_NETWORKS=LOOPBACK["allowed_networks"],
        VIZOCHOK_EVENT_POLL_SECONDS="1",
    )
    return env


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


def _cpu_seconds(processes: list[asyncio.subprocess.Process]) -> float:
    """User + system CPU seconds the processes used so far (Linux ``/proc``)."""
    total = 0
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def _wait_until(
    conn: asyncpg.Connection, query: str, target: int, seconds: float, *args: object
) -> None:
    async with asyncio.timeout(seconds):
        while int(await conn.fetchval(query, *args)) < target:  # noqa: ASYNC110 - another process's rows
            await asyncio.sleep(0.1)


# -- procrastinate's own no-op throughput ------------------------------------------------------


def _noop_app(url: str) -> Any:  # noqa: ANN401 - procrastinate.App
    import procrastinate  # noqa: PLC0415

    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            kwargs=connection_kwargs(make_url(url), connect_timeout=5.0)
        )
    )

    async def noop() -> None:
        return None

    app.task(name=NOOP_TASK, queue="bench")(noop)
    return app


async def noop_worker(url: str, concurrency: int) -> None:
    """A plain procrastinate worker for the no-op job (``python -m bench.scaleout noop ...``)."""
    app = _noop_app(url)
    async with app.open_async():
        await app.run_worker_async(
            queues=["bench"], concurrency=concurrency, fetch_job_polling_interval=1.0
        )


async def noop_rate(url: str, count: int, processes: int) -> tuple[float, float]:
    from procrastinate import jobs  # noqa: PLC0415

    app = _noop_app(url)
    async with app.open_async():
        batch = [
            jobs.Job(queue="bench", task_name=NOOP_TASK, lock=None, queueing_lock=None)
            for _ in range(count)
        ]
        for start in range(0, count, 1000):
            await app.job_manager.batch_defer_jobs_async(batch[start : start + 1000])
    env = _env(url, "")
    workers = [
        await _spawn(["-c", NOOP_WORKER, url, str(CONCURRENCY)], env) for _ in range(processes)
    ]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        await _wait_until(
            conn,
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
            count,
            600,
        )
        first, last = await conn.fetchrow(
            "SELECT min(at) FILTER (WHERE type = 'started'), "
            "max(at) FILTER (WHERE type = 'succeeded') FROM procrastinate_events"
        )
        cpu = _cpu_seconds(workers)
        await conn.execute("DELETE FROM procrastinate_jobs")
    finally:
        await conn.close()
        await _stop(workers)
    return float((count - 1) / (last - first).total_seconds()), cpu / count


# -- ours -------------------------------------------------------------------------------------


def _settings(url: str, keys: str) -> DispatchSettings:
    return DispatchSettings(
        database_url=url,
        secret_keys=keys,
        event_worker="procrastinate",
        allow_http=True,
        allowed_networks=LOOPBACK["allowed_networks"],
    )


async def delivery_rate(
    url: str, keys: str, target: str, count: int, processes: int
) -> tuple[float, float]:
    async with Dispatcher.from_settings(_settings(url, keys)) as d:
        tenant = f"bench-{processes}"
        for _ in range(ENDPOINTS):
            await d.events.create_endpoint(tenant, url=target, event_types=["order.*"])
        data = dict(EVENT_TYPES["order.created"].example)
        sem = asyncio.Semaphore(8)

        async def publish() -> None:
            async with sem:
                await d.events.publish(tenant, "order.created", data=data)

        await asyncio.gather(*(publish() for _ in range(count // ENDPOINTS)))
    total = (count // ENDPOINTS) * ENDPOINTS
    workers = [
        await _spawn(["-c", WORKER, "worker", "--concurrency", str(CONCURRENCY)], _env(url, keys))
        for _ in range(processes)
    ]
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        done = "SELECT count(*) FROM event_deliveries WHERE tenant_id = $1 AND status = 'delivered'"
        await _wait_until(conn, done, total, 600, tenant)
        first, last = await conn.fetchrow(
            "SELECT min(a.attempted_at), max(a.attempted_at) FROM event_attempts a "
            "JOIN event_deliveries d ON d.id = a.delivery_id WHERE d.tenant_id = $1",
            tenant,
        )
        cpu = _cpu_seconds(workers)
    finally:
        await conn.close()
        await _stop(workers)
    return float((total - 1) / (last - first).total_seconds()), cpu / total


async def startup_cpu(args: list[str], env: dict[str, str]) -> float:
    """CPU seconds a worker process spends starting and idling 5 s (taken off the per-job
    figures, which would otherwise count the imports)."""
    worker = await _spawn(args, env)
    try:
        await asyncio.sleep(5)
        return _cpu_seconds([worker])
    finally:
        await _stop([worker])


async def idle_latency(url: str, keys: str, samples: int) -> list[float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        arrived.put_nowait(time.perf_counter())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    worker = await _spawn(["-c", WORKER, "worker", "--concurrency", "8"], _env(url, keys))
    latencies: list[float] = []
    try:
        async with Dispatcher.from_settings(_settings(url, keys)) as d:
            await d.events.create_endpoint(
                "bench-latency", url=f"http://127.0.0.1:{port}/hook", event_types=["order.*"]
            )
            data = dict(EVENT_TYPES["order.created"].example)
            await d.events.publish("bench-latency", "order.created", data=data)
            async with asyncio.timeout(60):  # the worker is up once the first one arrives
                await arrived.get()
            for _ in range(samples):
                await asyncio.sleep(0.2)  # idle between events
                started = time.perf_counter()
                await d.events.publish("bench-latency", "order.created", data=data)
                async with asyncio.timeout(30):
                    latencies.append((await arrived.get() - started) * 1000)
    finally:
        await _stop([worker])
        await runner.cleanup()
    return latencies


async def measure(server: str, fast_url: str, events: int, samples: int) -> list[str]:
    """The section's lines (measured on a database of its own on ``server``)."""
    keys = SecretBox.generate("bench")[1]
    async with postgres.database(server) as url:
        store = SqlConfigStore(url, auto_migrate=False)
        try:
            await store.upgrade()
        finally:
            await store.close()
        start_cpu = await startup_cpu(
            ["-c", WORKER, "worker", "--concurrency", str(CONCURRENCY)], _env(url, keys)
        )
        noop_start_cpu = await startup_cpu(
            ["-c", NOOP_WORKER, url, str(CONCURRENCY)], _env(url, "")
        )
        noop = {n: await noop_rate(url, events, n) for n in (1, 2)}
        ours = {n: await delivery_rate(url, keys, fast_url, events, n) for n in (1, 2)}
        latency = await idle_latency(url, keys, samples)
    result = Result(
        events=events,
        noop={n: rate for n, (rate, _) in noop.items()},
        ours={n: rate for n, (rate, _) in ours.items()},
        latency_ms=latency,
        noop_cpu_ms=max(noop[1][1] - noop_start_cpu / events, 0.0) * 1000,
        ours_cpu_ms=max(ours[1][1] - start_cpu / events, 0.0) * 1000,
        load=os.getloadavg()[0],
    )
    return result.lines()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This section's options on ``python -m bench``."""
    parser.add_argument(
        "--worker-events", type=int, default=2000, help="event-workers: events per rate"
    )
    parser.add_argument(
        "--worker-latency-samples", type=int, default=50, help="event-workers: latency events"
    )


def run(nginx: Nginx, args: argparse.Namespace, sections: set[str]) -> None:
    """With ``event-workers`` in ``sections``: measure, and write the section of RESULTS.md.

    Every CPU is allowed meanwhile (``python -m bench`` pins itself to one: the worker
    processes it starts must not inherit that)."""
    if "event-workers" not in sections:
        return
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        with postgres.server() as server:
            lines = asyncio.run(
                measure(server, nginx.url("/fast"), args.worker_events, args.worker_latency_samples)
            )
    finally:
        os.sched_setaffinity(0, pinned)
    command = "make bench" if sys.argv[1:] == [] else "python -m bench " + " ".join(sys.argv[1:])
    lines += ["", f"Command: `{command}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."]
    write_section("event-workers", "\n".join(lines))
    print("\n".join(lines), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency-samples", type=int, default=50)
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    args.worker_events, args.worker_latency_samples = args.events, args.latency_samples
    with Nginx(cpu=1) as nginx:
        run(nginx, args, {"event-workers"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
