"""`vizochok-dispatch events retry` and `events recover` (click's CliRunner) on SQLite and
PostgreSQL, against a loopback receiver in a thread: what they print, and their exit codes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr

from vizochok_dispatch import EVENT_TYPES, Dispatcher, DispatchSettings
from vizochok_dispatch._cli import main

from .support import KEY_1, LOOPBACK_NETWORKS

pytestmark = pytest.mark.loopback

ENV = {
    "VIZOCHOK_SECRET_KEYS": KEY_1,
    "VIZOCHOK_DATABASE_URL": None,
    "VIZOCHOK_ALLOW_HTTP": "true",
    "VIZOCHOK_ALLOWED_NETWORKS": LOOPBACK_NETWORKS,
}


class _Receiver(BaseHTTPRequestHandler):
    """Answers every POST with ``status`` (a class attribute the test sets)."""

    status: ClassVar[int] = 500
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(self.headers.get("X-VIZOCHOK-Delivery", ""))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.status, _Receiver.seen = 500, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Failed:
    endpoint_id: str
    delivery_ids: list[str]


@pytest.fixture
def failed(database_url: str, receiver: str) -> Failed:
    """An endpoint at the receiver and two deliveries to it that failed (one attempt each)."""

    async def make() -> Failed:
        settings = DispatchSettings(
            database_url=database_url,
            auto_migrate=True,
            secret_keys=SecretStr(KEY_1),
            allow_http=True,
            allowed_networks=LOOPBACK_NETWORKS,
            event_worker="off",
            event_retry_schedule="none",
        )
        async with Dispatcher.from_settings(settings) as d:
            ep = await d.events.create_endpoint("tenant-1", url=receiver, event_types=["*"])
            ids = []
            for _ in range(2):
                event = await d.events.publish(
                    "tenant-1", "order.created", data=dict(EVENT_TYPES["order.created"].example)
                )
                ids.append(event.deliveries[0].id)
            await d.events.drain(timeout=1)
        return Failed(ep.id, ids)

    return asyncio.run(make())


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--database-url", database_url, *args], env=ENV)

    return invoke


def test_retry_attempts_now_and_says_how_it_went(
    cli: Callable[..., Result], failed: Failed
) -> None:
    """events retry: a new attempt now; one line with the outcome; exit 0 when delivered."""
    _Receiver.status = 200
    result = cli("events", "retry", failed.delivery_ids[0])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"delivery {failed.delivery_ids[0]}: delivered (attempt 2: HTTP 200")
    assert len(_Receiver.seen) == 3  # two failed, then this one


def test_a_failed_retry_exits_1(cli: Callable[..., Result], failed: Failed) -> None:
    """events retry: an attempt that fails prints its line (and the schedule's next attempt,
    three in all by default), and exits 1."""
    result = cli("events", "retry", failed.delivery_ids[0])
    assert result.exit_code == 1
    line = result.stdout.strip()
    assert line.startswith(f"delivery {failed.delivery_ids[0]}: pending (attempt 2: HTTP 500")
    assert "; next attempt 20" in line and line.endswith(" UTC")
    result = cli("events", "retry", failed.delivery_ids[0])
    assert result.exit_code == 1
    assert result.stdout.startswith(f"delivery {failed.delivery_ids[0]}: failed (attempt 3: ")


def test_retry_of_an_unknown_delivery_is_one_line_and_exit_1(
    cli: Callable[..., Result], failed: Failed
) -> None:
    """events retry: an unknown delivery id is "Error: no delivery …", exit 1, nothing sent."""
    result = cli("events", "retry", "dlv_unknown")
    assert (result.exit_code, result.output) == (1, "Error: no delivery 'dlv_unknown'\n")
    assert len(_Receiver.seen) == len(failed.delivery_ids)


def test_recover_requeues_the_range_and_counts(cli: Callable[..., Result], failed: Failed) -> None:
    """events recover: the failed deliveries since --since are re-queued; the count is printed."""
    result = cli("events", "recover", failed.endpoint_id, "--since", "1h")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"re-queued 2 failed deliveries of {failed.endpoint_id}\n"
    again = cli("events", "recover", failed.endpoint_id, "--since", "2020-01-01T00:00:00Z")
    assert again.stdout == f"re-queued 0 failed deliveries of {failed.endpoint_id}\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ep_unknown", "--since", "1d"], 1, "Error: no event endpoint 'ep_unknown'"),
        (["{endpoint}", "--since", "soon"], 2, "'soon' is not a time"),
        (["{endpoint}"], 2, "Missing option '--since'"),
        (
            ["{endpoint}", "--since", "1h", "--until", "2h"],
            1,
            "Error: until must be later than since",
        ),
    ],
)
def test_recover_refusals_are_one_line(
    cli: Callable[..., Result], failed: Failed, args: list[str], code: int, message: str
) -> None:
    """events recover: an unknown endpoint or a bad range is refused with the usual codes."""
    result = cli("events", "recover", *[a.format(endpoint=failed.endpoint_id) for a in args])
    assert result.exit_code == code, result.output
    assert message in result.output
    if code == 1:
        assert result.output.count("\n") == 1
