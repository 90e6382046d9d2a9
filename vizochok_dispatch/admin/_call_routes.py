"""The call log route: the tenant's synchronous webhook calls, failed and sampled (issue 13).

The key's tenant only (``TenantDep``): another tenant's calls are never listed, whatever the
filters.  Filters and pages are the delivery log's: newest first, an opaque ``next_cursor``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from .._exceptions import InvalidCall
from ..webhooks._calllog import DEFAULT_PAGE, MAX_PAGE
from ._call_schemas import CallOutcomeName, CallPagePublic, CallPublic
from ._deps import AuthenticatedRoute, ContextDep, TenantDep
from ._errors import page_refusal
from ._routes import _errors
from ._schemas import WebhookName

router = APIRouter(prefix="/api/v1/admin", tags=["webhooks"], route_class=AuthenticatedRoute)


@router.get("/webhooks/calls", responses=_errors(422))
async def list_calls(  # noqa: PLR0917 - one parameter per filter
    tenant: TenantDep,
    context: ContextDep,
    webhook: Annotated[WebhookName | None, Query(description="one webhook's calls")] = None,
    outcome: Annotated[CallOutcomeName | None, Query()] = None,
    detail: Annotated[
        str | None, Query(description="one failure detail (timeout, http_status …)")
    ] = None,
    delivery_id: Annotated[str | None, Query(description="one call's X-VIZOCHOK-Delivery")] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="ended at or after (RFC 3339, with a zone)")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="ended before (RFC 3339, with a zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="calls per page")] = DEFAULT_PAGE,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page, as it came")
    ] = None,
) -> CallPagePublic:
    """The tenant's failed calls and a sample of the others, newest first, filtered; pages
    follow next_cursor."""
    try:
        page = await context.dispatcher.call_log.calls(
            tenant.id,
            webhook=webhook,
            outcome=outcome,
            detail=detail,
            delivery_id=delivery_id,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCall as exc:
        raise page_refusal(exc, tenant.id) from None
    return CallPagePublic(
        calls=[CallPublic.model_validate(call.as_dict()) for call in page.items],
        next_cursor=page.next_cursor,
    )
