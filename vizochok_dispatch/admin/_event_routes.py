"""The admin API's event webhook routes: endpoints, the event catalog and the delivery log
(docs/webhooks.md §8-§10).

Every route serves the key's tenant only (``TenantDep``): another tenant's endpoint or
delivery is answered exactly as one that does not exist (404), so an id tells nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime

from .._exceptions import InvalidCall, NoPendingSecret
from ..contract._json import dumps
from ..events._catalog import EVENT_TYPES
from ..events._service import DEFAULT_PAGE, MAX_PAGE
from ..events._values import EventDelivery, EventEndpoint
from ..tenants._config import mask_secret
from ._deps import AuthenticatedRoute, ContextDep, TenantDep
from ._errors import DELIVERY_NOT_FOUND, ENDPOINT_NOT_FOUND, ApiError, page_refusal
from ._event_schemas import (
    DeliveryAttemptPublic,
    DeliveryDetail,
    DeliveryPagePublic,
    DeliveryStatusName,
    DeliverySummary,
    EndpointSecretRequest,
    EventEndpointCreate,
    EventEndpointDeleted,
    EventEndpointList,
    EventEndpointPublic,
    EventEndpointUpdate,
    EventTypeList,
    EventTypePublic,
)
from ._routes import _NO_PENDING_TEXT, _errors

_log = structlog.get_logger("vizochok_dispatch")

router = APIRouter(prefix="/api/v1/admin", tags=["events"], route_class=AuthenticatedRoute)

EndpointId = Annotated[str, Path(description="ep_ and 26 letters and digits")]
DeliveryId = Annotated[str, Path(description="dlv_ and 26 letters and digits")]


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _endpoint_public(
    endpoint: EventEndpoint, *, reveal: bool = False, reveal_pending: bool = False
) -> EventEndpointPublic:
    pending = endpoint.pending_secret
    return EventEndpointPublic(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types),
        signature_scheme=endpoint.signature_scheme,
        timeout_seconds=endpoint.timeout_seconds,
        ordered=endpoint.ordered,
        description=endpoint.description,
        enabled=endpoint.enabled,
        status=endpoint.status,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        secret_masked=mask_secret(endpoint.secret),
        secret=endpoint.secret if reveal else None,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
        pending_secret_masked=None if pending is None else mask_secret(pending),
        pending_secret=pending if reveal_pending else None,
        pending_since=endpoint.pending_since,
        pending_promotes_at=endpoint.pending_promotes_at,
    )


def _summary_fields(delivery: EventDelivery) -> dict[str, Any]:
    last = delivery.attempts[-1] if delivery.attempts else None
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": len(delivery.attempts),
        "last_status": None if last is None else last.status,
        "next_attempt_at": delivery.next_attempt_at,
        "detail": delivery.detail,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
    }


# -- endpoints ----------------------------------------------------------------------------------


@router.get("/event-endpoints", responses=_errors())
async def list_event_endpoints(tenant: TenantDep, context: ContextDep) -> EventEndpointList:
    """The tenant's event endpoints, oldest first; secrets masked."""
    found = await context.dispatcher.events.endpoints(tenant.id)
    return EventEndpointList(endpoints=[_endpoint_public(endpoint) for endpoint in found])


@router.post("/event-endpoints", status_code=201, responses=_errors(415, 422))
async def create_event_endpoint(
    body: EventEndpointCreate, tenant: TenantDep, context: ContextDep
) -> EventEndpointPublic:
    """Register an endpoint for events; the secret is shown in full this once."""
    endpoint = await context.dispatcher.events.create_endpoint(
        tenant.id,
        url=body.url,
        event_types=body.event_types,
        signature_scheme=body.signature_scheme,
        secret=body.secret,
        timeout_seconds=body.timeout_seconds,
        ordered=body.ordered,
        description=body.description,
        resolve=context.resolve,
    )
    return _endpoint_public(endpoint, reveal=True)


@router.get("/event-endpoints/{endpoint_id}", responses=_errors(404, 422))
async def read_event_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, context: ContextDep
) -> EventEndpointPublic:
    """One event endpoint with its status; the secret masked."""
    endpoint = await context.dispatcher.events.endpoint(tenant.id, endpoint_id)
    if endpoint is None:
        raise _not_found(ENDPOINT_NOT_FOUND)
    return _endpoint_public(endpoint)


@router.patch("/event-endpoints/{endpoint_id}", responses=_errors(404, 415, 422))
async def update_event_endpoint(
    endpoint_id: EndpointId, update: EventEndpointUpdate, tenant: TenantDep, context: ContextDep
) -> EventEndpointPublic:
    """Partial update; enabled false pauses deliveries, true resumes them."""
    given: dict[str, Any] = update.model_dump(exclude_unset=True)
    saved = await context.dispatcher.events.update_endpoint(
        tenant.id, endpoint_id, **given, resolve=context.resolve
    )
    if saved is None:
        raise _not_found(ENDPOINT_NOT_FOUND)
    _log.info(
        "admin.event_endpoint_updated",
        tenant_id=tenant.id,
        endpoint_id=endpoint_id,
        fields=sorted(given),
    )
    return _endpoint_public(saved)


@router.delete("/event-endpoints/{endpoint_id}", responses=_errors(404, 422))
async def delete_event_endpoint(
    endpoint_id: EndpointId, tenant: TenantDep, context: ContextDep
) -> EventEndpointDeleted:
    """Delete an endpoint with its deliveries and their attempts."""
    if not await context.dispatcher.events.delete_endpoint(tenant.id, endpoint_id):
        raise _not_found(ENDPOINT_NOT_FOUND)
    return EventEndpointDeleted(id=endpoint_id, deleted=True)


# -- rolling an endpoint's secret (docs/webhooks.md §7) -----------------------------------------


@router.post("/event-endpoints/{endpoint_id}/secret/roll", responses=_errors(404, 415, 422))
async def roll_event_endpoint_secret(
    endpoint_id: EndpointId,
    tenant: TenantDep,
    context: ContextDep,
    body: EndpointSecretRequest | None = None,
) -> EventEndpointPublic:
    """A new secret made pending (generated, or yours), returned in full this once; until it
    is promoted or the overlap ends, standard-webhooks requests carry both signatures and
    vizochok ones the current secret's."""
    own = body.secret if body is not None else None
    rolled = await context.dispatcher.events.roll_secret(tenant.id, endpoint_id, secret=own)
    if rolled is None:
        raise _not_found(ENDPOINT_NOT_FOUND)
    return _endpoint_public(rolled, reveal_pending=True)


@router.post("/event-endpoints/{endpoint_id}/secret/promote", responses=_errors(404, 409, 422))
async def promote_event_endpoint_secret(
    endpoint_id: EndpointId, tenant: TenantDep, context: ContextDep
) -> EventEndpointPublic:
    """The pending secret alone signs from the next attempt on (409 when none is pending)."""
    try:
        promoted = await context.dispatcher.events.promote_secret(tenant.id, endpoint_id)
    except NoPendingSecret:
        raise ApiError(409, "no_pending_secret", _NO_PENDING_TEXT) from None
    if promoted is None:
        raise _not_found(ENDPOINT_NOT_FOUND)
    return _endpoint_public(promoted)


@router.post("/event-endpoints/{endpoint_id}/secret/rotate", responses=_errors(404, 415, 422))
async def rotate_event_endpoint_secret(
    endpoint_id: EndpointId,
    tenant: TenantDep,
    context: ContextDep,
    body: EndpointSecretRequest | None = None,
) -> EventEndpointPublic:
    """The secret replaced at once (generated, or yours), for a leaked secret; shown in full
    this once; a pending secret is dropped."""
    own = body.secret if body is not None else None
    rotated = await context.dispatcher.events.rotate_secret(tenant.id, endpoint_id, secret=own)
    if rotated is None:
        raise _not_found(ENDPOINT_NOT_FOUND)
    return _endpoint_public(rotated, reveal=True)


# -- catalog ------------------------------------------------------------------------------------


@router.get("/event-types", response_model=EventTypeList, responses=_errors())
async def list_event_types(_tenant: TenantDep) -> Response:
    """The event catalog: each type's description, JSON Schema and example data."""
    listed = EventTypeList(
        event_types=[
            EventTypePublic.model_validate(
                {
                    "name": entry.name,
                    "description": entry.description,
                    "schema": entry.json_schema(),
                    "example": entry.example,
                }
            )
            for entry in EVENT_TYPES.values()
        ]
    )
    # Written by the events' own JSON writer: amounts in the examples are JSON numbers with
    # their exact digits, as in a delivered event, not the strings FastAPI makes of Decimals.
    document = listed.model_dump(by_alias=True)
    return Response(dumps(document), media_type="application/json")


# -- the delivery log ---------------------------------------------------------------------------


@router.get("/deliveries", responses=_errors(422))
async def list_deliveries(  # noqa: PLR0917 - one parameter per filter
    tenant: TenantDep,
    context: ContextDep,
    endpoint_id: Annotated[str | None, Query(description="one endpoint's deliveries")] = None,
    event_type: Annotated[str | None, Query(description="an event type name")] = None,
    status: Annotated[DeliveryStatusName | None, Query()] = None,
    event_id: Annotated[str | None, Query(description="one event's deliveries")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="created at or after (RFC 3339, with a zone)")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="created before (RFC 3339, with a zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="deliveries per page")] = (
        DEFAULT_PAGE
    ),
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page, as it came")
    ] = None,
) -> DeliveryPagePublic:
    """The tenant's deliveries, newest first, filtered; pages follow next_cursor."""
    try:
        page = await context.dispatcher.events.delivery_log(
            tenant.id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            status=status,
            event_id=event_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCall as exc:
        raise page_refusal(exc, tenant.id) from None
    return DeliveryPagePublic(
        deliveries=[DeliverySummary(**_summary_fields(delivery)) for delivery in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/deliveries/{delivery_id}", responses=_errors(404, 422))
async def read_delivery(
    delivery_id: DeliveryId, tenant: TenantDep, context: ContextDep
) -> DeliveryDetail:
    """One delivery: the event body exactly as sent and every attempt with its answer."""
    delivery = await context.dispatcher.events.delivery(tenant.id, delivery_id)
    if delivery is None or delivery.body is None:
        raise _not_found(DELIVERY_NOT_FOUND)
    return DeliveryDetail(
        **_summary_fields(delivery),
        body=delivery.body.decode("utf-8"),
        attempts=[
            DeliveryAttemptPublic(
                number=attempt.number,
                status=attempt.status,
                latency_ms=attempt.latency_ms,
                detail=attempt.detail,
                reason=attempt.reason,
                attempted_at=attempt.attempted_at,
                trigger=attempt.trigger,
                response_body=None
                if attempt.response is None
                else attempt.response.decode("utf-8", "replace"),
            )
            for attempt in delivery.attempts
        ],
    )
