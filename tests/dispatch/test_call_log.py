"""The synchronous call log (issue 13): what is kept, the sample, the bounded queue, flushing,
retention and pages; on SQLite and PostgreSQL, with respx as the tenant and time injected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from tests.dispatch.conftest import CART_GET_URL, CART_URL, PRODUCTS_URL, SECRET
from tests.events.support import settings_for, wait_for
from tests.support.fakes import FakeTime
from vizochok_dispatch import SIGNATURE_HEADER, Dispatcher, InvalidCall
from vizochok_dispatch.webhooks import _calllog_store
from vizochok_dispatch.webhooks._calllog_store import WebhookCallRow

OK_PRODUCTS = {"products": [{"sku": "a", "price": 1.5, "in_stock": True}]}
Make = Callable[..., Awaitable[Dispatcher]]


def randoms(*values: float) -> Callable[[], float]:
    """An injected random source giving ``values`` in turn."""
    given: Iterator[float] = iter(values)
    return lambda: next(given)


@pytest.fixture
async def make(database_url: str, router: respx.Router, fake_time: FakeTime) -> AsyncIterator[Make]:
    """``await make(**settings, rand=...)``: an entered dispatcher on the test's database,
    tenant ``t1`` configured, HTTP to respx; the writer waits a minute unless flushed."""
    async with AsyncExitStack() as stack:

        async def build(
            *, rand: Callable[[], float] | None = None, cart_get: bool = True, **options: Any
        ) -> Dispatcher:
            settings = settings_for(
                database_url, **{"event_worker": "off", "call_log_flush_seconds": 60, **options}
            )
            dispatcher = Dispatcher.from_settings(
                settings,
                transport=httpx.MockTransport(router.async_handler),
                clock=fake_time.clock,
                sleep=fake_time.sleep,
                call_log_random=rand,
            )
            await stack.enter_async_context(dispatcher)
            await dispatcher.store.save_config(
                "t1",
                products_url=PRODUCTS_URL,
                cart_url=CART_URL,
                cart_get_url=CART_GET_URL if cart_get else None,
                timeout_seconds=2.0,
                secret=SECRET,
            )
            return dispatcher

        yield build


async def products(dispatcher: Dispatcher, tenant: str = "t1") -> str | None:
    """One products call; its delivery id."""
    _, delivery = await dispatcher.check_products_with_delivery(tenant, skus=["a"], store_id="s")
    return delivery.delivery_id if delivery else None


async def test_failures_of_every_kind_are_logged_with_their_attempts(
    make: Make, router: respx.Router, fake_time: FakeTime
) -> None:
    """Call log: each failure detail is an entry with its delivery id, attempts and answer."""
    dispatcher = await make(cart_get=False, circuit_failure_threshold=2, call_log_sample_rate=0)
    router.post(PRODUCTS_URL).mock(
        side_effect=[
            httpx.Response(500, text="database is down"),
            httpx.Response(503, text="still down"),
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
        ]
    )
    router.post(CART_URL).mock(return_value=httpx.Response(200, text="not json"))
    first = await products(dispatcher)  # 500, then 503 after the one retry
    fake_time.now += 1
    second = await products(dispatcher)  # timeout (opens the circuit: two failures)
    fake_time.now += 1
    third = await products(dispatcher)  # circuit_open: nothing sent
    fake_time.now += 1
    cart = await dispatcher.cart_clear("t1", store_id="s", session_id="u")
    fake_time.now += 1
    load = await dispatcher.load_cart("t1", store_id="s", session_id="u")
    assert not cart.ok and not load.loaded
    await dispatcher.call_log.flush()

    page = await dispatcher.call_log.calls("t1")
    by_detail = {call.detail: call for call in page.items}
    assert [call.detail for call in page.items] == [
        "not_configured",
        "invalid_response",
        "circuit_open",
        "timeout",
        "http_status",
    ]
    assert {call.outcome for call in page.items} == {"failed"}
    failed = by_detail["http_status"]
    assert failed.delivery_id == first
    assert failed.webhook == "products"
    assert [(a.number, a.status, a.detail) for a in failed.attempts] == [
        (1, 500, "http_status"),
        (2, 503, "http_status"),
    ]
    assert failed.status == 503
    assert failed.response == b"still down"
    assert by_detail["timeout"].delivery_id == second
    assert [a.detail for a in by_detail["timeout"].attempts] == ["timeout"]
    assert third is None
    assert by_detail["circuit_open"].delivery_id is None
    assert by_detail["circuit_open"].attempts == ()
    assert by_detail["invalid_response"].webhook == "cart"
    assert by_detail["invalid_response"].attempts[0].status == 200
    assert by_detail["invalid_response"].response is None  # only non-200 answers are kept
    assert by_detail["invalid_response"].problems == ("body is not JSON",)
    assert by_detail["not_configured"].webhook == "cart_get"
    assert dispatcher.call_log.written == 5
    assert dispatcher.call_log.dropped == 0


async def test_a_connection_failure_keeps_its_reason(make: Make, router: respx.Router) -> None:
    """Call log: a connect_error's attempt keeps why the connection failed."""
    dispatcher = await make()
    router.post(PRODUCTS_URL).mock(side_effect=httpx.ConnectError("Connection refused"))
    await products(dispatcher)
    await dispatcher.call_log.flush()
    (call,) = (await dispatcher.call_log.calls("t1")).items
    assert call.detail == "connect_error"
    assert call.attempts[0].reason


async def test_successes_are_sampled_by_the_injected_random_source(
    make: Make, router: respx.Router
) -> None:
    """Call log: a successful call is kept when the random draw is below the sample rate."""
    dispatcher = await make(call_log_sample_rate=0.25, rand=randoms(0.9, 0.1, 0.25, 0.2))
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, json=OK_PRODUCTS))
    ids = [await products(dispatcher) for _ in range(4)]
    await dispatcher.call_log.flush()
    page = await dispatcher.call_log.calls("t1")
    assert {call.delivery_id for call in page.items} == {ids[1], ids[3]}
    assert {(call.outcome, call.detail, call.status) for call in page.items} == {("ok", None, 200)}


async def test_a_reply_with_problems_is_kept_whatever_the_sample(
    make: Make, router: respx.Router
) -> None:
    """Call log: a delivered call whose reply had problem lines is kept, with those lines."""
    dispatcher = await make(call_log_sample_rate=0)
    reply = {"products": [{"sku": "a", "price": 1.5, "in_stock": True}, {"sku": "zzz"}]}
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(200, json=reply))
    await products(dispatcher)
    await dispatcher.call_log.flush()
    (call,) = (await dispatcher.call_log.calls("t1")).items
    assert call.outcome == "ok"
    assert call.problems
    assert all(isinstance(line, str) and line for line in call.problems)


async def test_the_setting_turns_the_log_off(make: Make, router: respx.Router) -> None:
    """Call log: VIZOCHOK_CALL_LOG=off keeps nothing and reads no error body."""
    dispatcher = await make(call_log=False)
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(500, text="down"))
    _, delivery = await dispatcher.check_products_with_delivery("t1", skus=["a"], store_id="s")
    await dispatcher.call_log.flush()
    assert delivery is not None and delivery.error_body is None
    assert (await dispatcher.call_log.calls("t1")).items == ()
    assert dispatcher.call_log.queued == 0


async def test_a_full_queue_drops_and_counts_without_blocking(
    make: Make, router: respx.Router
) -> None:
    """Call log: beyond the queue's size entries are dropped and counted (also in the
    metric); calls go on."""
    dispatcher = await make(call_log_queue_size=3, call_log_batch_size=100)
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(400))
    for _ in range(5):
        assert await products(dispatcher) is not None
    assert dispatcher.call_log.queued == 3
    assert dispatcher.call_log.dropped_queue_full == 2
    assert dispatcher.metrics is not None
    assert dispatcher.metrics.registry.get_sample_value("vizochok_call_log_dropped_total") == 2
    await dispatcher.call_log.flush()
    assert len((await dispatcher.call_log.calls("t1")).items) == 3
    assert (dispatcher.call_log.written, dispatcher.call_log.dropped) == (3, 2)


async def test_closing_the_dispatcher_writes_what_is_queued(
    database_url: str, router: respx.Router, fake_time: FakeTime, make: Make
) -> None:
    """Call log: entries still queued when the dispatcher closes are written."""
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(404))
    settings = settings_for(database_url, event_worker="off", call_log_flush_seconds=60)
    first = Dispatcher.from_settings(
        settings, transport=httpx.MockTransport(router.async_handler), clock=fake_time.clock
    )
    async with first:
        await first.store.save_config(
            "t1", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET
        )
        ids = [await products(first) for _ in range(2)]
        assert first.call_log.queued == 2
    reader = await make()
    assert {call.delivery_id for call in (await reader.call_log.calls("t1")).items} == set(ids)


async def test_an_entry_holds_no_secret_signature_body_or_query(
    make: Make, router: respx.Router
) -> None:
    """Call log: no secret, signature, request body or URL query reaches a stored row; a
    secret or signature the tenant's answer echoes is cut out."""
    dispatcher = await make(call_log_sample_rate=1.0)
    sent: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        signature = request.headers[SIGNATURE_HEADER]
        sent.append(signature)
        head = f"bad signature {signature}; we use {SECRET}; "
        # the secret again, its first 10 characters inside the 4 KiB kept
        return httpx.Response(401, text=head + "x" * (4096 - len(head) - 10) + SECRET)

    router.post(PRODUCTS_URL).mock(side_effect=echo)
    router.get(url__startswith=CART_GET_URL).mock(return_value=httpx.Response(500, text="no"))
    router.post(CART_URL).mock(return_value=httpx.Response(200, json={"ok": True}))
    await dispatcher.check_products("t1", skus=["sku-canary-77"], store_id="store-canary-55")
    await dispatcher.load_cart("t1", store_id="store-canary-66", session_id="session-canary-99")
    await dispatcher.cart_add(
        "t1",
        store_id="s",
        session_id="session-canary-11",
        sku="sku-canary-22",
        name="Молоко",
        quantity=1,
        price="45.90",
    )
    await dispatcher.call_log.flush()
    assert dispatcher.call_log.written == 3
    table = WebhookCallRow.__table__
    async with dispatcher.store.inner.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = [dict(row._mapping) for row in await conn.execute(select(table))]
    stored = repr(rows)
    canaries = [
        SECRET,
        SECRET[:12],
        "canary",
        *sent,
        *(s.removeprefix("sha256=")[:16] for s in sent),
    ]
    assert all(canary not in stored for canary in canaries)
    kept = next(row["response"] for row in rows if row["status_code"] == 401)
    assert kept.startswith(b"bad signature sha256=[redacted]; we use [redacted]; xxx")
    assert kept.endswith(b"x[redacted]")  # the secret's start, cut by the 4 KiB limit
    assert len(kept) <= 4096


async def test_pages_stay_stable_while_new_entries_arrive(
    make: Make, router: respx.Router, fake_time: FakeTime
) -> None:
    """Call log: cursor pages neither repeat nor skip an entry while newer ones are written."""
    dispatcher = await make()
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(400))
    older = []
    for _ in range(5):
        older.append(await products(dispatcher))
        fake_time.now += 1
    await dispatcher.call_log.flush()
    first = await dispatcher.call_log.calls("t1", limit=2)
    for _ in range(3):  # newer entries arrive between pages
        await products(dispatcher)
    await dispatcher.call_log.flush()
    second = await dispatcher.call_log.calls("t1", limit=2, cursor=first.next_cursor)
    third = await dispatcher.call_log.calls("t1", limit=2, cursor=second.next_cursor)
    seen = [call.delivery_id for page in (first, second, third) for call in page.items]
    assert seen == older[::-1]
    assert third.next_cursor is None


async def test_filters_select_entries(
    make: Make, router: respx.Router, fake_time: FakeTime
) -> None:
    """Call log: webhook, outcome, detail, delivery id and the time range each narrow a page."""
    dispatcher = await make(call_log_sample_rate=1.0)
    router.post(PRODUCTS_URL).mock(
        side_effect=[httpx.Response(400), httpx.Response(200, json=OK_PRODUCTS)]
    )
    router.post(CART_URL).mock(side_effect=httpx.ReadTimeout("slow"))
    start = datetime.fromtimestamp(fake_time.now, UTC)
    bad = await products(dispatcher)
    fake_time.now += 10
    good = await products(dispatcher)
    fake_time.now += 10
    await dispatcher.cart_clear("t1", store_id="s", session_id="u")
    await dispatcher.call_log.flush()
    log = dispatcher.call_log

    async def ids(**where: Any) -> list[str | None]:
        return [call.delivery_id for call in (await log.calls("t1", **where)).items]

    assert len(await ids()) == 3
    assert await ids(webhook="products") == [good, bad]
    assert await ids(outcome="ok") == [good]
    assert len(await ids(outcome="failed", detail="timeout")) == 1
    assert await ids(delivery_id=bad) == [bad]
    assert await ids(since=start + timedelta(seconds=5), until=start + timedelta(seconds=15)) == [
        good
    ]
    with pytest.raises(InvalidCall, match="webhook"):
        await log.calls("t1", webhook="orders")
    with pytest.raises(InvalidCall, match="outcome"):
        await log.calls("t1", outcome="maybe")
    with pytest.raises(InvalidCall, match="cursor"):
        await log.calls("t1", cursor="not-a-cursor")
    with pytest.raises(InvalidCall, match="limit"):
        await log.calls("t1", limit=0)
    with pytest.raises(InvalidCall, match="since"):
        await log.calls("t1", since=datetime(2026, 1, 1))


async def test_retention_by_age_and_by_count_per_tenant(
    make: Make, router: respx.Router, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Call log: a purge drops entries past the age limit and each tenant's beyond its count,
    in bounded batches."""
    dispatcher = await make(call_log_max_age_seconds=3600, call_log_max_per_tenant=3)
    await dispatcher.store.save_config(
        "t2", products_url=PRODUCTS_URL, cart_url=CART_URL, secret=SECRET
    )
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(400))
    for _ in range(2):
        await products(dispatcher, "t2")  # these grow old
    fake_time.now += 7200
    kept = []
    for _ in range(6):
        kept.append(await products(dispatcher))
        fake_time.now += 1
    await products(dispatcher, "t2")
    await dispatcher.call_log.flush()
    monkeypatch.setattr(_calllog_store, "PURGE_BATCH", 1)
    monkeypatch.setattr(_calllog_store, "MAX_PURGE_STATEMENTS", 3)
    deleted = [await dispatcher.call_log.purge() for _ in range(4)]
    assert deleted == [2, 2, 1, 0]  # three statements of one row at most, each time
    assert [c.delivery_id for c in (await dispatcher.call_log.calls("t1")).items] == kept[:2:-1]
    assert len((await dispatcher.call_log.calls("t2")).items) == 1


async def test_the_writer_purges_on_its_own_schedule(
    make: Make, router: respx.Router, fake_time: FakeTime
) -> None:
    """Call log: the background writer purges every VIZOCHOK_CALL_LOG_PURGE_SECONDS (the
    injected clock's), without a caller asking."""
    dispatcher = await make(
        call_log_flush_seconds=0.01, call_log_purge_seconds=60, call_log_max_age_seconds=3600
    )
    router.post(PRODUCTS_URL).mock(return_value=httpx.Response(400))
    await products(dispatcher)
    await wait_for(lambda: dispatcher.call_log.written == 1)
    fake_time.now += 7200  # the entry is past its age, and a purge is due
    async with asyncio.timeout(10):
        while (await dispatcher.call_log.calls("t1")).items:  # noqa: ASYNC110 - polls the database, bounded
            await asyncio.sleep(0.02)
