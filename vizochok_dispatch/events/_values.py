"""What crosses the public boundary of event webhooks: frozen, slotted values.

An endpoint's secret is never in its ``repr``; a published event's body is the exact bytes
every attempt sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

DeliveryStatus = Literal["pending", "delivered", "failed"]
Trigger = Literal["scheduled", "manual"]
EndpointStatus = Literal["active", "disabled"]


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
    #: ``scheduled`` (the worker's) or ``manual`` (a replay).
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
