"""Rolling an event endpoint's secret without downtime (docs/webhooks.md §7, §8), seen by real
receivers on 127.0.0.1: with ``standard-webhooks`` both signatures go out during the overlap,
so a receiver holding only the old secret and one holding only the new both verify; with
``vizochok`` the current secret signs until promotion; after promotion (or the overlap's end)
only the new one verifies; a rotate replaces at once and drops the pending secret.

Each request is verified as it arrives: standard-webhooks with the ``standardwebhooks``
package, vizochok with the receiver kit.  The worker is off and time is fake but near real
time (the package checks the timestamp against the real clock), with a 60-second overlap.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import (
    Dispatcher,
    EventEndpoint,
    InvalidConfig,
    NoPendingSecret,
)
from vizochok_dispatch.events._tables import EventEndpointRow
from vizochok_dispatch.receiver import VerificationError, create_receiver_app, verify_request

from .support import TENANT, MakeDispatcher, example, make

__all__ = ["make"]

pytestmark = pytest.mark.loopback

OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW = "whsec_QmV0dGVyIHNlY3JldHMgZm9yIGV2ZXJ5b25lIQ=="
ROTATED = "whsec_cm90YXRlZCBhdCBvbmNlIGZvciBhIGxlYWs="
OVERLAP = 60.0


@dataclass
class Receivers:
    """Verifies each request as a receiver holding only ``OLD``, and one holding only ``NEW``."""

    fake: FakeTime
    seen: list[dict[str, bool]] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)

    def _verifies(self, request: Received, secret: str) -> bool:
        if "webhook-signature" in request.headers:
            self.signatures.append(request.headers["webhook-signature"])
            try:
                Webhook(secret).verify(request.body, request.headers)
            except WebhookVerificationError:
                return False
            return True
        try:
            verify_request(request.headers, request.body, [secret], now=self.fake.now)
        except VerificationError:
            return False
        return True

    async def __call__(self, request: Received, reply: Reply) -> None:
        self.requests.append(request)
        self.seen.append({"old": self._verifies(request, OLD), "new": self._verifies(request, NEW)})
        await reply.send(200, b"")


@dataclass
class Setup:
    dispatcher: Dispatcher
    receivers: Receivers
    fake: FakeTime
    server: LoopbackServer

    async def endpoint(self, scheme: str) -> EventEndpoint:
        return await self.dispatcher.events.create_endpoint(
            TENANT,
            url=self.server.url("/events"),
            event_types=["order.*"],
            signature_scheme=scheme,
            secret=OLD,
        )

    async def deliver(self) -> dict[str, bool]:
        """Publish one event, deliver it, and say which receiver verified it."""
        before = len(self.receivers.seen)
        await self.dispatcher.events.publish(TENANT, "order.created", data=example())
        report = await self.dispatcher.events.drain()
        assert report.pending == 0
        assert len(self.receivers.seen) == before + 1
        return self.receivers.seen[-1]


@pytest.fixture
async def setup(make: MakeDispatcher) -> AsyncIterator[Setup]:
    fake = FakeTime(now=time.time())
    receivers = Receivers(fake)
    async with serve(receivers) as server:
        dispatcher = await make(
            clock=fake.clock,
            sleep=fake.sleep,
            event_worker="off",
            secret_overlap_seconds=OVERLAP,
        )
        yield Setup(dispatcher, receivers, fake, server)


BOTH = {"old": True, "new": True}
ONLY_OLD = {"old": True, "new": False}
ONLY_NEW = {"old": False, "new": True}


async def test_standard_webhooks_sends_both_signatures_during_the_overlap(setup: Setup) -> None:
    """standard-webhooks: during the overlap an old-only and a new-only receiver both verify
    (``v1,<old> v1,<new>``); once it ends, only the new one does (one signature)."""
    ep = await setup.endpoint("standard-webhooks")
    assert await setup.deliver() == ONLY_OLD
    rolled = await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
    assert rolled is not None and rolled.secret == OLD and rolled.pending_secret == NEW
    assert await setup.deliver() == BOTH
    first, second = setup.receivers.signatures[-1].split(" ")
    assert first.startswith("v1,") and second.startswith("v1,")
    setup.fake.now += OVERLAP - 1
    assert await setup.deliver() == BOTH
    setup.fake.now += 1
    assert await setup.deliver() == ONLY_NEW
    assert " " not in setup.receivers.signatures[-1]
    (listed,) = await setup.dispatcher.events.endpoints(TENANT)
    assert (listed.secret, listed.pending_secret) == (NEW, None)
    with pytest.raises(NoPendingSecret):
        await setup.dispatcher.events.promote_secret(TENANT, ep.id)


@pytest.mark.parametrize("scheme", ["standard-webhooks", "vizochok"])
async def test_after_promotion_only_the_new_secret_verifies(setup: Setup, scheme: str) -> None:
    """Promote: the next delivery verifies with the new secret only, in both schemes."""
    ep = await setup.endpoint(scheme)
    await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
    promoted = await setup.dispatcher.events.promote_secret(TENANT, ep.id)
    assert promoted is not None and (promoted.secret, promoted.pending_secret) == (NEW, None)
    assert await setup.deliver() == ONLY_NEW


async def test_vizochok_signs_with_the_old_secret_until_promotion(setup: Setup) -> None:
    """vizochok: during the overlap the current secret alone signs; at its end the new one."""
    ep = await setup.endpoint("vizochok")
    await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
    assert await setup.deliver() == ONLY_OLD
    setup.fake.now += OVERLAP - 1
    assert await setup.deliver() == ONLY_OLD
    setup.fake.now += 1
    assert await setup.deliver() == ONLY_NEW


@pytest.mark.parametrize("scheme", ["standard-webhooks", "vizochok"])
async def test_a_rotate_replaces_at_once_and_drops_the_pending_secret(
    setup: Setup, scheme: str
) -> None:
    """Rotate: the next delivery carries the rotated secret only; the rolled one never signs."""
    ep = await setup.endpoint(scheme)
    await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
    rotated = await setup.dispatcher.events.rotate_secret(TENANT, ep.id, secret=ROTATED)
    assert rotated is not None and (rotated.secret, rotated.pending_secret) == (ROTATED, None)
    assert await setup.deliver() == {"old": False, "new": False}
    with pytest.raises(NoPendingSecret):
        await setup.dispatcher.events.promote_secret(TENANT, ep.id)
    generated = await setup.dispatcher.events.rotate_secret(TENANT, ep.id)
    assert generated is not None and generated.secret.startswith("whsec_")
    assert generated.secret != ROTATED


@pytest.mark.parametrize(
    ("scheme", "secret", "says"),
    [
        ("standard-webhooks", "tenant-own-secret-0123456789abcdef", "must start with whsec_"),
        ("vizochok", "short", "at least 24 characters"),
        ("vizochok", OLD, "must differ from the current secret"),
    ],
)
async def test_a_refused_own_secret_names_the_field_not_the_value(
    setup: Setup, scheme: str, secret: str, says: str
) -> None:
    """Roll: an own secret the scheme cannot use, or the current one, is refused on
    ``secret`` (the value never shown) and nothing changes."""
    ep = await setup.endpoint(scheme)
    with pytest.raises(InvalidConfig, match=says) as caught:
        await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=secret)
    assert [e.field for e in caught.value.errors] == ["secret"]
    assert secret not in str(caught.value)
    (listed,) = await setup.dispatcher.events.endpoints(TENANT)
    assert (listed.secret, listed.pending_secret) == (OLD, None)


async def test_another_tenants_endpoint_cannot_be_rolled(setup: Setup) -> None:
    """Isolation: roll, promote and rotate of another tenant's (or no) endpoint return None
    and change nothing."""
    ep = await setup.endpoint("standard-webhooks")
    events = setup.dispatcher.events
    for endpoint_id in (ep.id, "ep_unknown"):
        assert await events.roll_secret("tenant-2", endpoint_id) is None
        assert await events.promote_secret("tenant-2", endpoint_id) is None
        assert await events.rotate_secret("tenant-2", endpoint_id) is None
    (listed,) = await events.endpoints(TENANT)
    assert (listed.secret, listed.pending_secret) == (OLD, None)


async def test_the_pending_secret_is_encrypted_and_in_no_repr_or_log(setup: Setup) -> None:
    """Secrecy: the pending secret is ciphertext at rest, absent from reprs and logs."""
    with capture_logs() as logs:
        ep = await setup.endpoint("standard-webhooks")
        rolled = await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
        await setup.deliver()
        await setup.dispatcher.events.promote_secret(TENANT, ep.id)
    assert rolled is not None
    assert NEW not in repr(rolled) and OLD not in repr(rolled)
    assert NEW not in repr(logs) and OLD not in repr(logs)
    assert {"event.endpoint_secret_rolled", "event.endpoint_secret_promoted"} <= {
        log["event"] for log in logs
    }
    await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=ROTATED)
    engine = setup.dispatcher.store.inner.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        stored = (await conn.execute(select(EventEndpointRow.pending_secret))).scalar_one()
    assert stored.startswith("v1.") and ROTATED not in stored


async def _kit_answers(setup: Setup, secrets: list[str]) -> int:
    """The status the receiver kit's events endpoint, holding ``secrets``, gives the last
    request the loopback receiver got (sent to it as it came)."""
    request = setup.receivers.requests[-1]

    async def on_event(_event: object) -> None:
        return None

    app = create_receiver_app(
        secret=secrets,
        check_products=None,
        cart_operation=None,
        load_cart=None,
        on_event=on_event,
        clock=lambda: setup.fake.now,
    )
    headers = {
        k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://receiver.test"
    ) as client:
        answer = await client.post("/api/vizochok/events", content=request.body, headers=headers)
    return answer.status_code


async def test_the_receiver_kit_takes_a_list_of_secrets_for_event_requests(setup: Setup) -> None:
    """Receiver kit: create_receiver_app(secret=[new, old]) accepts vizochok event requests
    during the overlap and after promotion; the old secret alone is refused after it."""
    ep = await setup.endpoint("vizochok")
    await setup.dispatcher.events.roll_secret(TENANT, ep.id, secret=NEW)
    await setup.deliver()
    assert await _kit_answers(setup, [NEW, OLD]) == 200
    assert await _kit_answers(setup, [OLD]) == 200
    await setup.dispatcher.events.promote_secret(TENANT, ep.id)
    await setup.deliver()
    assert await _kit_answers(setup, [NEW, OLD]) == 200
    assert await _kit_answers(setup, [OLD]) == 401
