"""One run, one table: raw aiohttp, stock httpx and our full ``check_products`` path.

Everything is measured in the same run against the same nginx, client pinned to CPU 0 and
nginx to CPU 1, so the ratios mean something even when absolute numbers drift.  Results go
to ``bench/RESULTS.md``.  Nothing here asserts a timing: the targets are reported, not tested.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import aiohttp
import httpx
import structlog

from bench.nginx import Nginx
from bench.results import write_section
from vizochok_dispatch import Dispatcher

BODY = b'{"skus":["milk-001"],"store_id":"store-1"}'
CONCURRENCY = (1, 16, 64, 256)
#: nginx listens on 127.0.0.1: plain HTTP, and loopback on the SSRF guard's allow-list.
LOOPBACK = {"allow_http": True, "allowed_networks": "127.0.0.0/8,::1/128"}

Call = Callable[[], Awaitable[bool]]


@dataclass
class Stats:
    client: str
    endpoint: str
    concurrency: int
    calls: int
    errors: int
    seconds: float
    cpu_seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_share: float

    @property
    def rps(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_seconds / max(self.calls, 1) * 1e6


async def load(
    call: Call, concurrency: int, seconds: float
) -> tuple[list[float], int, float, float]:
    """Run ``concurrency`` workers calling ``call`` back to back for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    gc.collect()  # before the clock starts: a slow collection must not eat the cell
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            ok = await call()
            latencies.append(time.perf_counter() - started)
            errors += not ok

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - wall0, time.process_time() - cpu0


async def measure(
    name: str, endpoint: str, call: Call, concurrency: int, seconds: float, nginx: Nginx
) -> Stats:
    await load(call, concurrency, min(0.5, seconds / 4))  # warm the pool and the caches
    server0 = nginx.cpu_seconds()
    latencies, errors, wall, cpu = await load(call, concurrency, seconds)
    server_share = (nginx.cpu_seconds() - server0) / wall
    latencies.sort()
    return Stats(
        client=name,
        endpoint=endpoint,
        concurrency=concurrency,
        calls=len(latencies),
        errors=errors,
        seconds=wall,
        cpu_seconds=cpu,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        server_cpu_share=server_share,
    )


class Clients:
    """The three clients, each with a pool big enough for the largest concurrency."""

    def __init__(self, nginx: Nginx, db_path: Path) -> None:
        self.nginx = nginx
        self.db_url = f"sqlite+aiosqlite:///{db_path}"
        self.session: aiohttp.ClientSession | None = None
        self.httpx_client: httpx.AsyncClient | None = None
        self.dispatcher: Dispatcher | None = None

    async def __aenter__(self) -> Clients:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
        self.httpx_client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024),
            timeout=30,
        )
        self.dispatcher = await Dispatcher.from_database_url(
            self.db_url, **LOOPBACK, max_connections=1024, max_in_flight_per_tenant=1024
        ).__aenter__()
        for path in ("/fast", "/slow"):
            await self.dispatcher.store.save_config(
                f"tenant{path.replace('/', '-')}",
                products_url=self.nginx.url(path),
                cart_url=self.nginx.url(path),
                timeout_seconds=30,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session and self.httpx_client and self.dispatcher
        await self.session.close()
        await self.httpx_client.aclose()
        await self.dispatcher.aclose()

    def calls(self, path: str) -> dict[str, Call]:
        assert self.session and self.httpx_client and self.dispatcher
        url = self.nginx.url(path)
        session, client, dispatcher = self.session, self.httpx_client, self.dispatcher
        headers = {"Content-Type": "application/json"}
        tenant = f"tenant{path.replace('/', '-')}"

        async def raw_aiohttp() -> bool:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                return response.status == 200

        async def stock_httpx() -> bool:
            response = await client.post(url, content=BODY, headers=headers)
            return response.status_code == 200

        async def ours() -> bool:
            result = await dispatcher.check_products(tenant, skus=["milk-001"], store_id="store-1")
            return result.failure is None and len(result.available) == 1

        return {"raw aiohttp": raw_aiohttp, "stock httpx": stock_httpx, "dispatcher": ours}


async def core(nginx: Nginx, seconds: float, db_dir: Path) -> list[Stats]:
    rows: list[Stats] = []
    async with Clients(nginx, db_dir / "bench.db") as clients:
        fast = clients.calls("/fast")
        for concurrency in CONCURRENCY:
            for name, call in fast.items():
                rows.append(await measure(name, "fast", call, concurrency, seconds, nginx))
                print(_line(rows[-1]), flush=True)
        slow = clients.calls("/slow")
        for name, call in slow.items():
            rows.append(await measure(name, "100 ms", call, 256, max(seconds, 3.0), nginx))
            print(_line(rows[-1]), flush=True)
    return rows


def _line(s: Stats) -> str:
    return (
        f"{s.client:12} {s.endpoint:7} c={s.concurrency:<4} {s.rps:9.0f}/s "
        f"p50 {s.p50_ms:7.2f} ms p99 {s.p99_ms:8.2f} ms cpu {s.cpu_us_per_call:6.0f} us/call "
        f"errors {s.errors} nginx cpu {s.server_cpu_share:.0%}"
    )


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def memory(nginx: Nginx, calls: int, db_dir: Path) -> list[tuple[int, float]]:
    """Resident memory while ``calls`` full calls run at concurrency 64."""
    samples: list[tuple[int, float]] = []
    async with Clients(nginx, db_dir / "memory.db") as clients:
        call = clients.calls("/fast")["dispatcher"]
        done = 0
        step = max(calls // 10, 1)

        async def worker(n: int) -> None:
            nonlocal done
            for _ in range(n):
                await call()
                done += 1

        while done < calls:
            await asyncio.gather(*(worker(step // 64 + 1) for _ in range(64)))
            gc.collect()
            samples.append((done, rss_mib()))
            print(f"memory: {done:>7} calls  rss {samples[-1][1]:.1f} MiB", flush=True)
    return samples


async def tenants(nginx: Nginx, count: int, seconds: float, db_dir: Path) -> dict[str, float]:
    """What ``count`` configured tenants cost in memory, and whether calls slow down."""
    url = f"sqlite+aiosqlite:///{db_dir / 'tenants.db'}"
    async with Dispatcher.from_database_url(url, **LOOPBACK, max_connections=256) as d:
        await d.check_products("nobody", skus=["milk-001"], store_id="s")  # warm the code paths
        gc.collect()
        before = rss_mib()
        for i in range(count):
            await d.store.save_config(
                f"t{i}", products_url=nginx.url("/fast"), cart_url=nginx.url("/fast")
            )
        rng = random.Random(6)

        async def one() -> bool:
            result = await d.check_products("t0", skus=["milk-001"], store_id="s")
            return result.failure is None

        async def many() -> bool:
            tenant = f"t{rng.randrange(count)}"
            result = await d.check_products(tenant, skus=["milk-001"], store_id="s")
            return result.failure is None

        d.store.invalidate()
        for i in range(count):  # every tenant's config read back and cached, as in service
            await d.check_products(f"t{i}", skus=["milk-001"], store_id="s")
        gc.collect()
        after = rss_mib()
        misses = d.store.misses
        single = await measure("dispatcher", "fast", one, 64, seconds, nginx)
        spread = await measure("dispatcher", "fast", many, 64, seconds, nginx)
        queries_per_call = (d.store.misses - misses) / max(single.calls + spread.calls, 1)
    report = {
        "tenants": count,
        "rss_growth_mib": after - before,
        "rps_one_tenant": single.rps,
        "rps_all_tenants": spread.rps,
        "p99_one_tenant_ms": single.p99_ms,
        "p99_all_tenants_ms": spread.p99_ms,
        "config_reads_per_warm_call": queries_per_call,
    }
    print(f"tenants: {report}", flush=True)
    return report


def write_results(
    rows: list[Stats],
    mem: list[tuple[int, float]],
    ten: dict[str, float] | None,
    args: argparse.Namespace,
) -> None:
    by = {(r.client, r.endpoint, r.concurrency): r for r in rows}
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    out = [
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Machine: {os.cpu_count()} CPUs ({cpu_model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; aiohttp {version('aiohttp')}, httpx {version('httpx')}, "
        f"vizochok-dispatch {version('vizochok-dispatch')}; nginx 1 worker on CPU 1, client on CPU 0; "
        f"{args.seconds:g} s per cell.",
        "",
        "The tenant is nginx answering from memory (`/fast`) or after `echo_sleep 0.1` (`/slow`).",
        "`nginx cpu` is the nginx worker's CPU time over the cell's wall time: well under 100 %",
        "means nginx had headroom and the client was the bottleneck.",
        "",
        "| client | endpoint | concurrency | calls/s | p50 ms | p99 ms | CPU µs/call | errors | nginx cpu |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        out.append(
            f"| {r.client} | {r.endpoint} | {r.concurrency} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.cpu_us_per_call:,.0f} | {r.errors} | {r.server_cpu_share:.0%} |"
        )
    out += ["", "## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    for c in (16, 64, 256):
        ours, raw = by.get(("dispatcher", "fast", c)), by.get(("raw aiohttp", "fast", c))
        if ours and raw:
            ratio = ours.rps / raw.rps
            out.append(
                f"| fast, c={c}: dispatcher ≥ 0.5 × raw aiohttp | {ratio:.2f} × | {'yes' if ratio >= 0.5 else 'no'} |"
            )
    slow = by.get(("dispatcher", "100 ms", 256))
    if slow:
        share = slow.rps / 2560
        out.append(
            f"| 100 ms, c=256: ≥ 0.85 × ideal (2,560/s) and p99 ≤ 250 ms | {share:.2f} × ideal, p99 {slow.p99_ms:.0f} ms | "
            f"{'yes' if share >= 0.85 and slow.p99_ms <= 250 else 'no'} |"
        )
    ours1, raw1 = by.get(("dispatcher", "fast", 1)), by.get(("raw aiohttp", "fast", 1))
    if ours1 and raw1:
        added = ours1.p50_ms - raw1.p50_ms
        out.append(
            f"| c=1: added p50 latency over raw aiohttp ≤ 0.3 ms | {added:.3f} ms | {'yes' if added <= 0.3 else 'no'} |"
        )
    if mem:
        first, last = mem[0], mem[-1]
        out += [
            "",
            "## Memory",
            "",
            f"{last[0]:,} full `check_products` calls at concurrency 64: resident memory "
            f"{first[1]:.1f} MiB after {first[0]:,} calls, {last[1]:.1f} MiB after {last[0]:,} "
            f"(growth {last[1] - first[1]:+.1f} MiB).",
            "",
            "| calls | RSS MiB |",
            "| ---: | ---: |",
            *[f"| {n:,} | {rss:.1f} |" for n, rss in mem],
        ]
    if ten:
        out += [
            "",
            "## Many tenants",
            "",
            f"{int(ten['tenants']):,} configured tenants (saved to SQLite, then every config read "
            f"back into the cache): {ten['rss_growth_mib']:.1f} MiB of resident memory in all "
            f"({ten['rss_growth_mib'] * 1024 * 1024 / ten['tenants']:,.0f} bytes a tenant, "
            "SQLite's page cache included). Config reads per warm call: "
            f"{ten['config_reads_per_warm_call']:.4f}. "
            f"Calls spread over all of them: {ten['rps_all_tenants']:,.0f}/s, p99 "
            f"{ten['p99_all_tenants_ms']:.1f} ms; all on one tenant: {ten['rps_one_tenant']:,.0f}/s, "
            f"p99 {ten['p99_one_tenant_ms']:.1f} ms (concurrency 64).",
        ]
    write_section("sync", "\n".join(out))
    print("wrote the synchronous section of bench/RESULTS.md")


def main() -> int:
    # bench.events reuses this module's helpers: imported here, once this module is whole
    from bench import events, events_log, overhead, scaleout  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--memory-calls", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument(
        "--only",
        default="core,memory,tenants,overhead,events,event-workers,events-log",
        help="rows to run: core, memory, tenants (the synchronous table); overhead (metrics, "
        "traces and the call log on vs off); events (all of publish, latency and memory "
        "below), events-publish, events-latency, events-memory; event-workers (procrastinate "
        "worker processes on PostgreSQL); events-log (the delivery log's pages on 1,000,000 "
        "deliveries in PostgreSQL)",
    )
    overhead.add_arguments(parser)
    events.add_arguments(parser)
    scaleout.add_arguments(parser)
    events_log.add_arguments(parser)
    args = parser.parse_args()
    # Production logs these events through the host's structlog setup; the benchmark keeps
    # warnings only, so it measures the dispatcher rather than a console renderer, and caches
    # loggers on first use as structlog's performance advice says a production setup should.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    os.sched_setaffinity(0, {0})
    sections = set(args.only.split(","))
    sync = sections & {"core", "memory", "tenants"}
    with Nginx(cpu=1) as nginx, tempfile.TemporaryDirectory() as tmp:
        db_dir = Path(tmp)
        rows = asyncio.run(core(nginx, args.seconds, db_dir)) if "core" in sections else []
        mem = asyncio.run(memory(nginx, args.memory_calls, db_dir)) if "memory" in sections else []
        ten = (
            asyncio.run(tenants(nginx, args.tenants, args.seconds, db_dir))
            if "tenants" in sections
            else None
        )
        if sync:
            write_results(rows, mem, ten, args)
        overhead.run(nginx, args, db_dir, sections)
        events.run(nginx, args, db_dir, sections)
        scaleout.run(nginx, args, sections)
    events_log.run(args, sections)
    return 0
