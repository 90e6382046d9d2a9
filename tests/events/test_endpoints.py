"""Event endpoints after creation (``EventService.endpoint`` / ``update_endpoint`` /
``delete_endpoint``): PATCH semantics with the creation rules, status, disabling pauses and
enabling resumes, one tenant only; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.fakes import FakeTime
from vizochok_dispatch import EVENT_TYPES, Dispatcher, InvalidConfig
from vizochok_dispatch.events._store import MANUAL_DISABLE_REASON

from .support import TENANT, MakeDispatcher, example, make

__all__ = ["make"]

OTHER = "tenant-2"
URL = "https://shop.example/hooks"
OWN_SECRET = "an-own-secret-of-at-least-24-chars"


async def _dispatcher(
    make: MakeDispatcher, time: FakeTime, seen: list[str] | None = None
) -> Dispatcher:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request.headers["X-VIZOCHOK-Delivery"])
        return httpx.Response(204)

    return await make(
        event_worker="off",
        clock=time.clock,
        sleep=time.sleep,
        transport=httpx.MockTransport(answer),
    )


def _fields(error: pytest.ExceptionInfo[InvalidConfig]) -> dict[str, str]:
    return {field.field: field.message for field in error.value.errors}


async def test_an_endpoint_is_read_by_its_tenant_only(make: MakeDispatcher) -> None:
    """endpoint: the tenant's own endpoint by id; None for another tenant's or an unknown id."""
    d = await _dispatcher(make, FakeTime())
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    assert await d.events.endpoint(TENANT, ep.id) == ep
    assert ep.status == "active"
    assert await d.events.endpoint(OTHER, ep.id) is None
    assert await d.events.endpoint(TENANT, "ep_unknown") is None
    assert await d.events.endpoint(TENANT, "x" * 500) is None


async def test_an_update_changes_what_is_given_and_keeps_the_rest(make: MakeDispatcher) -> None:
    """update_endpoint: only the fields given change; the secret and id never do."""
    time = FakeTime()
    d = await _dispatcher(make, time)
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"], description="ERP")
    time.now += 60
    saved = await d.events.update_endpoint(
        TENANT,
        ep.id,
        url="https://shop.example/v2/hooks",
        event_types=["*", "chat.session.created"],
        signature_scheme="standard-webhooks",
        timeout_seconds=30,
        ordered=True,
    )
    assert saved is not None
    assert (saved.url, saved.event_types, saved.signature_scheme) == (
        "https://shop.example/v2/hooks",
        ("*", "chat.session.created"),
        "standard-webhooks",
    )
    assert (saved.timeout_seconds, saved.ordered, saved.description) == (30.0, True, "ERP")
    assert (saved.id, saved.secret, saved.created_at) == (ep.id, ep.secret, ep.created_at)
    assert saved.updated_at == datetime.fromtimestamp(time.now, UTC)
    assert await d.events.endpoint(TENANT, ep.id) == saved
    cleared = await d.events.update_endpoint(TENANT, ep.id, description=None)
    assert cleared is not None and cleared.description is None and cleared.url == saved.url


async def test_an_update_follows_the_creation_rules(make: MakeDispatcher) -> None:
    """update_endpoint: URL rules and SSRF checks, known event types, bounds; nothing saved."""
    d = await _dispatcher(make, FakeTime())
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["order.*"])
    with pytest.raises(InvalidConfig) as raised:
        await d.events.update_endpoint(
            TENANT,
            ep.id,
            url="https://10.1.2.3/hooks",
            event_types=["order.*", "order.nope", "ord*er"],
            signature_scheme="hmac",
            timeout_seconds=31,
            ordered="yes",  # type: ignore[arg-type]
            enabled=1,  # type: ignore[arg-type]
            description="x" * 1001,
        )
    fields = _fields(raised)
    assert set(fields) == {
        "url",
        "event_types[1]",
        "event_types[2]",
        "signature_scheme",
        "timeout_seconds",
        "ordered",
        "enabled",
        "description",
    }
    assert "known: " + ", ".join(EVENT_TYPES) in fields["event_types[1]"]
    assert "non-public" in fields["url"] or "address" in fields["url"], fields["url"]
    with pytest.raises(InvalidConfig) as raised:
        await d.events.update_endpoint(TENANT, ep.id, url="ftp://shop.example/hooks")
    assert set(_fields(raised)) == {"url"}
    with pytest.raises(InvalidConfig) as raised:
        await d.events.update_endpoint(TENANT, ep.id, event_types=[])
    assert set(_fields(raised)) == {"event_types"}
    assert await d.events.endpoint(TENANT, ep.id) == ep, "nothing was saved"


async def test_a_scheme_must_suit_the_current_secret(make: MakeDispatcher) -> None:
    """update_endpoint: standard-webhooks needs a whsec_ secret; an own vizochok one is refused."""
    d = await _dispatcher(make, FakeTime())
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"], secret=OWN_SECRET)
    with pytest.raises(InvalidConfig) as raised:
        await d.events.update_endpoint(TENANT, ep.id, signature_scheme="standard-webhooks")
    (message,) = _fields(raised).values()
    assert set(_fields(raised)) == {"signature_scheme"}
    assert message.startswith("the current secret does not suit it")
    assert OWN_SECRET not in str(raised.value)
    whsec = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    other = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"], secret=whsec)
    saved = await d.events.update_endpoint(TENANT, other.id, signature_scheme="standard-webhooks")
    assert saved is not None and saved.signature_scheme == "standard-webhooks"


async def test_another_tenants_endpoint_is_neither_changed_nor_deleted(
    make: MakeDispatcher,
) -> None:
    """update_endpoint / delete_endpoint: another tenant's id is None / False, left as it was."""
    d = await _dispatcher(make, FakeTime())
    theirs = await d.events.create_endpoint(OTHER, url=URL, event_types=["*"])
    assert await d.events.update_endpoint(TENANT, theirs.id, enabled=False) is None
    assert await d.events.update_endpoint(TENANT, "ep_unknown", url=URL) is None
    assert await d.events.delete_endpoint(TENANT, theirs.id) is False
    assert await d.events.endpoint(OTHER, theirs.id) == theirs


async def test_disabling_pauses_deliveries_and_enabling_resumes_them(make: MakeDispatcher) -> None:
    """update_endpoint: disabled (reason, time) makes no attempt; enabled again delivers the due."""
    time = FakeTime()
    seen: list[str] = []
    d = await _dispatcher(make, time, seen)
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    kept = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    disabled = await d.events.update_endpoint(TENANT, ep.id, enabled=False)
    assert disabled is not None
    assert (disabled.status, disabled.enabled) == ("disabled", False)
    assert disabled.disabled_reason == MANUAL_DISABLE_REASON
    assert disabled.disabled_at == datetime.fromtimestamp(time.now, UTC)
    published = await d.events.publish(TENANT, "order.created", data=example())
    assert len(published.deliveries) == 1, "a disabled endpoint gets no new deliveries"
    async with asyncio.timeout(10):  # a disabled endpoint's due delivery is not "due" work
        report = await d.events.drain(timeout=5)
    assert report.attempts == 1
    assert [dl.status for dl in await d.events.deliveries(TENANT)] == ["delivered"]
    # a delivery already waiting when the endpoint is disabled waits, unattempted
    await d.events.update_endpoint(TENANT, ep.id, enabled=True)
    waiting = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.update_endpoint(TENANT, ep.id, enabled=False)
    await d.events.update_endpoint(TENANT, kept.id, enabled=False)
    async with asyncio.timeout(10):
        assert (await d.events.drain(timeout=5)).attempts == 0
    assert {dl.status for dl in await d.events.deliveries(TENANT, event_id=waiting.id)} == {
        "pending"
    }
    time.now += 3600
    enabled = await d.events.update_endpoint(TENANT, ep.id, enabled=True)
    assert enabled is not None
    assert (enabled.status, enabled.disabled_reason, enabled.disabled_at) == ("active", None, None)
    async with asyncio.timeout(10):
        assert (await d.events.drain(timeout=5)).attempts == 1
    statuses = {
        dl.endpoint_id: dl.status for dl in await d.events.deliveries(TENANT, event_id=waiting.id)
    }
    assert statuses == {ep.id: "delivered", kept.id: "pending"}
    assert seen == [published.id, waiting.id]


async def test_disabling_twice_keeps_the_first_reason_and_time(make: MakeDispatcher) -> None:
    """update_endpoint: enabled=false on a disabled endpoint keeps when and why it was disabled."""
    time = FakeTime()
    d = await _dispatcher(make, time)
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    first = await d.events.update_endpoint(TENANT, ep.id, enabled=False)
    time.now += 100
    again = await d.events.update_endpoint(TENANT, ep.id, enabled=False, description="later")
    assert first is not None and again is not None
    assert again.disabled_at == first.disabled_at and again.description == "later"


async def test_deleting_an_endpoint_removes_it_and_its_deliveries(make: MakeDispatcher) -> None:
    """delete_endpoint: the endpoint and its deliveries are gone; others' stay; the event stays."""
    d = await _dispatcher(make, FakeTime())
    ep = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    kept = await d.events.create_endpoint(TENANT, url=URL, event_types=["*"])
    published = await d.events.publish(TENANT, "order.created", data=example())
    await d.events.drain(timeout=1)
    assert await d.events.delete_endpoint(TENANT, ep.id) is True
    assert await d.events.endpoint(TENANT, ep.id) is None
    assert [e.id for e in await d.events.endpoints(TENANT)] == [kept.id]
    log = (await d.events.delivery_log(TENANT)).items
    assert [(dl.endpoint_id, dl.event_id) for dl in log] == [(kept.id, published.id)]
    assert await d.events.delete_endpoint(TENANT, ep.id) is False
