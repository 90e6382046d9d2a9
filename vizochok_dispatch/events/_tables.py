"""The event webhook tables, on the tenants' ``Base`` so one set of migrations covers all.

Svix's model: an *event* (the message, its body serialised once), one *delivery* per endpoint
it was fanned out to (status, attempt count, next attempt time, the lease of the worker
holding it), and the *attempts* made for a delivery.

Every time is an aware UTC ``datetime`` written by the code from its injected clock (never the
database's ``now()``), so tests that move time move these too.  SQLite keeps no zone:
:class:`UtcDateTime` stores UTC and reads UTC back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from ..tenants._models import ENCRYPTED_SECRET, SECRET_BINDING, Base

#: Delivery states (``event_deliveries.status``).
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
#: What started an attempt (``event_attempts.trigger``): the worker's schedule, a retry or
#: recovery asked for by the tenant, or an endpoint test.
SCHEDULED: Final = "scheduled"
MANUAL: Final = "manual"
TEST: Final = "test"


class UtcDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that takes aware datetimes only and always gives UTC back."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, _dialect: Dialect) -> datetime | None:  # noqa: ANN401 - what the driver returns
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the column's type
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _secret_name(tenant_id: str, endpoint_id: str) -> str:
    """What an endpoint's secret is bound to (the keyring's associated data), so a secret
    copied into another row does not decrypt."""
    # Tenant ids are printable, so no id can forge this one.
    return f"{tenant_id}\nevent_endpoint:{endpoint_id}"


def _row_secret_name(row: Mapping[str, Any]) -> str:
    return _secret_name(str(row["tenant_id"]), str(row["id"]))


#: How ``secrets reencrypt`` (in ``tenants``, which cannot import this) binds these secrets.
_ENDPOINT_SECRET: Final = {ENCRYPTED_SECRET: True, SECRET_BINDING: _row_secret_name}


class EventEndpointRow(Base):
    """Where a tenant receives events: a URL, the types it wants, its secret and scheme."""

    __tablename__ = "event_endpoints"

    #: ``ep_`` then 26 letters and digits (sortable by creation time).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: The subscription as given: type names and ``prefix.*`` patterns (a JSON list).
    event_types: Mapped[list[str]] = mapped_column(JSON)
    #: ``vizochok`` or ``standard-webhooks``.
    signature_scheme: Mapped[str] = mapped_column(String(32))
    #: Encrypted at rest like a webhook secret (``tenants._crypto``), bound to this endpoint.
    secret: Mapped[str] = mapped_column(Text, info=dict(_ENDPOINT_SECRET))
    timeout_seconds: Mapped[float] = mapped_column(Float)
    #: Deliveries go out one at a time, in publish order.
    ordered: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The last sequence number given to a delivery of an ordered endpoint.
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Deliveries that failed in a row since the last one delivered (tests not counted):
    #: auto-disable's count (``VIZOCHOK_EVENT_DISABLE_AFTER_FAILURES``).
    failed_deliveries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The first failed attempt since the last delivered one (``None`` while delivering):
    #: auto-disable's time (``VIZOCHOK_EVENT_DISABLE_AFTER``).
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    #: A rolled secret that does not sign alone yet (docs/webhooks.md §7, "Rolling a secret"),
    #: encrypted like ``secret``; it signs by itself from ``pending_promotes_at``.
    pending_secret: Mapped[str | None] = mapped_column(
        Text, nullable=True, info=dict(_ENDPOINT_SECRET)
    )
    pending_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    pending_promotes_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class EventRow(Base):
    """One published event; ``body`` is the exact bytes every attempt sends and signs."""

    __tablename__ = "events"
    __table_args__ = (
        # One event per key and tenant; a key older than 24 h is released by the next publish.
        UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_events_tenant_id_idempotency_key"
        ),
        Index("ix_events_tenant_id_created_at", "tenant_id", "created_at"),
    )

    #: ``evt_`` then 26 letters and digits (sortable by creation time).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    event_type: Mapped[str] = mapped_column(String(128))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class EventDeliveryRow(Base):
    """One event on its way to one endpoint: the unit a worker claims, attempts and settles."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        # What a worker looks for: pending deliveries by due time.
        Index("ix_event_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # An ordered endpoint's head: its pending delivery with the lowest sequence.
        Index(
            "ix_event_deliveries_endpoint_id_status_sequence", "endpoint_id", "status", "sequence"
        ),
        # The delivery log, newest first (tenants._pages): one index range per filtered page.
        Index("ix_event_deliveries_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        Index(
            "ix_event_deliveries_tenant_id_status_created_at_id",
            "tenant_id",
            "status",
            "created_at",
            "id",
        ),
        Index(
            "ix_event_deliveries_tenant_id_event_type_created_at_id",
            "tenant_id",
            "event_type",
            "created_at",
            "id",
        ),
        Index("ix_event_deliveries_endpoint_id_created_at_id", "endpoint_id", "created_at", "id"),
        # Retention: settled deliveries by the time they settled.
        Index("ix_event_deliveries_status_updated_at", "status", "updated_at"),
    )

    #: ``dlv_`` then 26 letters and digits.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("event_endpoints.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[str] = mapped_column(String(128))
    #: The event's type, copied here so the delivery log filters on it with an index.  Never
    #: null once written (publish sets it, migration 0004 filled older rows); nullable only
    #: so that 0004 is a plain ADD COLUMN, not a table rebuild on SQLite.
    event_type: Mapped[str] = mapped_column(String(128), nullable=True)
    #: ``pending``, ``delivered`` or ``failed``.
    status: Mapped[str] = mapped_column(String(16))
    #: Attempts made and recorded (one cut short by a crash is made again, same number).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: When the next attempt is due; ``None`` once delivered or failed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: The lease: a worker holds the delivery until then; past it, another may claim it.
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    #: Who holds the lease: only that claim may record the attempt's outcome.
    claim_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Publish order on an ordered endpoint (``None`` on the others).
    sequence: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Why the delivery failed, or the last attempt's failure while it is still pending.
    detail: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: An endpoint test's delivery (``POST …/event-endpoints/{id}/test``): one attempt, never
    #: counted towards auto-disable, never recovered.
    test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: What starts the next attempt when it is not the schedule: ``manual`` after a retry or
    #: a recovery (``None``: ``scheduled``).
    trigger: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class EventAttemptRow(Base):
    """One HTTP attempt of a delivery, as it happened."""

    __tablename__ = "event_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("event_deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    #: 1, 2, 3 ...: the ``X-VIZOCHOK-Attempt`` the request carried.
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The HTTP status, when an answer came.
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    #: ``None`` on success, else why it failed (``http_status``, ``timeout`` ...).
    detail: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: For ``connect_error``: what kind of failure, in words.
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The first 4 KiB of the answer's body.
    response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: ``scheduled`` (the worker), ``manual`` (a retry or recovery) or ``test``.
    trigger: Mapped[str] = mapped_column(String(16))
