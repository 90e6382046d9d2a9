"""``Dispatcher.events``: endpoints (rules, secrets at rest), publishing (validation, the body
serialised once, fan-out, one transaction, idempotency for 24 h) and the delivery log, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.fakes import FakeTime
from vizochok_dispatch import (
    Dispatcher,
    InMemoryConfigStore,
    InvalidCall,
    InvalidConfig,
    SecretBox,
    SecretUnreadable,
    SqlConfigStore,
    StoreError,
)
from vizochok_dispatch.contract._signing import standard_webhooks_key
from vizochok_dispatch.events._tables import EventEndpointRow

from .support import TENANT, MakeDispatcher, example, make, settings_for

__all__ = ["make"]

URL = "https://shop.example/hooks"
OWN_SECRET = "an-own-secret-of-at-least-24-chars"


# -- endpoints ----------------------------------------------------------------------------------


async def test_an_endpoint_gets_an_id_defaults_and_a_generated_secret(make: MakeDispatcher) -> None:
    """create_endpoint: ep_ id, whsec_ secret of 32 random bytes, timeout 15 s, vizochok scheme."""
    d = await make(event_worker="off")
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    other = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    assert re.fullmatch(r"ep_[0-9a-z]{26}", ep.id)
    assert ep.secret.startswith("whsec_")
    assert len(standard_webhooks_key(ep.secret)) == 32
    assert ep.secret != other.secret and ep.id != other.id
    assert (ep.timeout_seconds, ep.signature_scheme, ep.ordered, ep.enabled) == (
        15.0,
        "vizochok",
        False,
        True,
    )
    assert ep.secret not in repr(ep)
    assert await d.events.endpoints(TENANT) == [ep, other]


async def test_an_endpoint_keeps_what_it_was_given(make: MakeDispatcher) -> None:
    """create_endpoint: an own secret, scheme, timeout, order and description are kept as given."""
    d = await make(event_worker="off")
    own = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    ep = await d.events.create_endpoint(
        TENANT,
        url=URL,
        event_types=["chat.session.created", "product.*"],
        signature_scheme="standard-webhooks",
        secret=own,
        timeout_seconds=1,
        ordered=True,
        description="Orders to the ERP",
    )
    (stored,) = await d.events.endpoints(TENANT)
    assert stored == ep
    assert (stored.secret, stored.signature_scheme, stored.timeout_seconds) == (
        own,
        "standard-webhooks",
        1.0,
    )
    assert stored.event_types == ("chat.session.created", "product.*")
    assert stored.ordered and stored.description == "Orders to the ERP"


async def test_endpoint_secrets_are_encrypted_at_rest(
    make: MakeDispatcher, database_url: str
) -> None:
    """Secrets at rest: the column holds ciphertext bound to its endpoint; a copy won't decrypt."""
    d = await make(event_worker="off")
    first = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"], secret=OWN_SECRET)
    second = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            stored = dict(
                (await conn.execute(select(EventEndpointRow.id, EventEndpointRow.secret))).all()
            )
            assert stored[first.id].startswith("v1.")
            assert OWN_SECRET not in stored[first.id]
            assert second.secret not in stored[second.id]
            await conn.execute(
                update(EventEndpointRow)
                .where(EventEndpointRow.id == second.id)
                .values(secret=stored[first.id])
            )
    finally:
        await engine.dispose()
    with pytest.raises(SecretUnreadable, match=second.id) as caught:
        await d.events.endpoints(TENANT)
    assert OWN_SECRET not in str(caught.value)


async def test_keys_that_read_no_endpoint_secret_are_refused_at_start(database_url: str) -> None:
    """Secrets at rest: a lost key file or other keys refuse to start, not fail every signature."""
    async with Dispatcher.from_settings(settings_for(database_url)) as d:
        await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    if database_url.startswith("sqlite"):
        database = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
        database.with_name(database.name + ".keys").unlink()
        other = settings_for(database_url)
    else:
        other = settings_for(database_url, secret_keys=SecretBox.generate("other")[1])
    with pytest.raises(SecretUnreadable, match=r"event endpoint secrets .* encrypted with key"):
        async with Dispatcher.from_settings(other):
            pass


async def test_the_config_store_key_check_reads_event_endpoint_secrets(database_url: str) -> None:
    """Secrets at rest: with only event endpoint secrets stored, the config store's own key
    check refuses a lost key file (making no new key) and keys that read none of them."""
    async with Dispatcher.from_settings(settings_for(database_url)) as d:
        await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    key_file: Path | None = None
    if database_url.startswith("sqlite"):
        database = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
        key_file = database.with_name(database.name + ".keys")
        key_file.unlink()
        store = SqlConfigStore(database_url)
    else:
        store = SqlConfigStore(database_url, secret_box=SecretBox.generate("other")[0])
    try:
        with pytest.raises(SecretUnreadable, match=r"event endpoint secrets.* key"):
            await store.open()
    finally:
        await store.close()
    assert key_file is None or not key_file.exists(), "a new key file was made"


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        ({"url": "http://shop.example/hooks"}, "url", "must use https://"),
        ({"url": "https://127.0.0.1/hooks"}, "url", "non-public address"),
        ({"url": "https://localhost/hooks"}, "url", "points to this machine"),
        ({"url": "https://-bad-.example/"}, "url", "start or end with '-'"),
        ({"url": "shop.example"}, "url", "absolute https:// URL"),
        ({"event_types": []}, "event_types", "at least one"),
        ({"event_types": "order.*"}, "event_types", "must be a list"),
        ({"event_types": ["order.*", "parcel.*"]}, "event_types[1]", "matches no event type"),
        ({"event_types": ["ord*"]}, "event_types[0]", "matches no event type"),
        ({"signature_scheme": "hmac"}, "signature_scheme", "vizochok, standard-webhooks"),
        ({"secret": "short"}, "secret", "at least 24 characters"),
        ({"secret": "x" * 300}, "secret", "at most 256 characters"),
        (
            {"signature_scheme": "standard-webhooks", "secret": OWN_SECRET},
            "secret",
            "must start with whsec_",
        ),
        ({"timeout_seconds": 0.5}, "timeout_seconds", "from 1 to 30 seconds"),
        ({"timeout_seconds": 31}, "timeout_seconds", "from 1 to 30 seconds"),
        ({"timeout_seconds": float("nan")}, "timeout_seconds", "from 1 to 30 seconds"),
        ({"timeout_seconds": "15"}, "timeout_seconds", "must be a number"),
        ({"ordered": "yes"}, "ordered", "true or false"),
        ({"description": "d" * 1001}, "description", "1000"),
    ],
)
async def test_a_bad_endpoint_is_refused_naming_the_field(
    make: MakeDispatcher, given: dict[str, object], field: str, says: str
) -> None:
    """create_endpoint: each broken rule is an InvalidConfig naming its field; nothing is stored."""
    d = await make(event_worker="off", allow_http=False, allowed_networks="")
    arguments: dict[str, object] = {"url": URL, "event_types": ["order.*"], **given}
    with pytest.raises(InvalidConfig) as caught:
        await d.events.create_endpoint(TENANT, **arguments)  # type: ignore[arg-type]
    assert [error.field for error in caught.value.errors] == [field]
    assert says in caught.value.errors[0].message
    assert await d.events.endpoints(TENANT) == []


async def test_every_broken_field_is_listed_at_once(make: MakeDispatcher) -> None:
    """create_endpoint: one InvalidConfig lists every broken field, never the secret's value."""
    d = await make(event_worker="off")
    with pytest.raises(InvalidConfig) as caught:
        await d.events.create_endpoint(
            "",
            url="ftp://x",
            event_types=["nope"],
            secret="tiny-secret",
            timeout_seconds=99,
        )
    assert [e.field for e in caught.value.errors] == [
        "tenant_id",
        "url",
        "event_types[0]",
        "secret",
        "timeout_seconds",
    ]
    assert "tiny-secret" not in str(caught.value)


async def test_loopback_needs_the_deployment_to_allow_it(make: MakeDispatcher) -> None:
    """create_endpoint: the SSRF rules are the deployment's: allowed networks open loopback."""
    closed = await make(event_worker="off", allow_http=False, allowed_networks="")
    with pytest.raises(InvalidConfig, match="non-public"):
        await closed.events.create_endpoint(
            TENANT, url="https://127.0.0.1:8443/", event_types=["*"]
        )
    opened = await make(event_worker="off")
    await opened.events.create_endpoint(TENANT, url="http://127.0.0.1:8443/", event_types=["*"])


# -- publishing ---------------------------------------------------------------------------------


async def test_the_body_is_the_envelope_serialised_once(make: MakeDispatcher) -> None:
    """publish: the body is {"id","event","timestamp","data"}, validated data, RFC 3339 ms UTC."""
    fake = FakeTime(now=1_796_000_000.1234)
    d = await make(event_worker="off", clock=fake.clock, sleep=fake.sleep)
    await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    assert re.fullmatch(r"evt_[0-9a-z]{26}", ev.id)
    assert ev.timestamp == datetime(2026, 11, 30, 0, 53, 20, 123000, tzinfo=UTC)
    document = json.loads(ev.body)
    assert list(document) == ["id", "event", "timestamp", "data"]
    assert document["id"] == ev.id
    assert document["event"] == "order.created"
    assert document["timestamp"] == "2026-11-30T00:53:20.123Z"
    assert document["data"]["order_number"] == example()["order_number"]
    assert b" " not in ev.body.split(b'"data"')[0], "compact JSON"


async def test_publish_fans_out_to_enabled_subscribed_endpoints_only(make: MakeDispatcher) -> None:
    """publish: one delivery per endpoint whose types cover the event; none elsewhere."""
    d = await make(event_worker="off")
    orders = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    everything = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    exact = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.created"])
    await d.events.create_endpoint(TENANT, url=URL, event_types=["chat.*", "order.updated"])
    await d.events.create_endpoint("tenant-2", url=URL, event_types=["*"])
    ev = await d.events.publish(TENANT, "order.created", data=example())
    assert {dl.endpoint_id for dl in ev.deliveries} == {orders.id, everything.id, exact.id}
    assert all(dl.status == "pending" and dl.event_id == ev.id for dl in ev.deliveries)
    assert sorted(await d.events.deliveries(TENANT, event_id=ev.id), key=lambda x: x.id) == sorted(
        ev.deliveries, key=lambda x: x.id
    )
    lonely = await d.events.publish(TENANT, "analytics.daily", data=example("analytics.daily"))
    assert [dl.endpoint_id for dl in lonely.deliveries] == [everything.id]


async def test_publish_refuses_bad_data_naming_the_field(make: MakeDispatcher) -> None:
    """publish: data is checked against its type's model; InvalidCall names the field; none kept."""
    d = await make(event_worker="off")
    await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    broken = {**example(), "total": "12.5"}
    with pytest.raises(InvalidCall, match=r"data\.total"):
        await d.events.publish(TENANT, "order.created", data=broken)
    with pytest.raises(InvalidCall, match="is not an event type"):
        await d.events.publish(TENANT, "order.shipped", data=example())
    with pytest.raises(InvalidCall, match="tenant_id"):
        await d.events.publish("", "order.created", data=example())
    with pytest.raises(InvalidCall, match="idempotency_key"):
        await d.events.publish(TENANT, "order.created", data=example(), idempotency_key="a\nb")
    assert await d.events.deliveries(TENANT) == []


async def test_an_idempotency_key_returns_the_first_event_for_24_hours(
    make: MakeDispatcher,
) -> None:
    """publish: the same key within 24 h returns the first event, publishes nothing; later, anew."""
    fake = FakeTime()
    d = await make(event_worker="off", clock=fake.clock, sleep=fake.sleep)
    await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    first = await d.events.publish(
        TENANT, "order.created", data=example(), idempotency_key="order-1"
    )
    fake.now += 24 * 3600 - 1
    again = await d.events.publish(
        TENANT, "order.created", data=example(), idempotency_key="order-1"
    )
    assert (again.id, again.body, again.duplicate, first.duplicate) == (
        first.id,
        first.body,
        True,
        False,
    )
    assert [dl.id for dl in again.deliveries] == [dl.id for dl in first.deliveries]
    elsewhere = await d.events.publish(
        "tenant-2", "order.created", data=example(), idempotency_key="order-1"
    )
    assert elsewhere.id != first.id and not elsewhere.duplicate
    fake.now += 2
    later = await d.events.publish(
        TENANT, "order.created", data=example(), idempotency_key="order-1"
    )
    assert later.id != first.id and not later.duplicate
    assert len(await d.events.deliveries(TENANT)) == 2


async def test_concurrent_publishes_with_one_key_make_one_event(make: MakeDispatcher) -> None:
    """publish: ten publishes with one key at once commit one event; all return it."""
    d = await make(event_worker="off")
    await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    published = await asyncio.gather(
        *(
            d.events.publish(TENANT, "order.created", data=example(), idempotency_key="same")
            for _ in range(10)
        )
    )
    assert len({ev.id for ev in published}) == 1
    assert sum(not ev.duplicate for ev in published) == 1
    assert len(await d.events.deliveries(TENANT)) == 1


async def test_concurrent_publishes_all_commit_while_the_worker_writes(
    make: MakeDispatcher, database_url: str
) -> None:
    """publish: 64 publishers at once in one process all commit beside the worker's writes."""
    # SQLite: a busy timeout of 50 ms, so writers queued in SQLite's lock would fail; on
    # PostgreSQL the setting is a statement timeout, kept at its default
    short = {"database_statement_timeout_seconds": 0.05} if "sqlite" in database_url else {}
    d = await make(**short)
    with socket.socket() as closed:  # bound, not listening: each attempt is refused at once
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/hooks"
        await d.events.create_endpoint(TENANT, url=url, event_types=["order.*"])
        published = await asyncio.gather(
            *(d.events.publish(TENANT, "order.created", data=example()) for _ in range(64)),
            return_exceptions=True,
        )
    failed = [repr(ev) for ev in published if isinstance(ev, BaseException)]
    assert failed == []
    assert len(await d.events.deliveries(TENANT)) == 64


async def test_the_event_and_its_deliveries_commit_together(
    make: MakeDispatcher, database_url: str
) -> None:
    """publish: one transaction: when a delivery cannot be written, the event is not kept either."""
    d = await make(event_worker="off")
    await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE event_deliveries RENAME TO parked"))
        with pytest.raises(StoreError, match="event store"):
            await d.events.publish(TENANT, "order.created", data=example(), idempotency_key="k")
        async with engine.begin() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM events"))).scalar_one() == 0
            await conn.execute(text("ALTER TABLE parked RENAME TO event_deliveries"))
    finally:
        await engine.dispose()
    ev = await d.events.publish(TENANT, "order.created", data=example(), idempotency_key="k")
    assert not ev.duplicate and len(ev.deliveries) == 1


async def test_a_disabled_endpoint_gets_no_deliveries(
    make: MakeDispatcher, database_url: str
) -> None:
    """publish: only enabled endpoints get deliveries."""
    d = await make(event_worker="off")
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(EventEndpointRow).values(enabled=False))
    finally:
        await engine.dispose()
    ev = await d.events.publish(TENANT, "order.created", data=example())
    assert ev.deliveries == ()
    assert not (await d.events.endpoints(TENANT))[0].enabled
    assert ep.enabled


# -- the delivery log and misuse ----------------------------------------------------------------


async def test_deliveries_filter_by_tenant_and_event(make: MakeDispatcher) -> None:
    """deliveries: a tenant's own, one event's when asked, oldest first; bad limits refused."""
    d = await make(event_worker="off")
    await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    await d.events.create_endpoint("tenant-2", url=URL, event_types=["*"])
    one = await d.events.publish(TENANT, "order.created", data=example())
    two = await d.events.publish(TENANT, "order.updated", data=example("order.updated"))
    await d.events.publish("tenant-2", "order.created", data=example())
    listed = await d.events.deliveries(TENANT)
    assert [dl.event_id for dl in listed] == [one.id, two.id]
    assert [dl.event_type for dl in listed] == ["order.created", "order.updated"]
    assert [dl.event_id for dl in await d.events.deliveries(TENANT, event_id=two.id)] == [two.id]
    assert len(await d.events.deliveries(TENANT, limit=1)) == 1
    assert await d.events.deliveries("nobody") == []
    with pytest.raises(InvalidCall, match="limit"):
        await d.events.deliveries(TENANT, limit=0)


async def test_events_need_a_sql_store() -> None:
    """Dispatcher.events on a store that is not SQL: every call says what to build instead."""
    async with Dispatcher(InMemoryConfigStore()) as d:
        with pytest.raises(InvalidCall, match="need a SQL database"):
            await d.events.publish(TENANT, "order.created", data=example())
        with pytest.raises(InvalidCall, match="from_database_url"):
            await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
