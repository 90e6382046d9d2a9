"""Rolling a tenant's secret without downtime, seen by real receivers on 127.0.0.1
(docs/webhooks.md §7): the current secret signs until the pending one is promoted, by hand or
when the overlap ends (the cached config included), and a rotate replaces at once.

Each request is verified as it arrives by three receivers built with the receiver kit: one
holding only the old secret, one only the new, one both (the kit takes a list).  Time is fake
(the dispatcher's clock and the verifiers' "now"), so the 10-minute overlap takes no time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from tests.support.fakes import FakeTime
from tests.support.loopback import LoopbackServer, Received, Reply, serve
from vizochok_dispatch import (
    Dispatcher,
    DispatchSettings,
    NoPendingSecret,
    SqlConfigStore,
)
from vizochok_dispatch.receiver import VerificationError, verify_request

from .conftest import LOOPBACK_NETWORKS

pytestmark = pytest.mark.loopback

OLD = "tenant-old-secret-0123456789abcdef"
NEW = "tenant-new-secret-0123456789abcdef"
ROTATED = "tenant-rotated-secret-0123456789ab"
OVERLAP = 600.0
TENANT = "t1"
PRODUCTS = json.dumps({"products": [{"sku": "a", "price": 1, "in_stock": True}]}).encode()


@dataclass
class Receivers:
    """Verifies each request with the old secret alone, the new alone, and both."""

    fake: FakeTime
    seen: list[dict[str, bool]] = field(default_factory=list)

    def _verifies(self, request: Received, secrets: list[str]) -> bool:
        try:
            verify_request(request.headers, request.body, secrets, now=self.fake.now)
        except VerificationError:
            return False
        return True

    async def __call__(self, request: Received, reply: Reply) -> None:
        self.seen.append(
            {
                "old": self._verifies(request, [OLD]),
                "new": self._verifies(request, [NEW]),
                "both": self._verifies(request, [NEW, OLD]),
            }
        )
        await reply.send(200, PRODUCTS)


@dataclass
class Setup:
    dispatcher: Dispatcher
    receivers: Receivers
    fake: FakeTime

    async def call(self) -> dict[str, bool]:
        result = await self.dispatcher.check_products(TENANT, skus=["a"], store_id="s")
        assert result.failure is None
        return self.receivers.seen[-1]


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    """A dispatcher on SQLite/PostgreSQL with a long config cache, the tenant on ``OLD``."""
    fake = FakeTime()
    receivers = Receivers(fake)
    settings = DispatchSettings(
        database_url=database_url,
        allow_http=True,
        allowed_networks=LOOPBACK_NETWORKS,
        auto_migrate=True,
        config_cache_seconds=3600,  # the cache alone never reads the store again here
        secret_overlap_seconds=OVERLAP,
        event_worker="off",
    )
    store = SqlConfigStore(database_url, rules=settings.config_rules(), auto_migrate=True)
    async with (
        serve(receivers) as server,
        Dispatcher(
            store, settings=settings, clock=fake.clock, sleep=fake.sleep, owns_store=True
        ) as dispatcher,
    ):
        await dispatcher.store.save_config(
            TENANT, products_url=_url(server), cart_url=_url(server), secret=OLD
        )
        yield Setup(dispatcher, receivers, fake)


def _url(server: LoopbackServer) -> str:
    return server.url("/products")


ONLY_OLD = {"old": True, "new": False, "both": True}
ONLY_NEW = {"old": False, "new": True, "both": True}


async def test_the_old_secret_signs_until_the_overlap_ends_even_from_the_cache(
    setup: Setup,
) -> None:
    """Roll: only the old secret verifies during the overlap; at its end only the new one,
    though the cached config still holds the old secret as current."""
    assert await setup.call() == ONLY_OLD
    rolled = await setup.dispatcher.roll_secret(TENANT, secret=NEW)
    assert rolled is not None and rolled.pending_secret == NEW
    assert await setup.call() == ONLY_OLD
    setup.fake.now += OVERLAP - 1
    assert await setup.call() == ONLY_OLD
    setup.fake.now += 1
    assert await setup.call() == ONLY_NEW
    with pytest.raises(NoPendingSecret):
        await setup.dispatcher.promote_secret(TENANT)


async def test_promote_switches_the_next_request_to_the_new_secret(setup: Setup) -> None:
    """Promote: the request after it verifies with the new secret only."""
    await setup.dispatcher.roll_secret(TENANT, secret=NEW)
    assert await setup.call() == ONLY_OLD
    promoted = await setup.dispatcher.promote_secret(TENANT)
    assert promoted is not None and promoted.secret == NEW and promoted.pending_secret is None
    assert await setup.call() == ONLY_NEW
    setup.fake.now += OVERLAP * 2  # the old overlap's end changes nothing any more
    assert await setup.call() == ONLY_NEW


async def test_a_rotate_replaces_at_once_and_drops_the_pending_secret(setup: Setup) -> None:
    """Rotate: the next request is signed with the rotated secret; the rolled one never signs."""
    await setup.dispatcher.roll_secret(TENANT, secret=NEW)
    await setup.dispatcher.store.save_config(TENANT, secret=ROTATED)
    result = await setup.dispatcher.check_products(TENANT, skus=["a"], store_id="s")
    assert result.failure is None
    seen = setup.receivers.seen[-1]
    assert seen == {"old": False, "new": False, "both": False}
    setup.fake.now += OVERLAP * 2
    await setup.dispatcher.check_products(TENANT, skus=["a"], store_id="s")
    assert setup.receivers.seen[-1] == {"old": False, "new": False, "both": False}
    with pytest.raises(NoPendingSecret):
        await setup.dispatcher.promote_secret(TENANT)


async def test_rolling_logs_no_secret(setup: Setup) -> None:
    """Secrecy: roll, calls during and after the overlap, promote: no secret in any log."""
    with capture_logs() as logs:
        rolled = await setup.dispatcher.roll_secret(TENANT)
        assert rolled is not None and rolled.pending_secret is not None
        await setup.dispatcher.check_products(TENANT, skus=["a"], store_id="s")
        await setup.dispatcher.promote_secret(TENANT)
        await setup.dispatcher.check_products(TENANT, skus=["a"], store_id="s")
    text = repr(logs)
    assert OLD not in text
    assert rolled.pending_secret not in text


def test_the_overlap_setting_has_a_default_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings: VIZOCHOK_SECRET_OVERLAP_SECONDS is 24 h by default, read from the
    environment, and refused outside 1 s-30 days."""
    assert DispatchSettings().secret_overlap_seconds == 86_400
    monkeypatch.setenv("VIZOCHOK_SECRET_OVERLAP_SECONDS", "90")
    assert DispatchSettings().secret_overlap_seconds == 90
    for wrong in (0, 31 * 86_400):
        with pytest.raises(ValidationError, match="secret_overlap_seconds"):
            DispatchSettings(secret_overlap_seconds=wrong)
