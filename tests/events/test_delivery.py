"""An event delivery's attempts (docs/webhooks.md §8-§9): what success is, what is retried and
when, Retry-After, 410, redirects, the signatures of both schemes, the SSRF guard and the
whole-attempt deadline, against a real loopback receiver (and respx for failure shapes).

The worker is off and time is fake: ``drain`` makes the retries, the fake sleep skips their
delays, so a schedule of minutes takes no time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from standardwebhooks import Webhook
from structlog.testing import capture_logs

from tests.support.dns import ScriptedResolver
from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import Dispatcher, EventDelivery, compute_signature

from .support import TENANT, MakeDispatcher, example, make

__all__ = ["make"]

pytestmark = pytest.mark.loopback

BIG = bytes(range(256)) * 40  # 10 KiB


@dataclass
class Script:
    """Replies in order (the last one repeats): ``(status, body, headers)`` or ``"hang"``."""

    replies: list[tuple[int, bytes, dict[str, str]] | str] = field(default_factory=list)
    served: int = 0

    async def __call__(self, request: Received, reply: Reply) -> None:
        step = (
            self.replies[min(self.served, len(self.replies) - 1)]
            if self.replies
            else (200, b"", {})
        )
        self.served += 1
        if step == "hang":
            await asyncio.Event().wait()
        assert not isinstance(step, str)
        status, body, headers = step
        await reply.send(status, body, headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[LoopbackServer, Script]]:
    script = Script()
    async with serve(script) as server:
        yield server, script


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(now=time.time())  # near real time: standard-webhooks verifiers check it


async def _only(d: Dispatcher, event_id: str) -> EventDelivery:
    (delivery,) = await d.events.deliveries(TENANT, event_id=event_id)
    return delivery


# -- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_any_2xx_delivers_and_keeps_4_kib_of_the_answer(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime, status: int
) -> None:
    """Success: any 2xx delivers at once; the attempt keeps status, latency, time, 4 KiB answer."""
    server, script = receiver
    script.replies = [(status, b"" if status == 204 else BIG, {})]
    d = await make(event_worker="off", clock=fake.clock, sleep=fake.sleep)
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    report = await d.events.drain(timeout=60)
    assert (report.attempts, report.pending) == (1, 0)
    dl = await _only(d, ev.id)
    assert dl.status == "delivered" and dl.next_attempt_at is None and dl.detail is None
    (attempt,) = dl.attempts
    assert (attempt.number, attempt.status, attempt.detail, attempt.trigger) == (
        1,
        status,
        None,
        "scheduled",
    )
    assert attempt.response == (b"" if status == 204 else BIG[:4096])
    assert attempt.latency_ms >= 0
    assert attempt.attempted_at.timestamp() == pytest.approx(fake.now, abs=0.001)
    assert len(server.received) == 1


async def test_the_vizochok_scheme_signs_the_body_as_sent(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script]
) -> None:
    """Signing (vizochok): the synchronous signature over the exact body, plus event labels."""
    server, _ = receiver
    d = await make(event_worker="off")
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=10)
    (request,) = server.received
    assert request.method == "POST" and request.path == "/hook"
    assert request.body == ev.body
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-vizochok-event"] == "order.created"
    assert headers["x-vizochok-delivery"] == ev.id
    assert headers["x-vizochok-attempt"] == "1"
    timestamp = int(headers["x-vizochok-timestamp"])
    assert headers["x-vizochok-signature"] == compute_signature(ep.secret, timestamp, ev.body)


async def test_the_standard_webhooks_scheme_verifies_with_its_package(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script]
) -> None:
    """Signing (standard-webhooks): the standardwebhooks package verifies our request as sent."""
    server, _ = receiver
    d = await make(event_worker="off")
    ep = await d.events.create_endpoint(
        TENANT,
        url=server.url("/hook"),
        event_types=["chat.*"],
        signature_scheme="standard-webhooks",
    )
    ev = await d.events.publish(
        TENANT, "chat.session.created", data=example("chat.session.created")
    )
    await d.events.drain(timeout=10)
    (request,) = server.received
    assert request.headers["webhook-id"] == ev.id
    assert Webhook(ep.secret).verify(request.body, request.headers)["id"] == ev.id
    assert (await _only(d, ev.id)).status == "delivered"


# -- retries ------------------------------------------------------------------------------------


async def test_the_attempt_log_says_when_the_next_attempt_is_in_iso_8601(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Logs: event.attempt's next_attempt_at is ISO 8601 text (a renderer prints it as is), not
    a datetime (printed as its Python repr)."""
    server, script = receiver
    script.replies = [(500, b"down", {}), (200, b"ok", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    with capture_logs() as logs:
        await d.events.drain(timeout=3600)
    attempts = [entry for entry in logs if entry["event"] == "event.attempt"]
    assert [entry["outcome"] for entry in attempts] == ["pending", "delivered"]
    first = await _only(d, ev.id)
    due = attempts[0]["next_attempt_at"]
    assert isinstance(due, str), due
    assert datetime.fromisoformat(due) == first.attempts[0].attempted_at + timedelta(seconds=30)
    assert attempts[1]["next_attempt_at"] is None


async def test_failures_are_retried_on_the_schedule_with_the_same_delivery_id(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Retry: non-2xx answers retry after the schedule's delays; same event id, attempt 1, 2, 3."""
    server, script = receiver
    script.replies = [(500, b"down", {}), (404, b"", {}), (200, b"ok", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s,5m"
    )
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    report = await d.events.drain(timeout=3600)
    assert (report.attempts, report.pending) == (3, 0)
    dl = await _only(d, ev.id)
    assert dl.status == "delivered"
    assert [(a.number, a.status, a.detail) for a in dl.attempts] == [
        (1, 500, "http_status"),
        (2, 404, "http_status"),
        (3, 200, None),
    ]
    assert dl.attempts[0].response == b"down"
    gaps = [
        b.attempted_at - a.attempted_at for a, b in zip(dl.attempts, dl.attempts[1:], strict=False)
    ]
    assert gaps == [timedelta(seconds=30), timedelta(minutes=5)]
    assert [r.headers["x-vizochok-delivery"] for r in server.received] == [ev.id] * 3
    assert [r.headers["x-vizochok-attempt"] for r in server.received] == ["1", "2", "3"]
    stamps = [int(r.headers["x-vizochok-timestamp"]) for r in server.received]
    assert stamps[1] - stamps[0] == 30 and stamps[2] - stamps[1] == 300, "signed afresh"
    for request, stamp in zip(server.received, stamps, strict=True):
        assert request.headers["x-vizochok-signature"] == compute_signature(
            ep.secret, stamp, ev.body
        )


async def test_no_attempt_is_left_after_the_schedule_then_it_failed(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Retry: after the last attempt the delivery is failed, with the last attempt's detail."""
    server, script = receiver
    script.replies = [(503, b"", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="1s"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    assert (await d.events.drain(timeout=60)).pending == 0
    dl = await _only(d, ev.id)
    assert (dl.status, dl.detail, dl.next_attempt_at) == ("failed", "http_status", None)
    assert [a.number for a in dl.attempts] == [1, 2]
    assert len(server.received) == 2


async def test_the_default_schedule_is_three_attempts(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Retry: by default three attempts in all, the waits 5 min and 1 h plus at most 25 %."""
    server, script = receiver
    script.replies = [(500, b"", {})]
    d = await make(event_worker="off", clock=fake.clock, sleep=fake.sleep)
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=24 * 3600)
    dl = await _only(d, ev.id)
    assert dl.status == "failed" and len(dl.attempts) == 3
    first, second = (
        b.attempted_at - a.attempted_at for a, b in zip(dl.attempts, dl.attempts[1:], strict=False)
    )
    assert timedelta(minutes=5) <= first <= timedelta(minutes=5) * 1.25
    assert timedelta(hours=1) <= second <= timedelta(hours=1) * 1.25


async def test_drain_stops_at_its_timeout_leaving_later_retries_pending(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """drain: a retry due after the timeout is left pending, with its time."""
    server, script = receiver
    script.replies = [(500, b"", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s,5m"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    report = await d.events.drain(timeout=60)
    assert (report.attempts, report.pending) == (2, 1)
    dl = await _only(d, ev.id)
    assert dl.status == "pending" and dl.detail == "http_status"
    assert dl.next_attempt_at == dl.attempts[-1].attempted_at + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("status", "retry_after", "waited"),
    [
        (429, "120", 120.0),
        (503, "120", 120.0),
        (429, "5", 30.0),  # shorter than the schedule: the schedule's delay stands
        (429, "999999", 3600.0),  # capped at one hour
        (429, "date+200", 200.0),
        (429, "soon", 30.0),
        (500, "120", 30.0),  # only 429 and 503
    ],
)
async def test_retry_after_is_honoured_up_to_a_cap(
    make: MakeDispatcher,
    receiver: tuple[LoopbackServer, Script],
    fake: FakeTime,
    status: int,
    retry_after: str,
    waited: float,
) -> None:
    """Retry-After on 429/503 (seconds or an HTTP date) lengthens the wait, up to 1 h."""
    server, script = receiver
    if retry_after.startswith("date+"):
        when = datetime.fromtimestamp(int(fake.now) + int(retry_after[5:]), UTC)
        retry_after = format_datetime(when, usegmt=True)
    script.replies = [(status, b"", {"Retry-After": retry_after})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    dl = await _only(d, ev.id)
    assert dl.status == "pending" and dl.next_attempt_at is not None
    waited_for = (dl.next_attempt_at - dl.attempts[0].attempted_at).total_seconds()
    assert waited_for == pytest.approx(waited, abs=1.0)


async def test_retry_after_never_adds_an_attempt(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Retry-After: with no attempt left, a 429 still fails the delivery."""
    server, script = receiver
    script.replies = [(429, b"", {"Retry-After": "5"})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="none"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=60)
    assert (await _only(d, ev.id)).status == "failed"
    assert len(server.received) == 1


async def test_410_disables_the_endpoint_at_once(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """410 Gone: the endpoint is disabled (reason, time), its waiting deliveries fail; no more."""
    server, script = receiver
    script.replies = [(500, b"", {}), (410, b"gone", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s"
    )
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    first = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)  # attempt 1 of the first: 500, its retry waits 30 s
    second = await d.events.publish(TENANT, "order.updated", data=example("order.updated"))
    await d.events.drain(timeout=1)  # the second: 410
    (endpoint,) = await d.events.endpoints(TENANT)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == "the endpoint answered 410 Gone"
    assert endpoint.disabled_at is not None
    assert endpoint.disabled_at.timestamp() == pytest.approx(fake.now, abs=0.001)
    gone = await _only(d, second.id)
    assert (gone.status, gone.detail, [a.status for a in gone.attempts]) == (
        "failed",
        "http_status",
        [410],
    )
    waiting = await _only(d, first.id)
    assert (waiting.status, waiting.detail, len(waiting.attempts)) == (
        "failed",
        "endpoint_disabled",
        1,
    )
    third = await d.events.publish(TENANT, "order.created", data=example())
    assert third.deliveries == ()
    assert (await d.events.drain(timeout=3600)).pending == 0
    assert len(server.received) == 2
    assert ep.enabled, "the value returned at creation is not changed"


async def test_redirects_are_not_followed(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """Redirects: a 302 is a failed attempt; its Location is never requested."""
    server, script = receiver
    script.replies = [(302, b"", {"Location": server.url("/elsewhere")})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="none"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=60)
    dl = await _only(d, ev.id)
    assert (dl.status, dl.attempts[0].status, dl.attempts[0].detail) == (
        "failed",
        302,
        "http_status",
    )
    assert [r.path for r in server.received] == ["/hook"]


# -- time, connections and the SSRF guard ------------------------------------------------------


async def test_an_endpoint_that_hangs_times_out_at_its_timeout(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script]
) -> None:
    """Deadline: an endpoint that never answers is a timeout after its timeout_seconds, retried."""
    server, script = receiver
    script.replies = ["hang"]
    d = await make(event_worker="off", event_retry_schedule="none")
    await d.events.create_endpoint(
        TENANT, url=server.url("/hook"), event_types=["order.*"], timeout_seconds=1
    )
    ev = await d.events.publish(TENANT, "order.created", data=example())
    started = time.monotonic()
    await d.events.drain(timeout=10)
    assert 0.9 <= time.monotonic() - started < 5
    dl = await _only(d, ev.id)
    assert (dl.status, dl.attempts[0].detail, dl.attempts[0].status) == ("failed", "timeout", None)


async def test_the_deadline_covers_a_head_that_drips(make: MakeDispatcher) -> None:
    """Deadline: one limit for the whole attempt; a head dripped byte by byte cannot stretch it."""

    async def drip(request: Received, reply: Reply) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
            await reply.raw(bytes([byte]))
            await asyncio.sleep(0.2)

    async with serve(drip) as server:
        d = await make(event_worker="off", event_retry_schedule="none")
        await d.events.create_endpoint(
            TENANT, url=server.url("/hook"), event_types=["order.*"], timeout_seconds=1
        )
        ev = await d.events.publish(TENANT, "order.created", data=example())
        started = time.monotonic()
        await d.events.drain(timeout=10)
        assert time.monotonic() - started < 3
    assert (await _only(d, ev.id)).attempts[0].detail == "timeout"


async def test_a_refused_connection_is_a_connect_error_with_its_reason(
    make: MakeDispatcher,
) -> None:
    """Connection errors: nothing listening is connect_error, the reason in words, and retried."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    d = await make(event_worker="off", event_retry_schedule="none")
    await d.events.create_endpoint(
        TENANT, url=f"http://127.0.0.1:{port}/hook", event_types=["order.*"]
    )
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=10)
    (attempt,) = (await _only(d, ev.id)).attempts
    assert (attempt.detail, attempt.status) == ("connect_error", None)
    assert attempt.reason is not None and "refused" in attempt.reason


async def test_the_ssrf_guard_checks_where_it_connects(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script]
) -> None:
    """SSRF: a name resolving inward is refused at connect time (blocked_destination), unsent."""
    server, _ = receiver
    d = await make(
        event_worker="off",
        event_retry_schedule="none",
        allowed_networks="",
        resolver=ScriptedResolver("127.0.0.1"),
    )
    await d.events.create_endpoint(
        TENANT, url=f"http://tenant.test:{server.port}/hook", event_types=["*"]
    )
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=10)
    dl = await _only(d, ev.id)
    assert (dl.status, dl.attempts[0].detail) == ("failed", "blocked_destination")
    assert server.received == []


async def test_each_attempt_checks_the_url_against_todays_rules(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script]
) -> None:
    """SSRF: a URL saved while loopback was allowed is blocked once the deployment forbids it."""
    server, _ = receiver
    before = await make(event_worker="off")
    await before.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["*"])
    ev = await before.events.publish(TENANT, "order.created", data=example())
    after = await make(event_worker="off", event_retry_schedule="none", allowed_networks="")
    await after.events.drain(timeout=10)
    (attempt,) = (await _only(after, ev.id)).attempts
    assert (attempt.detail, attempt.latency_ms) == ("blocked_destination", 0.0)
    assert server.received == []


@pytest.mark.parametrize(
    ("failure", "detail"),
    [
        (httpx.ConnectError("refused"), "connect_error"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.RemoteProtocolError("garbage"), "connect_error"),
    ],
)
async def test_transport_failures_map_to_the_contracts_details(
    make: MakeDispatcher, fake: FakeTime, failure: Exception, detail: str
) -> None:
    """Failures (respx): connection errors and timeouts of any httpx transport get their detail."""
    router = respx.Router()
    router.post("https://shop.example/hook").mock(side_effect=failure)
    d = await make(
        event_worker="off",
        clock=fake.clock,
        sleep=fake.sleep,
        event_retry_schedule="none",
        transport=httpx.MockTransport(router.async_handler),
    )
    await d.events.create_endpoint(TENANT, url="https://shop.example/hook", event_types=["*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=10)
    assert (await _only(d, ev.id)).attempts[0].detail == detail


# -- one delivery by id -------------------------------------------------------------------------


async def test_deliver_due_runs_one_delivery_by_id(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Script], fake: FakeTime
) -> None:
    """deliver_due(id): claims, attempts and settles that one delivery; not due again after."""
    server, script = receiver
    script.replies = [(500, b"", {})]
    d = await make(
        event_worker="off", clock=fake.clock, sleep=fake.sleep, event_retry_schedule="30s"
    )
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["*"])
    one = await d.events.publish(TENANT, "order.created", data=example())
    two = await d.events.publish(TENANT, "order.created", data=example())
    settled = await d.events.deliver_due(one.deliveries[0].id)
    assert settled is not None and settled.status == "pending"
    assert await d.events.deliver_due(one.deliveries[0].id) is None, "its retry is not due yet"
    assert len(server.received) == 1
    assert (await _only(d, two.id)).attempts == ()
    fake.now += 30
    script.replies = [(200, b"", {})]
    again = await d.events.deliver_due(one.deliveries[0].id)
    assert again is not None and again.status == "delivered"
    assert await d.events.deliver_due("dlv_unknown") is None
