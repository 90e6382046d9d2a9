"""The demo's event webhooks: tenants receive platform events through the receiver kit.

Three shops take events on one uvicorn server, each under its own prefix:

- ``fresh-market`` handles every event it gets (``create_receiver_app(on_event=...)``);
- ``flaky-market``'s handler is down for its first two attempts (``RetryLater``: 503);
- ``gone-market`` has shut its endpoint down and answers ``410 Gone``.

The scenario runs on its own dispatchers over the demo's SQLite database, with a short retry
schedule so that retries take milliseconds; the last step closes a dispatcher with a delivery
pending and opens another on the same database, which delivers it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import EVENT_TYPES, Dispatcher
from ..receiver import DEFAULT_EVENTS_PATH, Event, OrderCreatedEvent, RetryLater, UnknownEvent
from ..receiver import create_receiver_app as _create_receiver_app
from ..receiver.testing import serve_on_loopback
from ._shop import FLAKY, FRESH
from ._transcript import Transcript

GONE: Final = "gone-market"
#: The delays before attempts 2 and 3: short, so the demo's retries take milliseconds.
RETRY_SCHEDULE: Final = "50ms,50ms"
#: How long the demo waits for a delivery it expects (it takes milliseconds).
WAIT_SECONDS: Final = 5.0


@dataclass
class EventShop:
    """One tenant's events endpoint: what it handled and every request that reached it."""

    tenant: str
    #: Attempts the handler still fails with ``RetryLater`` (503).
    failures_left: int = 0
    handled: list[Event | UnknownEvent] = field(default_factory=list)
    #: ``(X-VIZOCHOK-Delivery, X-VIZOCHOK-Attempt)`` of each request, in arrival order.
    requests: list[tuple[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_event(self, event: Event | UnknownEvent) -> None:
        """The tenant's own code: called by the kit once per verified event id."""
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RetryLater("order service restarting")
        self.handled.append(event)
        self.arrived.set()

    def recording(self, inner: ASGIApp) -> ASGIApp:
        """``inner``, noting the delivery id and attempt number of each request first."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                self.requests.append(
                    (headers.get("x-vizochok-delivery", ""), headers.get("x-vizochok-attempt", ""))
                )
            await inner(scope, receive, send)

        return app


@dataclass
class EventTenants:
    """The shops that take events, their secrets (as each was shown once), one ASGI app."""

    fresh: EventShop = field(default_factory=lambda: EventShop(FRESH))
    flaky: EventShop = field(default_factory=lambda: EventShop(FLAKY, failures_left=2))
    gone_calls: int = 0
    secrets: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        """Each shop's events endpoint under ``/<tenant id>``."""
        return Starlette(
            routes=[
                *(Mount(f"/{shop.tenant}", app=self._receiver(shop)) for shop in self.shops()),
                Route(f"/{GONE}{DEFAULT_EVENTS_PATH}", self._gone, methods=["POST"]),
            ]
        )

    def shops(self) -> tuple[EventShop, EventShop]:
        """The shops built on the receiver kit."""
        return self.fresh, self.flaky

    def _receiver(self, shop: EventShop) -> ASGIApp:
        kit = _create_receiver_app(
            secret=lambda: self.secrets[shop.tenant],
            check_products=None,
            cart_operation=None,
            load_cart=None,
            on_event=shop.on_event,
        )
        return shop.recording(kit)

    async def _gone(self, _request: Request) -> JSONResponse:
        """The shop closed this endpoint for good."""
        self.gone_calls += 1
        return JSONResponse({"error": "endpoint removed"}, status_code=410)


async def _arrival(shop: EventShop) -> bool:
    """Whether the shop handled an event within the wait (cleared again for the next one)."""
    try:
        await asyncio.wait_for(shop.arrived.wait(), WAIT_SECONDS)
    except TimeoutError:
        return False
    shop.arrived.clear()
    return True


def _order(number: str) -> dict[str, object]:
    data = EVENT_TYPES["order.created"].example
    return {**data, "order_number": number}


async def run_events(
    t: Transcript,
    tenants: EventTenants,
    database_url: str,
    open_dispatcher: Callable[..., Dispatcher],
) -> None:
    """Steps 8-11: subscribe, deliver and verify, retry, 410, a restart that loses nothing."""
    async with serve_on_loopback(tenants.app()) as base:
        dispatcher = open_dispatcher(database_url, event_retry_schedule=RETRY_SCHEDULE)
        async with dispatcher as d:
            await _delivered(t, d, tenants, base)
            await _retried(t, d, tenants, base)
            await _gone(t, d, tenants, base)
        await _restart(t, tenants, database_url, open_dispatcher)


async def _delivered(t: Transcript, d: Dispatcher, tenants: EventTenants, base: str) -> None:
    t.heading(f"8. Event webhooks: {FRESH} subscribes to order.*")
    url = f"{base}/{FRESH}{DEFAULT_EVENTS_PATH}"
    endpoint = await d.events.create_endpoint(FRESH, url=url, event_types=["order.*"])
    tenants.secrets[FRESH] = endpoint.secret  # the tenant stores what it was shown once
    t.say(f"endpoint {endpoint.id} -> {url}")
    t.say(f"event types {list(endpoint.event_types)}, scheme {endpoint.signature_scheme}")
    t.check(endpoint.secret.startswith("whsec_"), "the endpoint's secret is generated (whsec_…)")
    chat = await d.events.publish(
        FRESH, "chat.session.created", data=EVENT_TYPES["chat.session.created"].example
    )
    t.say(f"publish chat.session.created -> {len(chat.deliveries)} deliveries")
    t.check(not chat.deliveries, "an event type the tenant did not subscribe to goes nowhere")
    started = time.monotonic()
    event = await d.events.publish(
        FRESH, "order.created", data=_order("ORD-DEMO-0001"), idempotency_key="ORD-DEMO-0001"
    )
    t.say(f"publish order.created -> {event.id}, {len(event.deliveries)} delivery")
    arrived = await _arrival(tenants.fresh)
    elapsed = time.monotonic() - started
    handled = tenants.fresh.handled[-1] if tenants.fresh.handled else None
    number = handled.data.order_number if isinstance(handled, OrderCreatedEvent) else None
    t.say(f"the tenant's on_event got {type(handled).__name__} {number} after {elapsed:.2f} s")
    t.check(
        arrived and isinstance(handled, OrderCreatedEvent) and handled.id == event.id,
        "order.created is delivered, its signature verified by the receiver kit, typed",
    )
    t.check(
        tenants.fresh.requests == [(event.id, "1")],
        "X-VIZOCHOK-Delivery carries the event id; one attempt, numbered 1",
    )
    again = await d.events.publish(
        FRESH, "order.created", data=_order("ORD-DEMO-0001"), idempotency_key="ORD-DEMO-0001"
    )
    t.check(
        again.duplicate and again.id == event.id,
        "publishing again with the same idempotency key returns the first event",
    )
    await d.events.drain(timeout=1.0)  # the worker settles what it sent
    [delivery] = await d.events.deliveries(FRESH, event_id=event.id)
    t.say(f"delivery {delivery.id}: {delivery.status}, attempts {len(delivery.attempts)}")
    t.check(delivery.status == "delivered", "the delivery log says delivered")


async def _retried(t: Transcript, d: Dispatcher, tenants: EventTenants, base: str) -> None:
    t.heading(f"9. Event webhooks: {FLAKY}'s handler fails twice (retries {RETRY_SCHEDULE})")
    url = f"{base}/{FLAKY}{DEFAULT_EVENTS_PATH}"
    endpoint = await d.events.create_endpoint(FLAKY, url=url, event_types=["order.created"])
    tenants.secrets[FLAKY] = endpoint.secret
    event = await d.events.publish(FLAKY, "order.created", data=_order("ORD-DEMO-0002"))
    arrived = await _arrival(tenants.flaky)
    await d.events.drain(timeout=1.0)
    [delivery] = await d.events.deliveries(FLAKY, event_id=event.id)
    for attempt in delivery.attempts:
        t.say(f"attempt {attempt.number}: HTTP {attempt.status} after {attempt.latency_ms:.0f} ms")
    t.check(
        arrived and [a.status for a in delivery.attempts] == [503, 503, 200],
        "two failures are retried on the schedule; attempt 3 is delivered",
    )
    ids = {delivery_id for delivery_id, _ in tenants.flaky.requests}
    numbers = [number for _, number in tenants.flaky.requests]
    t.check(
        ids == {event.id} and numbers == ["1", "2", "3"],
        "all three attempts carry the same delivery id, numbered 1, 2, 3",
    )
    t.check(
        delivery.status == "delivered" and len(tenants.flaky.handled) == 1,
        "the tenant's handler ran to the end once",
    )


async def _gone(t: Transcript, d: Dispatcher, tenants: EventTenants, base: str) -> None:
    t.heading(f"10. Event webhooks: {GONE} answers 410 Gone")
    url = f"{base}/{GONE}{DEFAULT_EVENTS_PATH}"
    await d.events.create_endpoint(GONE, url=url, event_types=["order.*"])
    event = await d.events.publish(GONE, "order.created", data=_order("ORD-DEMO-0003"))
    await d.events.drain(timeout=2.0)
    [delivery] = await d.events.deliveries(GONE, event_id=event.id)
    [endpoint] = await d.events.endpoints(GONE)
    t.say(f"delivery: {delivery.status} ({delivery.detail}), attempts {len(delivery.attempts)}")
    t.say(f"endpoint: enabled={endpoint.enabled}, reason: {endpoint.disabled_reason}")
    t.check(
        not endpoint.enabled and endpoint.disabled_reason == "the endpoint answered 410 Gone",
        "410 disables the endpoint at once, saying why",
    )
    t.check(
        delivery.status == "failed" and tenants.gone_calls == 1,
        "the delivery fails after one attempt: 410 is not retried",
    )
    later = await d.events.publish(GONE, "order.created", data=_order("ORD-DEMO-0004"))
    t.check(not later.deliveries, "a disabled endpoint gets no further events")


async def _restart(
    t: Transcript,
    tenants: EventTenants,
    database_url: str,
    open_dispatcher: Callable[..., Dispatcher],
) -> None:
    t.heading("11. Event webhooks: a worker restart loses nothing")
    async with open_dispatcher(database_url, event_worker="off") as before:
        event = await before.events.publish(FRESH, "order.created", data=_order("ORD-DEMO-0005"))
        [pending] = await before.events.deliveries(FRESH, event_id=event.id)
        t.say(f"published {event.id}; delivery {pending.status}; the dispatcher closes")
    t.check(pending.status == "pending", "the dispatcher closed with the delivery pending")
    t.say("a new dispatcher opens on the same database; its embedded worker starts")
    async with open_dispatcher(database_url, event_retry_schedule=RETRY_SCHEDULE) as after:
        arrived = await _arrival(tenants.fresh)
        await after.events.drain(timeout=1.0)
        [delivery] = await after.events.deliveries(FRESH, event_id=event.id)
    handled = tenants.fresh.handled[-1] if tenants.fresh.handled else None
    t.say(f"the tenant got {handled.id if handled else None}; delivery {delivery.status}")
    t.check(
        arrived and handled is not None and handled.id == event.id,
        "the new worker delivered the pending event",
    )
    t.check(delivery.status == "delivered", "the delivery log says delivered after the restart")
