"""Operating event endpoints (docs/webhooks.md §9): retry, recover, auto-disable, retention and
endpoint tests, through ``Dispatcher.events`` against a real loopback receiver.

The worker is off and time is fake unless a test says otherwise: ``drain`` makes the attempts,
and moving ``FakeTime.now`` ages what the database holds (every time is written from the
injected clock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    EndpointDisabled,
    InvalidCall,
    compute_signature,
)
from vizochok_dispatch.events._procrastinate import PURGE_CRON, PURGE_TASK
from vizochok_dispatch.events._store import EventStore
from vizochok_dispatch.events._tables import EventAttemptRow, EventDeliveryRow, EventRow

from .support import TENANT, MakeDispatcher, example, make, settings_for

__all__ = ["make"]

pytestmark = pytest.mark.loopback

DAY = 86_400.0
OTHER = "tenant-2"


@dataclass
class Receiver:
    """Answers every request with ``status`` (and ``headers``, ``body``); ``"hang"`` never
    answers."""

    status: int | str = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    async def __call__(self, request: Received, reply: Reply) -> None:
        if self.status == "hang":
            await asyncio.Event().wait()
        assert isinstance(self.status, int)
        await reply.send(self.status, self.body, headers=self.headers)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[LoopbackServer, Receiver]]:
    handler = Receiver()
    async with serve(handler) as server:
        yield server, handler


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


async def _dispatcher(make: MakeDispatcher, fake: FakeTime, **settings: object) -> Dispatcher:
    options: dict[str, object] = {"event_worker": "off", "event_retry_schedule": "none"}
    options.update(settings)
    return await make(clock=fake.clock, sleep=fake.sleep, **options)


async def _failed(d: Dispatcher, url: str, count: int = 1) -> tuple[str, list[str]]:
    """An endpoint at ``url`` and ``count`` deliveries to it, drained (one attempt each)."""
    ep = await d.events.create_endpoint(TENANT, url=url, event_types=["order.*"])
    ids = []
    for _ in range(count):
        ev = await d.events.publish(TENANT, "order.created", data=example())
        ids.append(ev.deliveries[0].id)
    await d.events.drain(timeout=1)
    return ep.id, ids


def _store(d: Dispatcher) -> EventStore:
    store = d.events._store
    assert store is not None
    return store


# -- retry ---------------------------------------------------------------------------------------


async def test_retry_makes_a_manual_attempt_now_with_the_same_event_id(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retry: a failed delivery is attempted now (trigger manual, attempt 2, same event id)."""
    server, handler = receiver
    handler.status = 500
    d = await _dispatcher(make, fake)
    _, (delivery_id,) = await _failed(d, server.url("/hook"))
    assert (await d.events.delivery(TENANT, delivery_id)).status == "failed"  # type: ignore[union-attr]
    handler.status = 200
    fake.now += 3600
    retried = await d.events.retry_delivery(TENANT, delivery_id)
    assert not isinstance(retried, str) and retried is not None
    assert retried.status == "delivered" and retried.detail is None
    assert [(a.number, a.trigger, a.status) for a in retried.attempts] == [
        (1, "scheduled", 500),
        (2, "manual", 200),
    ]
    first, second = server.received
    assert second.headers["x-vizochok-delivery"] == first.headers["x-vizochok-delivery"]
    assert second.headers["x-vizochok-attempt"] == "2"
    assert second.body == first.body


async def test_retry_sends_a_delivered_delivery_again(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retry: any status, a delivered one included, is sent again with its delivery id."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    _, (delivery_id,) = await _failed(d, server.url("/hook"))
    retried = await d.events.retry_delivery(TENANT, delivery_id)
    assert not isinstance(retried, str) and retried is not None
    assert retried.status == "delivered" and len(retried.attempts) == 2
    assert len(server.received) == 2
    assert len({r.headers["x-vizochok-delivery"] for r in server.received}) == 1


async def test_a_failed_manual_attempt_goes_on_with_the_schedule(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retry: a failing manual attempt is judged like any: the schedule's next delay, or failed."""
    server, handler = receiver
    handler.status = 503
    d = await _dispatcher(make, fake, event_retry_schedule="30s")
    _, (delivery_id,) = await _failed(d, server.url("/hook"))
    assert (await d.events.drain(timeout=60)).attempts == 1  # attempt 2, after 30 s
    retried = await d.events.retry_delivery(TENANT, delivery_id)
    assert not isinstance(retried, str) and retried is not None
    assert (retried.status, retried.detail, len(retried.attempts)) == ("failed", "http_status", 3)


async def test_retry_refuses_another_tenants_delivery_and_sends_nothing(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retry: another tenant's delivery id is no delivery (None); nothing is sent."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    _, (delivery_id,) = await _failed(d, server.url("/hook"))
    assert await d.events.retry_delivery(OTHER, delivery_id) is None
    assert await d.events.retry_delivery(TENANT, "dlv_unknown") is None
    assert len(server.received) == 1


async def test_retry_refuses_while_an_attempt_is_under_way(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retry: a delivery another attempt holds (its lease) is in_flight; nothing is sent."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    now = datetime.fromtimestamp(fake.now, UTC)
    assert await _store(d).claim_one(ev.deliveries[0].id, now=now, token="held") is not None
    assert await d.events.retry_delivery(TENANT, ev.deliveries[0].id) == "in_flight"
    assert server.received == []


# -- recover -------------------------------------------------------------------------------------


async def test_recover_requeues_the_failed_deliveries_of_the_range(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Recover: exactly the endpoint's failed deliveries published in [since, until) go again."""
    server, handler = receiver
    handler.status = 500
    d = await _dispatcher(make, fake)
    start = datetime.fromtimestamp(fake.now, UTC)
    endpoint_id, early = await _failed(d, server.url("/hook"), 2)
    fake.now += 3600
    since = datetime.fromtimestamp(fake.now, UTC)
    ev = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    in_range = [ev.deliveries[0].id]
    for _ in range(2):
        ev = await d.events.publish(TENANT, "order.created", data=example())
        in_range.append(ev.deliveries[0].id)
    handler.status = 200
    await d.events.drain(timeout=1)  # the last two are delivered: not recovered
    fake.now += 3600
    until = datetime.fromtimestamp(fake.now, UTC)
    handler.status = 500
    late = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    fake.now += 60

    report = await d.events.recover(TENANT, endpoint_id, since=since, until=until)
    assert not isinstance(report, str) and report is not None
    assert (report.recovered, report.more, report.since, report.until) == (1, False, since, until)
    statuses = {dl.id: dl.status for dl in await d.events.deliveries(TENANT)}
    assert statuses == {
        early[0]: "failed",
        early[1]: "failed",
        in_range[0]: "pending",
        in_range[1]: "delivered",
        in_range[2]: "delivered",
        late.deliveries[0].id: "failed",
    }
    handler.status = 200
    assert (await d.events.drain(timeout=1)).attempts == 1
    recovered = await d.events.delivery(TENANT, in_range[0])
    assert recovered is not None and recovered.status == "delivered"
    assert [a.trigger for a in recovered.attempts] == ["scheduled", "manual"]
    everything = await d.events.recover(TENANT, endpoint_id, since=start)
    assert not isinstance(everything, str) and everything is not None
    assert everything.recovered == 3  # until defaults to now


async def test_recover_is_bounded_and_says_when_more_are_left(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Recover: at most limit a call, in batches; more=True until the range is done."""
    server, handler = receiver
    handler.status = 500
    d = await _dispatcher(make, fake)
    since = datetime.fromtimestamp(fake.now - 1, UTC)
    endpoint_id, _ = await _failed(d, server.url("/hook"), 5)
    first = await d.events.recover(TENANT, endpoint_id, since=since, limit=3)
    second = await d.events.recover(TENANT, endpoint_id, since=since, limit=3)
    assert not isinstance(first, str) and first is not None
    assert not isinstance(second, str) and second is not None
    assert (first.recovered, first.more, second.recovered, second.more) == (3, True, 2, False)
    # batches smaller than the limit: the store's loop, one short transaction each
    await d.events.drain(timeout=1)
    recovered, more = await _store(d).recover(
        TENANT,
        endpoint_id,
        since=since,
        until=datetime.fromtimestamp(fake.now + 1, UTC),
        now=datetime.fromtimestamp(fake.now, UTC),
        limit=10,
        batch_size=2,
    )
    assert (recovered, more) == (5, False)


async def test_recover_refuses_what_it_cannot_do(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Recover: another tenant's endpoint is None, a disabled one is refused, bad ranges raise."""
    server, handler = receiver
    handler.status = 410
    d = await _dispatcher(make, fake)
    since = datetime.fromtimestamp(fake.now - 60, UTC)
    endpoint_id, _ = await _failed(d, server.url("/hook"))
    assert await d.events.recover(OTHER, endpoint_id, since=since) is None
    assert await d.events.recover(TENANT, "ep_unknown", since=since) is None
    assert await d.events.recover(TENANT, endpoint_id, since=since) == "endpoint_disabled"
    with pytest.raises(InvalidCall, match=r"^until must be later than since"):
        await d.events.recover(TENANT, endpoint_id, since=since, until=since)
    with pytest.raises(InvalidCall, match=r"^since must be a datetime with a time zone"):
        await d.events.recover(TENANT, endpoint_id, since=datetime(2026, 1, 1))
    with pytest.raises(InvalidCall, match=r"^limit must be a whole number from 1 to 10000"):
        await d.events.recover(TENANT, endpoint_id, since=since, limit=10_001)


# -- auto-disable --------------------------------------------------------------------------------


async def test_an_endpoint_is_disabled_after_n_failed_deliveries_in_a_row(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable (count): the Nth failed delivery in a row disables the endpoint, with its
    reason and time, the log event and the hook; its deliveries stay failed and recoverable."""
    server, handler = receiver
    handler.status = 500
    told: list[EndpointDisabled] = []
    d = await _dispatcher(
        make, fake, event_disable_after_failures=3, on_event_endpoint_disabled=told.append
    )
    since = datetime.fromtimestamp(fake.now - 1, UTC)
    with capture_logs() as logs:
        endpoint_id, ids = await _failed(d, server.url("/hook"), 2)
        (endpoint,) = await d.events.endpoints(TENANT)
        assert endpoint.enabled and told == []
        await d.events.publish(TENANT, "order.created", data=example())
        await d.events.drain(timeout=1)
    (endpoint,) = await d.events.endpoints(TENANT)
    assert not endpoint.enabled
    assert endpoint.disabled_reason == (
        "3 deliveries failed in a row (VIZOCHOK_EVENT_DISABLE_AFTER_FAILURES=3)"
    )
    assert endpoint.disabled_at == datetime.fromtimestamp(fake.now, UTC)
    (disabled,) = told
    assert (disabled.endpoint_id, disabled.cause, disabled.failed_deliveries) == (
        endpoint_id,
        "too_many_failures",
        3,
    )
    logged = [entry for entry in logs if entry["event"] == "event_endpoint.disabled"]
    assert len(logged) == 1
    assert (logged[0]["endpoint_id"], logged[0]["cause"]) == (endpoint_id, "too_many_failures")
    statuses = [dl.status for dl in await d.events.deliveries(TENANT)]
    assert statuses == ["failed"] * 3
    assert (await d.events.publish(TENANT, "order.created", data=example())).deliveries == ()
    # enabled again (what the endpoint PATCH calls), the failed ones are recoverable
    await d.events.update_endpoint(TENANT, endpoint_id, enabled=True)
    report = await d.events.recover(TENANT, endpoint_id, since=since)
    assert not isinstance(report, str) and report is not None and report.recovered == 3
    assert ids[0] in {dl.id for dl in await d.events.deliveries(TENANT) if dl.status == "pending"}


async def test_an_endpoint_failing_for_the_configured_time_is_disabled(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable (time): every attempt failed since the first failure, for the configured
    time, disables the endpoint at its next failure; a pending delivery fails with it."""
    server, handler = receiver
    handler.status = 500
    told: list[EndpointDisabled] = []
    d = await _dispatcher(
        make,
        fake,
        event_disable_after="2h",
        event_disable_after_failures=0,
        event_retry_schedule="1h,1h,1h",
        on_event_endpoint_disabled=told.append,
    )
    first_failure = datetime.fromtimestamp(fake.now, UTC)
    endpoint_id, (delivery_id,) = await _failed(d, server.url("/hook"))
    fake.now += 3600
    await d.events.drain(timeout=1)  # attempt 2, 1 h in: still enabled
    (endpoint,) = await d.events.endpoints(TENANT)
    assert endpoint.enabled
    fake.now += 3600
    await d.events.drain(timeout=1)  # attempt 3, 2 h in
    (endpoint,) = await d.events.endpoints(TENANT)
    assert not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert endpoint.disabled_reason.startswith("every attempt failed for 2 hours or more")
    (disabled,) = told
    assert (disabled.cause, disabled.failing_since) == ("failing_too_long", first_failure)
    delivery = await d.events.delivery(TENANT, delivery_id)
    assert delivery is not None
    assert (delivery.status, delivery.detail, len(delivery.attempts)) == (
        "failed",
        "endpoint_disabled",
        3,
    )
    assert endpoint_id == disabled.endpoint_id


async def test_one_delivered_attempt_resets_the_counts(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable: failures must be in a row; a delivered one starts the count afresh."""
    server, handler = receiver
    d = await _dispatcher(make, fake, event_disable_after_failures=3, event_disable_after="1h")
    handler.status = 500
    await _failed(d, server.url("/hook"), 2)
    handler.status = 200
    fake.now += 1800
    await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    handler.status = 500
    fake.now += 1800  # an hour after the first failure, but not of failures only
    for _ in range(2):
        await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    (endpoint,) = await d.events.endpoints(TENANT)
    assert endpoint.enabled


async def test_enabling_again_starts_the_count_afresh(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable: an endpoint disabled and enabled again by hand counts from zero."""
    server, handler = receiver
    handler.status = 500
    d = await _dispatcher(make, fake, event_disable_after_failures=3)
    endpoint_id, _ = await _failed(d, server.url("/hook"), 2)
    await d.events.update_endpoint(TENANT, endpoint_id, enabled=False)
    await d.events.update_endpoint(TENANT, endpoint_id, enabled=True)
    await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)  # the third failure in a row, but the first since
    (endpoint,) = await d.events.endpoints(TENANT)
    assert endpoint.enabled


async def test_tests_and_a_tests_410_never_disable(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable: endpoint tests do not count, and a 410 answering a test disables nothing."""
    server, handler = receiver
    handler.status = 500
    d = await _dispatcher(make, fake, event_disable_after_failures=1)
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    for status in (500, 500, 410):
        handler.status = status
        report = await d.events.test_endpoint(TENANT, ep.id, event_type="order.created")
        assert report is not None and not report.ok
    (endpoint,) = await d.events.endpoints(TENANT)
    assert endpoint.enabled
    handler.status = 500
    await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)  # the first real failed delivery: the count is 1
    (endpoint,) = await d.events.endpoints(TENANT)
    assert not endpoint.enabled


async def test_a_failing_hook_does_not_stop_delivery_and_an_async_hook_is_awaited(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Auto-disable: a coroutine hook is awaited; a hook that raises is logged, and dropped."""
    server, handler = receiver
    handler.status = 410
    seen: list[str] = []

    async def hook(disabled: EndpointDisabled) -> None:
        seen.append(disabled.cause)
        raise RuntimeError("the pager is down")

    d = await _dispatcher(make, fake, on_event_endpoint_disabled=hook)
    with capture_logs() as logs:
        await _failed(d, server.url("/hook"))
    assert seen == ["gone"]
    assert "event_endpoint.disabled_hook_failed" in {entry["event"] for entry in logs}
    (delivery,) = await d.events.deliveries(TENANT)
    assert delivery.status == "failed"


# -- retention -----------------------------------------------------------------------------------


async def _count(d: Dispatcher) -> tuple[int, int, int]:
    store = d.store.inner
    async with store.engine.connect() as conn:  # type: ignore[attr-defined]
        counted = []
        for table in (EventRow, EventDeliveryRow, EventAttemptRow):
            counted.append(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counted[0], counted[1], counted[2]


async def test_retention_purges_delivered_then_failed_and_never_pending(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retention: delivered rows go after 30 days, failed after 90, pending never; events
    go with their last delivery."""
    server, handler = receiver
    d = await _dispatcher(make, fake)
    await _failed(d, server.url("/hook"), 2)  # delivered
    handler.status = 500
    for _ in range(3):
        await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)  # failed
    await d.events.create_endpoint(TENANT, url=server.url("/later"), event_types=["chat.*"])
    await d.events.publish(TENANT, "chat.session.created", data=example("chat.session.created"))
    assert await _count(d) == (6, 6, 5)

    fake.now += 29 * DAY
    assert await d.events.purge_expired() == type(await d.events.purge_expired())(0, 0, 0)
    fake.now += 2 * DAY
    report = await d.events.purge_expired()
    assert (report.deliveries, report.attempts, report.events, report.more) == (2, 2, 2, False)
    assert await _count(d) == (4, 4, 3)
    fake.now += 60 * DAY
    report = await d.events.purge_expired(batch_size=2)
    assert (report.deliveries, report.attempts, report.events) == (3, 3, 3)
    assert await _count(d) == (1, 1, 0)
    (pending,) = await d.events.deliveries(TENANT)
    assert pending.status == "pending"


async def test_retention_works_in_bounded_batches(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retention: batch_size rows a transaction; max_batches stops early and says more."""
    server, _ = receiver
    d = await _dispatcher(make, fake, event_retain_delivered="1d")
    await _failed(d, server.url("/hook"), 5)
    fake.now += 2 * DAY
    report = await d.events.purge_expired(batch_size=2, max_batches=2)
    assert (report.deliveries, report.more) == (4, True)
    report = await d.events.purge_expired(batch_size=2)
    assert (report.deliveries, report.events, report.more) == (1, 5, False)
    assert await _count(d) == (0, 0, 0)


async def test_the_embedded_worker_purges_when_it_starts(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retention: the embedded worker runs the purge itself (at start, then every hour)."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    await _failed(d, server.url("/hook"), 3)
    later = FakeTime(now=fake.now + 31 * DAY)
    await make(clock=later.clock, sleep=later.sleep, event_retry_schedule="none")
    async with asyncio.timeout(10):
        while await _count(d) != (0, 0, 0):  # noqa: ASYNC110 - polls the database, bounded
            await asyncio.sleep(0.02)


def test_retention_and_auto_disable_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings: durations take units, defaults are 5d/1000/30d/90d, errors name the setting."""
    defaults = DispatchSettings()
    assert (
        defaults.event_disable_after,
        defaults.event_disable_after_failures,
        defaults.event_retain_delivered,
        defaults.event_retain_failed,
    ) == (5 * DAY, 1000, 30 * DAY, 90 * DAY)
    monkeypatch.setenv("VIZOCHOK_EVENT_DISABLE_AFTER", "12h")
    monkeypatch.setenv("VIZOCHOK_EVENT_RETAIN_FAILED", "180d")
    monkeypatch.setenv("VIZOCHOK_EVENT_RETAIN_DELIVERED", "86400")
    chosen = DispatchSettings()
    assert (chosen.event_disable_after, chosen.event_retain_failed) == (43_200.0, 180 * DAY)
    assert chosen.event_retain_delivered == DAY
    for name, value, message in [
        ("VIZOCHOK_EVENT_DISABLE_AFTER", "5 parsecs", "has the unknown unit 'parsecs'"),
        ("VIZOCHOK_EVENT_DISABLE_AFTER", "soon", "is not a duration"),
        ("VIZOCHOK_EVENT_RETAIN_DELIVERED", "12h", "must be from 1d to 3650d"),
        ("VIZOCHOK_EVENT_RETAIN_FAILED", "11000d", "must be from 1d to 3650d"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError) as caught:
            DispatchSettings()
        assert f"{name} (" in str(caught.value) and message in str(caught.value)
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIZOCHOK_EVENT_DISABLE_AFTER_FAILURES", "-1")
    with pytest.raises(ValidationError, match="event_disable_after_failures"):
        DispatchSettings()


# -- endpoint tests ------------------------------------------------------------------------------


async def test_an_endpoint_test_sends_the_signed_example_once_and_records_it(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Test: the type's catalog example goes out signed, now; recorded as a test delivery."""
    server, handler = receiver
    handler.body = b'{"received": true}'
    d = await _dispatcher(make, fake)
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    report = await d.events.test_endpoint(TENANT, ep.id, event_type="order.updated")
    assert report is not None
    assert (report.ok, report.status, report.detail, report.hint, report.problems) == (
        True,
        200,
        None,
        None,
        (),
    )
    assert report.subscribed and report.response_body == '{"received": true}'
    (request,) = server.received
    assert request.json()["data"] == example("order.updated")  # type: ignore[index]
    timestamp = request.headers["x-vizochok-timestamp"]
    signed = compute_signature(ep.secret, int(timestamp), request.body)
    assert request.headers["x-vizochok-signature"] == signed
    assert request.headers["x-vizochok-delivery"] == report.event_id
    (delivery,) = await d.events.deliveries(TENANT)
    assert (delivery.id, delivery.test, delivery.status) == (report.delivery_id, True, "delivered")
    assert [a.trigger for a in delivery.attempts] == ["test"]


@pytest.mark.parametrize(
    ("status", "headers", "body", "problem", "hint"),
    [
        (
            401,
            {},
            b'{"error": "signature_mismatch"}',
            "the receiver answered signature_mismatch",
            "your receiver rejected the signature: is it using this endpoint's current secret",
        ),
        (403, {}, b"", "http_status: HTTP 403", "rejected the signature"),
        (
            302,
            {"Location": "https://shop.example/new"},
            b"",
            "http_status: HTTP 302",
            "redirects are not followed: set the endpoint's URL to where it redirects "
            "(https://shop.example/new)",
        ),
        (410, {}, b"", "HTTP 410", "a real delivery would disable this endpoint"),
        (404, {}, b"", "HTTP 404", "check the endpoint URL"),
        (500, {}, b"boom", "HTTP 500", "see its logs"),
    ],
)
async def test_a_failed_test_says_what_was_wrong_and_what_to_do(
    make: MakeDispatcher,
    receiver: tuple[LoopbackServer, Receiver],
    fake: FakeTime,
    status: int,
    headers: dict[str, str],
    body: bytes,
    problem: str,
    hint: str,
) -> None:
    """Test report: each failing answer gets its problem line, the answer's body and a hint."""
    server, handler = receiver
    handler.status, handler.headers, handler.body = status, headers, body
    d = await _dispatcher(make, fake)
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    report = await d.events.test_endpoint(TENANT, ep.id, event_type="order.created")
    assert report is not None and not report.ok
    assert (report.status, report.detail) == (status, "http_status")
    assert any(problem in line for line in report.problems), report.problems
    assert report.hint is not None and hint in report.hint
    assert report.response_body == (body.decode() if body else "")
    assert len(server.received) == 1  # never retried
    (delivery,) = await d.events.deliveries(TENANT)
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)


async def test_a_test_to_nothing_listening_says_connection_refused(
    make: MakeDispatcher, fake: FakeTime
) -> None:
    """Test report: a closed port is connect_error, refused, with the is-it-running hint."""
    async with serve(Receiver()) as server:
        url = server.url("/hook")
    d = await _dispatcher(make, fake)
    ep = await d.events.create_endpoint(TENANT, url=url, event_types=["order.*"])
    report = await d.events.test_endpoint(TENANT, ep.id, event_type="order.created")
    assert report is not None and (report.detail, report.status) == ("connect_error", None)
    assert report.problems[0].startswith("connect_error: connection refused")
    assert report.hint is not None and "is your receiver running?" in report.hint


async def test_a_test_that_hangs_is_a_timeout_at_the_endpoints_timeout(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver]
) -> None:
    """Test report: no answer within timeout_seconds is a timeout, with the answer-first hint."""
    server, handler = receiver
    handler.status = "hang"
    d = await make(event_worker="off")
    ep = await d.events.create_endpoint(
        TENANT, url=server.url("/hook"), event_types=["order.*"], timeout_seconds=1
    )
    report = await d.events.test_endpoint(TENANT, ep.id, event_type="order.created")
    assert report is not None and (report.detail, report.status) == ("timeout", None)
    assert "timeout_seconds (1 s)" in report.problems[0]
    assert report.hint is not None and report.hint.startswith("answer 2xx as soon as")
    assert report.latency_ms is not None and 900 <= report.latency_ms < 5000


async def test_a_test_of_an_unsubscribed_type_is_sent_and_says_so(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Test: a type the endpoint does not subscribe to is still sent; subscribed=False says so."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    report = await d.events.test_endpoint(TENANT, ep.id, event_type="chat.session.created")
    assert report is not None and report.ok and not report.subscribed
    assert report.problems == (
        "this endpoint does not subscribe to chat.session.created: real events of this type "
        "are not sent to it",
    )
    assert len(server.received) == 1


async def test_a_test_refuses_an_unknown_type_and_another_tenants_endpoint(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Test: an unknown type raises naming event_type; another tenant's endpoint is None."""
    server, _ = receiver
    d = await _dispatcher(make, fake)
    ep = await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
    with pytest.raises(InvalidCall, match=r"^event_type 'order\.shipped' is not an event type"):
        await d.events.test_endpoint(TENANT, ep.id, event_type="order.shipped")
    assert await d.events.test_endpoint(OTHER, ep.id, event_type="order.created") is None
    assert server.received == []


async def test_a_disabled_endpoint_can_be_tested(
    make: MakeDispatcher, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Test: a disabled endpoint is tested too (check the receiver before enabling it again)."""
    server, handler = receiver
    handler.status = 410
    d = await _dispatcher(make, fake)
    endpoint_id, _ = await _failed(d, server.url("/hook"))
    handler.status = 200
    report = await d.events.test_endpoint(TENANT, endpoint_id, event_type="order.created")
    assert report is not None and report.ok
    (endpoint,) = await d.events.endpoints(TENANT)
    assert not endpoint.enabled


@pytest.mark.postgres
async def test_procrastinate_workers_purge_on_an_hourly_periodic_task(
    postgres_url: str, receiver: tuple[LoopbackServer, Receiver], fake: FakeTime
) -> None:
    """Retention on procrastinate: an hourly periodic task (one worker at a time) runs the
    purge, as the embedded worker does itself."""
    server, _ = receiver
    settings = settings_for(postgres_url, event_worker="procrastinate", event_retry_schedule="none")
    async with Dispatcher.from_settings(settings, clock=fake.clock, sleep=fake.sleep) as d:
        await d.events.create_endpoint(TENANT, url=server.url("/hook"), event_types=["order.*"])
        event = await d.events.publish(TENANT, "order.created", data=example())
        assert await d.events.deliver_due(event.deliveries[0].id) is not None
        assert await _count(d) == (1, 1, 1)
        app = d.events.queue.app
        (periodic,) = [
            entry
            for (name, _), entry in app.periodic_registry.periodic_tasks.items()
            if name == PURGE_TASK
        ]
        assert (periodic.cron, periodic.task.queueing_lock) == (PURGE_CRON, PURGE_TASK)
        await periodic.task.func(timestamp=0)  # a tick now: nothing old enough yet
        assert await _count(d) == (1, 1, 1)
        fake.now += 31 * DAY
        await periodic.task.func(timestamp=0)
        assert await _count(d) == (0, 0, 0)
