"""The admin API's event operations (docs/webhooks.md §9): test an endpoint, retry a delivery,
recover an endpoint's failed deliveries.

Every route serves the key's tenant only: an endpoint or delivery of another tenant is the
same 404 as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

import structlog
from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .._exceptions import FieldError, InvalidCall
from ..events._catalog import EVENT_TYPES
from ..events._operations import MAX_RECOVERED
from ..events._values import EndpointTestReport, EventAttempt, EventDelivery, Trigger
from ._deps import AuthenticatedRoute, ContextDep, TenantDep
from ._errors import DELIVERY_NOT_FOUND, ENDPOINT_NOT_FOUND, ApiError, invalid
from ._routes import errors_for

_log = structlog.get_logger("vizochok_dispatch")

#: The event tests' buckets are apart from the webhook test-fires', with the same limit.
_TEST_BUCKET: Final = "\nevent-endpoint-test"
_ERROR_TEXT: Final = {
    404: "no such endpoint or delivery for this key's tenant",
    409: "the endpoint is disabled (enable it first), or (retry) an attempt is under way",
    422: "invalid fields, every one listed in error.fields",
    429: "too many endpoint tests for this tenant; Retry-After says when to try again",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return errors_for(*statuses, texts=_ERROR_TEXT)


router = APIRouter(
    prefix="/api/v1/admin", tags=["event operations"], route_class=AuthenticatedRoute
)


# -- bodies --------------------------------------------------------------------------------------


class EventEndpointTestRequest(BaseModel):
    """Which event type's catalog example to send."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_type: str = Field(
        description="an event type of the catalog (GET /api/v1/admin/event-types); sent "
        "whether or not the endpoint subscribes to it",
        examples=["order.created"],
        json_schema_extra={"enum": list(EVENT_TYPES)},
    )


class EventAttemptPublic(BaseModel):
    """One HTTP attempt of a delivery."""

    number: int = Field(description="1, 2, 3 …: the X-VIZOCHOK-Attempt it carried")
    status: int | None = Field(description="the answer's HTTP status; null when none came")
    latency_ms: float
    detail: str | None = Field(
        description="null when delivered; else http_status, timeout, connect_error or "
        "blocked_destination"
    )
    reason: str | None = Field(description="for connect_error: what kind, in words")
    attempted_at: datetime
    trigger: Trigger = Field(
        description="scheduled (the worker), manual (a retry or recovery) or test"
    )
    response: str | None = Field(description="the answer's first 4 KiB, as text")


class EventDeliveryPublic(BaseModel):
    """One event on its way to one endpoint, with every attempt."""

    id: str
    event_id: str = Field(description="the X-VIZOCHOK-Delivery / webhook-id of every attempt")
    endpoint_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    test: bool = Field(description="an endpoint test's delivery")
    next_attempt_at: datetime | None
    detail: str | None = Field(description="why it failed, or the last failure while pending")
    attempts: list[EventAttemptPublic]
    created_at: datetime | None
    updated_at: datetime | None


class EventEndpointTestReport(BaseModel):
    """What an endpoint test saw (like a webhook test-fire's report)."""

    endpoint_id: str
    event_type: str
    url: str
    ok: bool = Field(description="a 2xx came within the endpoint's timeout")
    status: int | None = Field(description="the answer's HTTP status; null when none came")
    latency_ms: float | None
    detail: str | None = Field(description="the failure's machine-readable detail, if any")
    delivery_id: str = Field(description="the test's delivery, marked test in the log")
    event_id: str = Field(description="the request's X-VIZOCHOK-Delivery / webhook-id")
    attempts: list[EventAttemptPublic]
    problems: list[str] = Field(description="what was wrong, one readable line each")
    hint: str | None = Field(description="the likely fix; null when delivered")
    response_body: str | None = Field(description="the answer's first 4 KiB, as text")
    subscribed: bool = Field(description="the endpoint subscribes to event_type")


class EventRecoverRequest(BaseModel):
    """The publish-time range whose failed deliveries to re-queue."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="RFC 3339 with a time zone; included")
    until: AwareDatetime | None = Field(
        default=None,
        description="RFC 3339 with a time zone; excluded; null or left out: up to now, included",
    )


class EventRecoveryReport(BaseModel):
    """What a recovery re-queued."""

    endpoint_id: str
    recovered: int = Field(description="failed deliveries made pending again, due now")
    more: bool = Field(description="failed deliveries of the range are left: call again")
    limit: int = Field(description=f"the most one call re-queues ({MAX_RECOVERED})")
    since: datetime
    until: datetime | None = Field(description="null: up to the call, included")


def _attempt(attempt: EventAttempt) -> EventAttemptPublic:
    return EventAttemptPublic(
        number=attempt.number,
        status=attempt.status,
        latency_ms=attempt.latency_ms,
        detail=attempt.detail,
        reason=attempt.reason,
        attempted_at=attempt.attempted_at,
        trigger=attempt.trigger,
        response=None if attempt.response is None else attempt.response.decode("utf-8", "replace"),
    )


def delivery_public(delivery: EventDelivery) -> EventDeliveryPublic:
    """A delivery as the API shows it."""
    return EventDeliveryPublic(
        id=delivery.id,
        event_id=delivery.event_id,
        endpoint_id=delivery.endpoint_id,
        event_type=delivery.event_type,
        status=delivery.status,
        test=delivery.test,
        next_attempt_at=delivery.next_attempt_at,
        detail=delivery.detail,
        attempts=[_attempt(a) for a in delivery.attempts],
        created_at=delivery.created_at,
        updated_at=delivery.updated_at,
    )


def _report(report: EndpointTestReport) -> EventEndpointTestReport:
    return EventEndpointTestReport(
        endpoint_id=report.endpoint_id,
        event_type=report.event_type,
        url=report.url,
        ok=report.ok,
        status=report.status,
        latency_ms=report.latency_ms,
        detail=report.detail,
        delivery_id=report.delivery_id,
        event_id=report.event_id,
        attempts=[_attempt(a) for a in report.attempts],
        problems=list(report.problems),
        hint=report.hint,
        response_body=report.response_body,
        subscribed=report.subscribed,
    )


def _no_endpoint() -> ApiError:
    return ApiError(404, "not_found", ENDPOINT_NOT_FOUND)


def _disabled() -> ApiError:
    return ApiError(
        409,
        "endpoint_disabled",
        "the endpoint is disabled: enable it first (PATCH /api/v1/admin/event-endpoints/{id} "
        'with {"enabled": true}); GET it for the reason',
    )


# -- routes --------------------------------------------------------------------------------------


@router.post(
    "/event-endpoints/{endpoint_id}/test",
    responses=_errors(404, 415, 422, 429),
    summary="Send an event type's example to an endpoint now and report it",
)
async def test_event_endpoint(
    endpoint_id: str, body: EventEndpointTestRequest, tenant: TenantDep, context: ContextDep
) -> EventEndpointTestReport:
    """Sends the type's catalog example through the delivery path itself (signing, SSRF
    guard, deadline) and reports status, latency, the answer's first 4 KiB, what was wrong
    and a hint.  The test is in the delivery log, marked ``test``; it is never retried, never
    counts towards auto-disable, and a 410 to it disables nothing.  It is sent to a disabled
    endpoint too, and for a type the endpoint does not subscribe to (``subscribed`` says)."""
    if body.event_type not in EVENT_TYPES:
        raise invalid(
            [FieldError("event_type", f"is not an event type; known: {', '.join(EVENT_TYPES)}")]
        )
    if await context.dispatcher.events.endpoint(tenant.id, endpoint_id) is None:
        raise _no_endpoint()
    limiter = context.limiter
    wait = limiter.acquire(tenant.id + _TEST_BUCKET)
    if wait is not None:
        _log.info("admin.event_test_limited", tenant_id=tenant.id)
        raise ApiError(
            429,
            "rate_limited",
            f"at most {limiter.limit} endpoint tests a minute; try again later",
            headers={"Retry-After": limiter.retry_after_header(wait)},
        )
    report = await context.dispatcher.events.test_endpoint(
        tenant.id, endpoint_id, event_type=body.event_type
    )
    if report is None:  # deleted meanwhile
        raise _no_endpoint()
    return _report(report)


@router.post(
    "/deliveries/{delivery_id}/retry",
    # 422 stands for the path's parameter, which FastAPI would describe in a shape of its own
    responses=_errors(404, 409, 422),
    summary="Make a new attempt of a delivery now",
)
async def retry_delivery(
    delivery_id: str, tenant: TenantDep, context: ContextDep
) -> EventDeliveryPublic:
    """Whatever its status: a delivered one is sent again (same event id, so a receiver
    that drops duplicates drops it).  Answers the delivery after the attempt; a failure goes
    on with the retry schedule from the attempt count.  409 when another attempt of it is
    under way, or its endpoint is disabled."""
    outcome = await context.dispatcher.events.retry_delivery(tenant.id, delivery_id)
    if outcome is None:
        raise ApiError(404, "not_found", DELIVERY_NOT_FOUND)
    if outcome == "endpoint_disabled":
        raise _disabled()
    if isinstance(outcome, str):
        raise ApiError(
            409, "in_flight", "an attempt of this delivery is under way; retry when it is over"
        )
    return delivery_public(outcome)


@router.post(
    "/event-endpoints/{endpoint_id}/recover",
    responses=_errors(404, 409, 415, 422),
    summary="Re-queue an endpoint's failed deliveries of a time range",
)
async def recover_event_endpoint(
    endpoint_id: str, body: EventRecoverRequest, tenant: TenantDep, context: ContextDep
) -> EventRecoveryReport:
    """Every failed delivery published in ``[since, until)`` becomes pending, due now, up to
    10,000 a call (``more`` says whether to call again with the same range), in short
    transactions; the worker takes them within the endpoint's in-flight cap, round robin
    with everyone else's deliveries.  409 when the endpoint is disabled (enable it first)."""
    try:
        outcome = await context.dispatcher.events.recover(
            tenant.id, endpoint_id, since=body.since, until=body.until
        )
    except InvalidCall as exc:
        field = "until" if str(exc).startswith("until") else "since"
        raise invalid([FieldError(field, str(exc).removeprefix(f"{field} "))]) from None
    if outcome is None:
        raise _no_endpoint()
    if isinstance(outcome, str):
        raise _disabled()
    return EventRecoveryReport(
        endpoint_id=outcome.endpoint_id,
        recovered=outcome.recovered,
        more=outcome.more,
        limit=outcome.limit,
        since=outcome.since,
        until=outcome.until,
    )
