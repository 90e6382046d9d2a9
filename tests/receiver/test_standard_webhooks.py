"""The receiver kit verifies event requests on the ``standard-webhooks`` scheme (docs/webhooks.md
§8) with the same list-of-secrets rule as the ``vizochok`` scheme: tested with the requests the
dispatcher makes (its worker over 127.0.0.1, and its signing code)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.events.support import TENANT, settings_for
from vizochok_dispatch import Dispatcher
from vizochok_dispatch.contract._events import event_body
from vizochok_dispatch.contract._signing import event_headers
from vizochok_dispatch.events._catalog import EVENT_TYPES
from vizochok_dispatch.receiver import (
    DEFAULT_EVENTS_PATH,
    Event,
    OrderCreatedEvent,
    UnknownEvent,
    create_receiver_app,
    verify_standard_webhook,
)
from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import NOW

CURRENT = "whsec_" + base64.b64encode(bytes(range(40, 72))).decode()
OLDER = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
OTHER = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()


class Tenant:
    def __init__(self) -> None:
        self.events: list[Event | UnknownEvent] = []

    async def on_event(self, event: Event | UnknownEvent) -> None:
        self.events.append(event)

    def app(self, secrets: list[str], **options: Any) -> Any:
        return create_receiver_app(
            secret=secrets,
            check_products=None,
            cart_operation=None,
            load_cart=None,
            on_event=self.on_event,
            **options,
        )


@pytest.mark.loopback
@pytest.mark.parametrize("secrets", [[CURRENT], [OLDER, CURRENT]], ids=["one", "list"])
async def test_the_kit_takes_the_dispatchers_standard_webhooks_events(
    secrets: list[str], tmp_path: Path
) -> None:
    """standard-webhooks: the dispatcher's delivery to the kit is verified (any secret of the
    list) and handled once; the event arrives typed."""
    tenant = Tenant()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", event_worker="off")
    async with (
        serve_on_loopback(tenant.app(secrets)) as base,
        Dispatcher.from_settings(settings) as dispatcher,
    ):
        await dispatcher.events.create_endpoint(
            TENANT,
            url=base + DEFAULT_EVENTS_PATH,
            event_types=["order.*"],
            signature_scheme="standard-webhooks",
            secret=CURRENT,
        )
        published = await dispatcher.events.publish(
            TENANT, "order.created", data=dict(EVENT_TYPES["order.created"].example)
        )
        report = await dispatcher.events.drain(timeout=60)
        [delivery] = await dispatcher.events.deliveries(TENANT)
    assert (report.attempts, delivery.status) == (1, "delivered")
    [event] = tenant.events
    assert isinstance(event, OrderCreatedEvent)
    assert event.id == published.id


@pytest.mark.loopback
async def test_a_kit_on_another_secret_refuses_and_the_delivery_fails(tmp_path: Path) -> None:
    """standard-webhooks: a kit without the endpoint's secret answers 401 signature_mismatch;
    nothing is handled."""
    tenant = Tenant()
    settings = settings_for(f"sqlite+aiosqlite:///{tmp_path / 'events.db'}", event_worker="off")
    async with (
        serve_on_loopback(tenant.app([OTHER])) as base,
        Dispatcher.from_settings(settings) as dispatcher,
    ):
        endpoint = await dispatcher.events.create_endpoint(
            TENANT,
            url=base + DEFAULT_EVENTS_PATH,
            event_types=["order.*"],
            signature_scheme="standard-webhooks",
            secret=CURRENT,
        )
        report = await dispatcher.events.test_endpoint(
            TENANT, endpoint.id, event_type="order.created"
        )
    assert report is not None
    assert (report.status, report.ok) == (401, False)
    assert "the receiver answered signature_mismatch" in report.problems
    assert tenant.events == []


def _signed(
    secret: str, *, pending: str | None = None, event_id: str = "evt_0001"
) -> tuple[bytes, dict[str, str]]:
    example = EVENT_TYPES["order.created"].example
    body = event_body(event_id, "order.created", _when(), dict(example))
    headers = event_headers(
        "standard-webhooks",
        secret,
        event_id=event_id,
        event_type="order.created",
        attempt=1,
        timestamp=NOW,
        body=body,
        pending_secret=pending,
    )
    return body, headers


def _when() -> Any:
    from datetime import UTC, datetime  # noqa: PLC0415 - one use

    return datetime.fromtimestamp(NOW, UTC)


@pytest.mark.parametrize(
    ("kit", "signer", "pending", "index"),
    [
        ([CURRENT], CURRENT, None, 0),
        ([CURRENT, OLDER], OLDER, None, 1),
        ([OTHER, CURRENT], OLDER, CURRENT, 1),  # a rolled secret: both signatures sent
    ],
    ids=["current", "older-in-the-list", "pending-signature"],
)
def test_verify_standard_webhook_follows_the_secret_list_rule(
    kit: list[str], signer: str, pending: str | None, index: int
) -> None:
    """verify_standard_webhook: any secret of the list matching any v1 signature verifies;
    secret_index says which; webhook-id is the delivery id."""
    body, headers = _signed(signer, pending=pending)
    verified = verify_standard_webhook(headers, body, kit, now=float(NOW))
    assert (verified.secret_index, verified.delivery_id, verified.attempt) == (index, "evt_0001", 1)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda h, b: (h, b + b" "), "signature_mismatch"),
        (lambda h, b: ({**h, "webhook-id": "evt_0002"}, b), "signature_mismatch"),
        (lambda h, b: ({**h, "webhook-timestamp": str(NOW - 301)}, b), "timestamp_expired"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing_header"),
        (lambda h, b: ({**h, "webhook-signature": "v2,abc"}, b), "malformed_header"),
    ],
    ids=["body", "id", "stale", "no-id", "no-v1"],
)
async def test_a_changed_standard_webhooks_request_is_refused(change: Any, code: str) -> None:
    """standard-webhooks through the kit: a changed body or id, a stale time, a missing or
    garbled header is a 401 naming its code; nothing is handled."""
    tenant = Tenant()
    signed_body, signed_headers = _signed(CURRENT)
    headers, body = change(signed_headers, signed_body)
    transport = httpx.ASGITransport(app=tenant.app([CURRENT], clock=lambda: float(NOW)))
    async with httpx.AsyncClient(transport=transport, base_url="http://tenant.test") as client:
        response = await client.post(DEFAULT_EVENTS_PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, code)
    assert tenant.events == []
