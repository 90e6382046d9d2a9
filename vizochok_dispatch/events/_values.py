"""What crosses the public boundary of event webhooks: frozen, slotted values.

An endpoint's secret is never in its ``repr``; a published event's body is the exact bytes
every attempt sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

DeliveryStatus = Literal["pending", "delivered", "failed"]
Trigger = Literal["scheduled", "manual", "test"]
EndpointStatus = Literal["active", "disabled"]
#: Why delivery disabled an endpoint (``EndpointDisabled.cause``).
DisableCause = Literal["gone", "failing_too_long", "too_many_failures"]


@dataclass(frozen=True, slots=True)
class EventEndpoint:
    """Where a tenant receives events (see ``EventService.create_endpoint``)."""

    #: ``ep_`` then 26 letters and digits.
    id: str
    tenant_id: str
    url: str
    #: The subscription as given: type names, ``prefix.*`` patterns or ``*``.
    event_types: tuple[str, ...]
    #: ``vizochok`` or ``standard-webhooks`` (docs/webhooks.md §8).
    signature_scheme: str
    secret: str = field(repr=False)
    #: Seconds one attempt may take, from connecting to the answer (1-30).
    timeout_seconds: float = 15.0
    #: Deliveries go out one at a time, in publish order.
    ordered: bool = False
    description: str | None = None
    #: ``False`` once the endpoint answered ``410 Gone`` (or was disabled otherwise).
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: A rolled secret not promoted yet (docs/webhooks.md §7): ``standard-webhooks``
    #: requests carry its signature beside the current one's; it signs alone once promoted,
    #: or by itself from ``pending_promotes_at``.
    pending_secret: str | None = field(default=None, repr=False)
    #: When the pending secret was rolled (UTC).
    pending_since: datetime | None = None
    #: When the pending secret signs by itself if nobody promotes it first (UTC).
    pending_promotes_at: datetime | None = None

    @property
    def status(self) -> EndpointStatus:
        """``active``, or ``disabled`` (``disabled_reason`` and ``disabled_at`` say why and
        since when)."""
        return "active" if self.enabled else "disabled"


@dataclass(frozen=True, slots=True)
class EventAttempt:
    """One HTTP attempt of a delivery, as it happened."""

    #: 1, 2, 3 …: the ``X-VIZOCHOK-Attempt`` header it carried.
    number: int
    #: The HTTP status of the answer, when one came.
    status: int | None
    #: From sending to the answer (and its first 4 KiB), in milliseconds.
    latency_ms: float
    #: ``None`` when delivered; else ``http_status``, ``timeout``, ``connect_error`` or
    #: ``blocked_destination``.
    detail: str | None
    attempted_at: datetime
    #: The first 4 KiB of the answer's body (``None`` when no answer came).
    response: bytes | None = field(default=None, repr=False)
    #: For ``connect_error``: what kind of failure, in words.
    reason: str | None = None
    #: ``scheduled`` (the worker's), ``manual`` (a retry or recovery) or ``test`` (an
    #: endpoint test).
    trigger: Trigger = "scheduled"


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """One event on its way to one endpoint."""

    #: ``dlv_`` then 26 letters and digits.
    id: str
    event_id: str
    endpoint_id: str
    tenant_id: str
    event_type: str
    #: ``pending`` until an attempt succeeds (``delivered``) or none is left (``failed``).
    status: DeliveryStatus
    #: Every recorded attempt, oldest first.
    attempts: tuple[EventAttempt, ...] = ()
    #: When the next attempt is due; ``None`` once delivered or failed.
    next_attempt_at: datetime | None = None
    #: Why it failed (the last attempt's detail, or ``endpoint_disabled``); while pending, the
    #: last attempt's failure.
    detail: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The request body exactly as every attempt sent it; only a single delivery read by id
    #: (``EventService.delivery``) carries it, ``None`` elsewhere.
    body: bytes | None = field(default=None, repr=False)
    #: An endpoint test's delivery (``EventService.test_endpoint``): one attempt, never
    #: counted towards auto-disable, never recovered.
    test: bool = False


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """An event committed with its deliveries (see ``EventService.publish``)."""

    #: ``evt_`` then 26 letters and digits: the ``X-VIZOCHOK-Delivery`` / ``webhook-id`` of
    #: every attempt, the receiver's idempotency key.
    id: str
    tenant_id: str
    event_type: str
    #: The ``timestamp`` in the body: when it was published, UTC, milliseconds.
    timestamp: datetime
    #: The request body, exactly as every attempt sends and signs it.
    body: bytes = field(repr=False)
    idempotency_key: str | None = None
    #: One per endpoint it fanned out to (none when no enabled endpoint subscribes).
    deliveries: tuple[EventDelivery, ...] = ()
    #: ``True`` when ``idempotency_key`` named an event published in the last 24 h: that
    #: event is returned and nothing new was published.
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What ``EventService.drain`` did and left."""

    #: Attempts this call made (the embedded worker's are not counted).
    attempts: int
    #: Deliveries still pending when it returned: due later than its timeout, or held by
    #: another process.
    pending: int


@dataclass(frozen=True, slots=True)
class EndpointDisabled:
    """An endpoint was disabled by delivery (docs/webhooks.md §9): what the operator hook
    (``Dispatcher(on_event_endpoint_disabled=...)``) and the ``event_endpoint.disabled`` log
    event carry."""

    tenant_id: str
    endpoint_id: str
    url: str
    #: ``gone`` (it answered 410), ``failing_too_long`` or ``too_many_failures``.
    cause: DisableCause
    #: The reason as the endpoint keeps it (``disabled_reason``), in words.
    reason: str
    disabled_at: datetime
    #: Deliveries that had failed in a row, and the first failed attempt since the last
    #: delivered one (``None`` for ``gone`` on a first failure).
    failed_deliveries: int = 0
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What ``EventService.recover`` re-queued."""

    endpoint_id: str
    #: Failed deliveries made pending again, due at once (at most ``limit``).
    recovered: int
    #: ``True`` when failed deliveries of the range are left: call again (same range).
    more: bool
    since: datetime
    #: ``None``: no end (up to the call, included).
    until: datetime | None
    #: The most one call re-queues.
    limit: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What ``EventService.purge_expired`` deleted (docs/webhooks.md §9, retention)."""

    deliveries: int
    attempts: int
    events: int
    #: ``True`` when it stopped at ``max_batches`` with more to purge.
    more: bool = False


@dataclass(frozen=True, slots=True)
class EndpointTestReport:
    """What an endpoint test saw (``EventService.test_endpoint``): like a webhook
    test-fire's report, for one event delivery."""

    endpoint_id: str
    event_type: str
    #: The URL the request went to (as configured).
    url: str
    ok: bool
    #: The answer's HTTP status, when one came.
    status: int | None
    latency_ms: float | None
    #: ``None`` when delivered; else ``http_status``, ``timeout``, ``connect_error`` or
    #: ``blocked_destination``.
    detail: str | None
    #: The test's delivery (``test: true`` in the delivery log) and event ids; the event id
    #: is the request's ``X-VIZOCHOK-Delivery`` / ``webhook-id``.
    delivery_id: str
    event_id: str
    attempts: tuple[EventAttempt, ...]
    #: What was wrong, in words, with what to do about it first.
    problems: tuple[str, ...] = ()
    #: The most likely fix, in one sentence (``None`` when delivered).
    hint: str | None = None
    #: The first 4 KiB of the answer's body, as text.
    response_body: str | None = None
    #: Whether the endpoint subscribes to ``event_type`` (a test is sent either way).
    subscribed: bool = True
