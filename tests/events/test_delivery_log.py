"""The delivery log (``EventService.delivery_log`` / ``delivery``): newest first, filters, keyset
pagination that stays correct while deliveries arrive, one tenant only; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.fakes import FakeTime
from vizochok_dispatch import Dispatcher, InvalidCall
from vizochok_dispatch.tenants._pages import encode_cursor

from .support import TENANT, MakeDispatcher, example, make

__all__ = ["make"]

OTHER = "tenant-2"
OK_URL = "https://ok.example/hooks"
BAD_URL = "https://bad.example/hooks"


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200 if request.url.host == "ok.example" else 500, text="nope")


async def _log_dispatcher(make: MakeDispatcher, time: FakeTime) -> Dispatcher:
    return await make(
        event_worker="off",
        event_retry_schedule="none",
        clock=time.clock,
        sleep=time.sleep,
        transport=httpx.MockTransport(_answer),
    )


async def _all_pages(d: Dispatcher, limit: int, **filters: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await d.events.delivery_log(TENANT, limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        assert len(page.items) <= limit
        ids.extend(delivery.id for delivery in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
    raise AssertionError("the pages never ended")


async def test_the_log_is_newest_first_and_pages_cover_it_once(make: MakeDispatcher) -> None:
    """delivery_log: newest first by (created, id); pages of any size list each delivery once."""
    time = FakeTime()
    d = await _log_dispatcher(make, time)
    await d.events.create_endpoint(TENANT, url=OK_URL, event_types=["*"])
    await d.events.create_endpoint(TENANT, url=BAD_URL, event_types=["order.*"])
    for _ in range(4):  # two deliveries per order event, created in the same millisecond
        await d.events.publish(TENANT, "order.created", data=example())
        await d.events.publish(TENANT, "chat.session.created", data=example("chat.session.created"))
        time.now += 1
    everything = (await d.events.delivery_log(TENANT, limit=100)).items
    assert len(everything) == 12
    keys = [(dl.created_at, dl.id) for dl in everything]
    assert keys == sorted(keys, reverse=True)
    for limit in (1, 2, 5, 12, 13):
        assert await _all_pages(d, limit) == [dl.id for dl in everything], limit


async def test_pages_stay_correct_while_new_deliveries_arrive(make: MakeDispatcher) -> None:
    """delivery_log: deliveries published between pages neither shift nor repeat later pages."""
    time = FakeTime()
    d = await _log_dispatcher(make, time)
    await d.events.create_endpoint(TENANT, url=OK_URL, event_types=["*"])
    for _ in range(6):
        await d.events.publish(TENANT, "order.created", data=example())
        time.now += 1
    before = [dl.id for dl in (await d.events.delivery_log(TENANT)).items]
    first = await d.events.delivery_log(TENANT, limit=2)
    for _ in range(3):  # newer deliveries arrive while the client pages
        time.now += 1
        await d.events.publish(TENANT, "order.created", data=example())
    seen = [dl.id for dl in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        page = await d.events.delivery_log(TENANT, limit=2, cursor=cursor)
        seen.extend(dl.id for dl in page.items)
        cursor = page.next_cursor
    assert seen == before
    fresh = await d.events.delivery_log(TENANT, limit=3)
    assert not {dl.id for dl in fresh.items} & set(before), "the new ones head a new first page"


async def test_filters_combine(make: MakeDispatcher) -> None:
    """delivery_log: endpoint, event type, status, event id and time range filter, combined."""
    time = FakeTime()
    d = await _log_dispatcher(make, time)
    ok = await d.events.create_endpoint(TENANT, url=OK_URL, event_types=["*"])
    bad = await d.events.create_endpoint(TENANT, url=BAD_URL, event_types=["order.*"])
    start = datetime.fromtimestamp(time.now, UTC)
    first = await d.events.publish(TENANT, "order.created", data=example())
    time.now += 10
    await d.events.publish(TENANT, "chat.session.created", data=example("chat.session.created"))
    time.now += 10
    last = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)

    async def ids(**filters: object) -> set[str]:
        page = await d.events.delivery_log(TENANT, **filters)  # type: ignore[arg-type]
        return {dl.id for dl in page.items}

    every = await d.events.delivery_log(TENANT)
    by = {(dl.event_id, dl.endpoint_id): dl for dl in every.items}
    assert len(by) == 5
    assert await ids(endpoint_id=bad.id) == {
        dl.id for dl in every.items if dl.endpoint_id == bad.id
    }
    assert len(await ids(endpoint_id=bad.id)) == 2
    assert len(await ids(event_type="chat.session.created")) == 1
    assert await ids(status="failed") == await ids(endpoint_id=bad.id)
    assert len(await ids(status="delivered")) == 3
    assert await ids(status="pending") == set()
    assert await ids(event_id=first.id) == {by[first.id, ok.id].id, by[first.id, bad.id].id}
    middle = {"since": start + timedelta(seconds=5), "until": start + timedelta(seconds=20)}
    assert len(await ids(**middle)) == 1, "since inclusive, until exclusive: the middle event only"
    assert len(await ids(since=start + timedelta(seconds=20))) == 2
    assert await ids(
        status="failed", event_type="order.created", since=start + timedelta(seconds=1)
    ) == {by[last.id, bad.id].id}
    assert await ids(endpoint_id="ep_unknown") == set()


async def test_filtered_pages_follow_the_filter(make: MakeDispatcher) -> None:
    """delivery_log: a filtered log pages through the filtered deliveries only, each once."""
    time = FakeTime()
    d = await _log_dispatcher(make, time)
    await d.events.create_endpoint(TENANT, url=OK_URL, event_types=["*"])
    bad = await d.events.create_endpoint(TENANT, url=BAD_URL, event_types=["order.*"])
    for _ in range(5):
        await d.events.publish(TENANT, "order.created", data=example())
        time.now += 1
    await d.events.drain(timeout=1)
    failed = await _all_pages(d, 2, status="failed")
    assert len(failed) == len(set(failed)) == 5
    assert await _all_pages(d, 3, endpoint_id=bad.id) == failed


async def test_one_tenant_never_sees_another_tenants_deliveries(make: MakeDispatcher) -> None:
    """delivery_log / delivery: another tenant's deliveries are never listed nor read by id."""
    time = FakeTime()
    d = await _log_dispatcher(make, time)
    await d.events.create_endpoint(TENANT, url=OK_URL, event_types=["*"])
    theirs = await d.events.create_endpoint(OTHER, url=OK_URL, event_types=["*"])
    mine = await d.events.publish(TENANT, "order.created", data=example())
    other = await d.events.publish(OTHER, "order.created", data=example())
    listed = (await d.events.delivery_log(TENANT)).items
    assert [dl.event_id for dl in listed] == [mine.id]
    assert (await d.events.delivery_log(TENANT, event_id=other.id)).items == ()
    assert (await d.events.delivery_log(TENANT, endpoint_id=theirs.id)).items == ()
    (their_delivery,) = other.deliveries
    assert await d.events.delivery(TENANT, their_delivery.id) is None
    assert await d.events.delivery(OTHER, their_delivery.id) is not None


async def test_a_delivery_shows_the_body_as_sent_and_every_attempt(make: MakeDispatcher) -> None:
    """delivery: the event body byte for byte and every attempt with its answer's excerpt."""
    time = FakeTime()
    d = await make(
        event_worker="off",
        event_retry_schedule="1s,1s",
        clock=time.clock,
        sleep=time.sleep,
        transport=httpx.MockTransport(_answer),
    )
    await d.events.create_endpoint(TENANT, url=BAD_URL, event_types=["*"])
    published = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=10)
    (delivery_id,) = [dl.id for dl in published.deliveries]
    found = await d.events.delivery(TENANT, delivery_id)
    assert found is not None
    assert found.body == published.body
    assert found.status == "failed"
    assert [(a.number, a.status, a.response) for a in found.attempts] == [
        (1, 500, b"nope"),
        (2, 500, b"nope"),
        (3, 500, b"nope"),
    ]
    (listed,) = (await d.events.delivery_log(TENANT)).items
    assert listed.body is None and [a.response for a in listed.attempts] == [None] * 3
    assert await d.events.delivery(TENANT, "dlv_unknown") is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "",
        "x" * 1000,
        encode_cursor(datetime(2026, 1, 1, tzinfo=UTC), "dlv_1")[:-3],
        "WzIsIjIwMjYtMDEtMDFUMDA6MDA6MDArMDA6MDAiLCJ4Il0",  # version 2
        "WzEsIjIwMjYtMDEtMDFUMDA6MDA6MDAiLCJ4Il0",  # a time without a zone
        "WzEsMSwieCJd",  # a number for the time
    ],
)
async def test_a_bad_cursor_is_an_error_naming_cursor(make: MakeDispatcher, cursor: str) -> None:
    """delivery_log: a cursor the log did not give is InvalidCall naming cursor, not a crash."""
    d = await make(event_worker="off")
    with pytest.raises(InvalidCall, match=r"^cursor is not a cursor this log gave") as raised:
        await d.events.delivery_log(TENANT, cursor=cursor)
    assert cursor[:20] not in str(raised.value) or not cursor


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"limit": 0}, r"^limit must be a whole number from 1 to 100"),
        ({"limit": 101}, r"^limit must be"),
        ({"limit": True}, r"^limit must be"),
        (
            {"event_type": "order.nope"},
            r"^event_type 'order.nope' is not an event type; known: order.created",
        ),
        ({"status": "lost"}, r"^status must be one of pending, delivered, failed"),
        ({"since": datetime(2026, 1, 1)}, r"^since must be a timezone-aware datetime"),
        ({"until": "yesterday"}, r"^until must be a timezone-aware datetime"),
        ({"endpoint_id": "x" * 65}, r"^endpoint_id "),
        ({"event_id": "a\nb"}, r"^event_id "),
    ],
)
async def test_bad_filters_name_their_argument(
    make: MakeDispatcher, filters: dict[str, object], message: str
) -> None:
    """delivery_log: every bad filter is InvalidCall naming the argument."""
    d = await make(event_worker="off")
    with pytest.raises(InvalidCall, match=message):
        await d.events.delivery_log(TENANT, **filters)  # type: ignore[arg-type]
