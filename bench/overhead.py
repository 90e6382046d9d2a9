"""What observability costs the synchronous path: the dispatcher ÷ raw aiohttp ratio with
metrics, traces (no SDK installed) and the call log on (the defaults) and with all three off.

Both dispatchers run in one process against the same nginx, each with a database of its own
and otherwise the same settings.  At each concurrency the three clients take turns for
``rounds`` rounds (raw aiohttp, instrumented, plain), so drift in the machine hits all three
alike; the table shows each client's median calls/s.  The target (issue 13): the ratio with
instrumentation is at most 5 % below the ratio without.  Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from contextlib import AsyncExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.nginx import Nginx
from bench.results import write_section
from bench.run import BODY, LOOPBACK, Call, measure
from vizochok_dispatch import Dispatcher, Metrics, Tracing
from vizochok_dispatch.observe import NO_SPAN

CONCURRENCY = (16, 64, 256)
#: The switches that turn every kind of instrumentation off (``VIZOCHOK_METRICS`` etc.).
INSTRUMENTATION_OFF = {"metrics": False, "tracing": False, "call_log": False}
#: The largest drop of the dispatcher ÷ raw aiohttp ratio instrumentation may cause.
TARGET = 0.05
TENANT = "tenant-fast"


@dataclass
class Cell:
    concurrency: int
    raw: float
    instrumented: float
    plain: float
    #: Client CPU time per call (µs): less disturbed than calls/s by other processes.
    cpu_instrumented: float
    cpu_plain: float

    @property
    def ratio_on(self) -> float:
        return self.instrumented / self.raw

    @property
    def ratio_off(self) -> float:
        return self.plain / self.raw

    @property
    def drop(self) -> float:
        """How much lower the instrumented ratio is than the plain one (0.03: 3 %)."""
        return 1.0 - self.ratio_on / self.ratio_off


async def _dispatcher(stack: AsyncExitStack, url: str, db: Path, **switches: bool) -> Dispatcher:
    dispatcher = await stack.enter_async_context(
        Dispatcher.from_database_url(
            f"sqlite+aiosqlite:///{db}",
            **LOOPBACK,
            max_connections=1024,
            max_in_flight_per_tenant=1024,
            **switches,
        )
    )
    await dispatcher.store.save_config(TENANT, products_url=url, cart_url=url, timeout_seconds=30)
    return dispatcher


def _products(dispatcher: Dispatcher) -> Call:
    async def call() -> bool:
        result = await dispatcher.check_products(TENANT, skus=["milk-001"], store_id="store-1")
        return result.failure is None

    return call


async def overhead_rows(
    nginx: Nginx, seconds: float, rounds: int, db_dir: Path, concurrency: tuple[int, ...]
) -> list[Cell]:
    url = nginx.url("/fast")
    headers = {"Content-Type": "application/json"}
    cells: list[Cell] = []
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1024))
        )
        on = await _dispatcher(stack, url, db_dir / "overhead-on.db")
        off = await _dispatcher(stack, url, db_dir / "overhead-off.db", **INSTRUMENTATION_OFF)
        assert on.metrics is not None and off.metrics is None

        async def raw() -> bool:
            async with session.post(url, data=BODY, headers=headers) as response:
                await response.read()
                return response.status == 200

        clients = {"raw aiohttp": raw, "instrumented": _products(on), "plain": _products(off)}
        for c in concurrency:
            rps: dict[str, list[float]] = {name: [] for name in clients}
            cpu: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, call in clients.items():
                    stats = await measure(name, "fast", call, c, seconds, nginx)
                    assert stats.errors == 0, (name, stats.errors)
                    rps[name].append(stats.rps)
                    cpu[name].append(stats.cpu_us_per_call)
            cell = Cell(
                c,
                statistics.median(rps["raw aiohttp"]),
                statistics.median(rps["instrumented"]),
                statistics.median(rps["plain"]),
                statistics.median(cpu["instrumented"]),
                statistics.median(cpu["plain"]),
            )
            cells.append(cell)
            print(
                f"overhead c={c}: raw {cell.raw:,.0f}/s, instrumented {cell.instrumented:,.0f}/s "
                f"({cell.ratio_on:.3f} x), plain {cell.plain:,.0f}/s ({cell.ratio_off:.3f} x), "
                f"drop {cell.drop:+.1%}; CPU {cell.cpu_instrumented:.0f} vs "
                f"{cell.cpu_plain:.0f} us/call",
                flush=True,
            )
    return cells


def added_work_us(calls: int = 200_000) -> float:
    """CPU µs of what instrumentation adds to one successful single-attempt call, timed
    alone: the series look-up, the call's and the attempt's counts and histograms, two
    tracer checks (no SDK) and two span-less ``with`` blocks.  Measured in CPU time, so far
    less disturbed by other processes than calls/s."""
    metrics, tracing = Metrics(), Tracing()
    started = time.process_time()
    for _ in range(calls):
        series = metrics.webhook(TENANT, "products")
        tracer = tracing.tracer()
        with NO_SPAN if tracer is None else nullcontext():
            if tracing.tracer() is None:
                with NO_SPAN:
                    series.attempt(None, 0.002)
            series.call(None, 0.003)
    return (time.process_time() - started) / calls * 1e6


def run(nginx: Nginx, args: argparse.Namespace, db_dir: Path, sections: set[str]) -> None:
    """The ``overhead`` rows, when asked for, into their section of RESULTS.md."""
    if "overhead" not in sections:
        return
    load_before = os.getloadavg()[0]
    cells = asyncio.run(
        overhead_rows(nginx, args.seconds, args.overhead_rounds, db_dir, CONCURRENCY)
    )
    load_after = os.getloadavg()[0]
    added = added_work_us()
    plain_cpu = statistics.median(cell.cpu_plain for cell in cells)
    print(f"overhead: instrumentation work {added:.2f} us/call", flush=True)
    out = [
        "## Observability overhead",
        "",
        f"`python -m bench --only overhead --seconds {args.seconds:g} --overhead-rounds "
        f"{args.overhead_rounds}`: `check_products` against nginx `/fast`; *instrumented* is the "
        "default dispatcher (Prometheus metrics, OpenTelemetry spans with no SDK installed, the "
        "call log with its 1 % sample), *plain* the same with `VIZOCHOK_METRICS`, "
        "`VIZOCHOK_TRACING` and `VIZOCHOK_CALL_LOG` off. Median calls/s of "
        f"{args.overhead_rounds} interleaved rounds of {args.seconds:g} s per client. "
        f"Load average (1 min) {load_before:.1f} before the run, {load_after:.1f} after, on "
        f"{os.cpu_count()} CPUs"
        + (
            ": other processes shared the client's CPU, so calls/s are that noisy; the CPU µs "
            "per call columns are the steadier comparison."
            if max(load_before, load_after) > 1.5
            else "."
        ),
        "",
        "Instrumentation's own work, timed alone in CPU time ("
        f"`bench.overhead.added_work_us`): **{added:.2f} µs per call**, "
        f"{added / plain_cpu:.1%} of the plain dispatcher's median {plain_cpu:.0f} CPU µs per "
        "call below.",
        "",
        "| concurrency | raw aiohttp calls/s | instrumented calls/s | plain calls/s | "
        "instrumented ÷ raw | plain ÷ raw | drop | within 5 % | CPU µs/call instrumented | "
        "CPU µs/call plain |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for cell in cells:
        out.append(
            f"| {cell.concurrency} | {cell.raw:,.0f} | {cell.instrumented:,.0f} | "
            f"{cell.plain:,.0f} | {cell.ratio_on:.3f} | {cell.ratio_off:.3f} | "
            f"{cell.drop:+.1%} | {'yes' if cell.drop <= TARGET else 'no'} | "
            f"{cell.cpu_instrumented:.0f} | {cell.cpu_plain:.0f} |"
        )
    write_section("overhead", "\n".join(out))
    print("wrote the overhead section of bench/RESULTS.md")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The overhead rows' option, on ``python -m bench``'s parser."""
    parser.add_argument(
        "--overhead-rounds", type=int, default=3, help="interleaved rounds per overhead cell"
    )
