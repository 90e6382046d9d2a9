"""The panel's event endpoint and delivery log pages (docs/webhooks.md §8-§9).

They call ``Dispatcher.events`` as the admin API's event routes do: the same rules, the same
field errors, the key's tenant only (another tenant's ids are simply not found).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..._exceptions import FieldError, InvalidCall, InvalidConfig
from ...contract._json import dumps
from ...events._catalog import EVENT_TYPES
from ...events._service import DEFAULT_PAGE
from ...events._values import EndpointTestReport, EventAttempt, EventEndpoint
from ...tenants._config import mask_secret
from ._web import PREFIX, Form, context_of, page, posted_form, require_session, see_other

_log = structlog.get_logger("vizochok_dispatch")

router = APIRouter(prefix=PREFIX, include_in_schema=False)

SCHEMES: Final = ("vizochok", "standard-webhooks")
STATUSES: Final = ("pending", "delivered", "failed")
_NOT_FOUND: Final = "No such event endpoint."


def catalog() -> list[tuple[str, list[dict[str, str]]]]:
    """The event types grouped by family (the part before the first dot), each with its
    description and example ``data`` as JSON."""
    families: dict[str, list[dict[str, str]]] = {}
    for name, entry in EVENT_TYPES.items():
        families.setdefault(name.split(".", 1)[0], []).append(
            {
                "name": name,
                "description": entry.description,
                # as it goes out (Decimal amounts exact), not re-typed by a pretty printer
                "example": dumps(entry.example).decode(),
            }
        )
    return sorted(families.items())


def _values(endpoint: EventEndpoint | None) -> dict[str, Any]:
    if endpoint is None:
        return {
            "url": "",
            "event_types": [],
            "signature_scheme": "vizochok",
            "timeout_seconds": "15",
            "ordered": False,
            "description": "",
        }
    return {
        "url": endpoint.url,
        "event_types": list(endpoint.event_types),
        "signature_scheme": endpoint.signature_scheme,
        "timeout_seconds": f"{endpoint.timeout_seconds:g}",
        "ordered": endpoint.ordered,
        "description": endpoint.description or "",
    }


def _form_values(form: Form) -> dict[str, Any]:
    return {
        "url": form.get("url"),
        "event_types": form.getlist("event_types"),
        "signature_scheme": form.get("signature_scheme", "vizochok"),
        "timeout_seconds": form.get("timeout_seconds"),
        "ordered": form.has("ordered"),
        "description": form.get("description"),
    }


def _typed(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """The form's fields as the service takes them, and those that do not parse."""
    given = dict(values)
    errors: list[FieldError] = []
    given["description"] = values["description"] or None
    try:
        given["timeout_seconds"] = float(values["timeout_seconds"])
    except ValueError:
        del given["timeout_seconds"]
        errors.append(FieldError("timeout_seconds", "must be a number of seconds"))
    return given, errors


def _endpoint_page(
    request: Request,
    endpoint: EventEndpoint | None,
    *,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    **extra: Any,  # noqa: ANN401 - template values
) -> HTMLResponse:
    for name in ("shown_secret", "report", "recovered", "chosen_type"):
        extra.setdefault(name, None)
    for name in ("test_errors", "recover_errors"):
        extra.setdefault(name, {})
    extra.setdefault("report_answers", [])
    extra.setdefault("recover_hours", f"{RECOVER_HOURS:g}")
    return page(
        request,
        "endpoint.html",
        request.state.panel_session,
        status=status,
        endpoint=endpoint,
        values=values if values is not None else _values(endpoint),
        errors=errors or {},
        catalog=catalog(),
        schemes=SCHEMES,
        secret_masked=None if endpoint is None else mask_secret(endpoint.secret),
        **extra,
    )


@router.get("/endpoints")
async def endpoints_page(request: Request) -> Response:
    """The tenant's event endpoints, with their status."""
    session = await require_session(request)
    endpoints = await context_of(request).dispatcher.events.endpoints(session.tenant.id)
    return page(request, "endpoints.html", session, endpoints=endpoints)


@router.get("/endpoints/new")
async def new_endpoint_page(request: Request) -> Response:
    """The form for a new endpoint."""
    await require_session(request)
    return _endpoint_page(request, None)


@router.post("/endpoints/new")
async def create_endpoint(request: Request) -> Response:
    """Create the endpoint; its secret is shown this once."""
    session, form = await posted_form(request)
    values = _form_values(form)
    given, errors = _typed(values)
    context = context_of(request)
    if not errors:
        try:
            endpoint = await context.dispatcher.events.create_endpoint(
                session.tenant.id, **given, resolve=context.resolve
            )
        except InvalidConfig as exc:
            errors = list(exc.errors)
        else:
            _log.info(
                "panel.endpoint_created", tenant_id=session.tenant.id, endpoint_id=endpoint.id
            )
            return _endpoint_page(
                request,
                endpoint,
                shown_secret=endpoint.secret,
                notice="Created. Copy the secret now: it is not shown again.",
            )
    return _endpoint_page(
        request,
        None,
        values=values,
        errors={error.field: error.message for error in errors},
        status=422,
    )


async def _owned(request: Request, endpoint_id: str) -> EventEndpoint | None:
    session = await require_session(request)
    return await context_of(request).dispatcher.events.endpoint(session.tenant.id, endpoint_id)


def _missing(request: Request) -> HTMLResponse:
    return page(
        request, "refused.html", request.state.panel_session, status=404, message=_NOT_FOUND
    )


@router.get("/endpoints/{endpoint_id}")
async def endpoint_page(request: Request, endpoint_id: str) -> Response:
    """One endpoint: edit, disable or enable, test, recover."""
    endpoint = await _owned(request, endpoint_id)
    if endpoint is None:
        return _missing(request)
    done = {"saved": "Saved.", "disabled": "Disabled.", "enabled": "Enabled."}
    return _endpoint_page(request, endpoint, notice=done.get(request.query_params.get("done", "")))


@router.post("/endpoints/{endpoint_id}")
async def update_endpoint(request: Request, endpoint_id: str) -> Response:
    """Save the form's fields with the creation rules."""
    session, form = await posted_form(request)
    context = context_of(request)
    values = _form_values(form)
    given, errors = _typed(values)
    existing = await context.dispatcher.events.endpoint(session.tenant.id, endpoint_id)
    if existing is None:
        return _missing(request)
    if not errors:
        try:
            saved = await context.dispatcher.events.update_endpoint(
                session.tenant.id, endpoint_id, **given, resolve=context.resolve
            )
        except InvalidConfig as exc:
            errors = list(exc.errors)
        else:
            if saved is None:
                return _missing(request)
            return see_other(f"/endpoints/{endpoint_id}?done=saved")
    return _endpoint_page(
        request,
        existing,
        values=values,
        errors={error.field: error.message for error in errors},
        status=422,
    )


async def _set_enabled(request: Request, endpoint_id: str, *, enabled: bool) -> Response:
    session, _form = await posted_form(request)
    saved = await context_of(request).dispatcher.events.update_endpoint(
        session.tenant.id, endpoint_id, enabled=enabled
    )
    if saved is None:
        return _missing(request)
    _log.info(
        "panel.endpoint_enabled" if enabled else "panel.endpoint_disabled",
        tenant_id=session.tenant.id,
        endpoint_id=endpoint_id,
    )
    return see_other(f"/endpoints/{endpoint_id}?done={'enabled' if enabled else 'disabled'}")


@router.post("/endpoints/{endpoint_id}/disable")
async def disable_endpoint(request: Request, endpoint_id: str) -> Response:
    """No new attempt starts; pending deliveries wait."""
    return await _set_enabled(request, endpoint_id, enabled=False)


@router.post("/endpoints/{endpoint_id}/enable")
async def enable_endpoint(request: Request, endpoint_id: str) -> Response:
    """Deliveries resume."""
    return await _set_enabled(request, endpoint_id, enabled=True)


# -- the delivery log -----------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str]:
    names = ("endpoint_id", "event_type", "status", "event_id", "hours")
    return {name: request.query_params.get(name, "").strip() for name in names}


@router.get("/deliveries")
async def deliveries_page(request: Request) -> Response:
    """The delivery log, newest first, filtered, a page at a time."""
    session = await require_session(request)
    context = context_of(request)
    shown = _filters(request)
    cursor = request.query_params.get("cursor") or None
    errors: dict[str, str] = {}
    since = None
    if shown["hours"]:
        try:
            since = context.dispatcher.now() - timedelta(hours=float(shown["hours"]))
        except (ValueError, OverflowError):
            errors["hours"] = "must be a number of hours"
    items: tuple[Any, ...] = ()
    next_cursor = None
    if not errors:
        try:
            found = await context.dispatcher.events.delivery_log(
                session.tenant.id,
                endpoint_id=shown["endpoint_id"] or None,
                event_type=shown["event_type"] or None,
                status=shown["status"] or None,
                event_id=shown["event_id"] or None,
                since=since,
                limit=DEFAULT_PAGE,
                cursor=cursor,
            )
        except InvalidCall as exc:
            name, _, problem = str(exc).partition(" ")
            errors[name] = problem
        else:
            items, next_cursor = found.items, found.next_cursor
    endpoints = await context.dispatcher.events.endpoints(session.tenant.id)
    return page(
        request,
        "deliveries.html",
        session,
        status=422 if errors else 200,
        deliveries=items,
        next_cursor=next_cursor,
        filters=shown,
        errors=errors,
        endpoints=endpoints,
        event_types=list(EVENT_TYPES),
        statuses=STATUSES,
        query={name: value for name, value in shown.items() if value},
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, delivery_id: str) -> Response:
    """One delivery: the body as sent and every attempt with its answer's first 4 KiB."""
    session = await require_session(request)
    delivery = await context_of(request).dispatcher.events.delivery(session.tenant.id, delivery_id)
    if delivery is None:
        return page(request, "refused.html", session, status=404, message="No such delivery.")
    # exactly as sent: a pretty printer would re-type the amounts
    body = None if delivery.body is None else delivery.body.decode("utf-8", "replace")
    return page(
        request,
        "delivery.html",
        session,
        delivery=delivery,
        body=body,
        answers=answers_of(delivery.attempts),
        notice="A new attempt was made; its outcome is below."
        if request.query_params.get("done") == "retried"
        else None,
    )


# -- tests, retries and recovery (docs/webhooks.md §9) --------------------------------------

#: The limiter bucket of endpoint tests, apart from webhook test-fires (as the API's).
_TEST_BUCKET: Final = ":event-test"
#: Hours back a recovery reaches by default, and at most (the retention of failed ones).
RECOVER_HOURS: Final = 24.0
MAX_RECOVER_HOURS: Final = 90 * 24.0


async def run_endpoint_test(
    request: Request, tenant_id: str, endpoint_id: str, event_type: str
) -> tuple[EndpointTestReport | None, dict[str, str]]:
    """Test an endpoint with ``event_type``'s example: the report, or the field errors."""
    context = context_of(request)
    if event_type not in EVENT_TYPES:
        return None, {"event_type": "choose an event type of the catalog"}
    wait = context.limiter.acquire(tenant_id + _TEST_BUCKET)
    if wait is not None:
        return None, {
            "event_type": f"at most {context.limiter.limit} endpoint tests a minute: try again "
            f"in {context.limiter.retry_after_header(wait)} s"
        }
    report = await context.dispatcher.events.test_endpoint(
        tenant_id, endpoint_id, event_type=event_type
    )
    if report is None:
        return None, {"endpoint_id": "no such event endpoint"}
    _log.info(
        "panel.endpoint_tested",
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        event_type=event_type,
        ok=report.ok,
    )
    return report, {}


def answers_of(attempts: tuple[EventAttempt, ...]) -> list[str | None]:
    """Each attempt's answer (its first 4 KiB) as text."""
    return [None if a.response is None else a.response.decode("utf-8", "replace") for a in attempts]


@router.post("/endpoints/{endpoint_id}/test")
async def test_endpoint(request: Request, endpoint_id: str) -> Response:
    """Send an event type's example to the endpoint now, and show the report."""
    session, form = await posted_form(request)
    endpoint = await context_of(request).dispatcher.events.endpoint(session.tenant.id, endpoint_id)
    if endpoint is None:
        return _missing(request)
    chosen = form.get("event_type")
    report, errors = await run_endpoint_test(request, session.tenant.id, endpoint_id, chosen)
    return _endpoint_page(
        request,
        endpoint,
        report=report,
        report_answers=[] if report is None else answers_of(report.attempts),
        test_errors=errors,
        chosen_type=chosen,
        status=422 if errors else 200,
    )


def _hours(raw: str) -> float | None:
    """A recovery's reach in hours, or ``None`` when it is not one."""
    try:
        hours = float(raw)
    except ValueError:
        return None
    return hours if 0 < hours <= MAX_RECOVER_HOURS else None


@router.post("/endpoints/{endpoint_id}/recover")
async def recover_endpoint(request: Request, endpoint_id: str) -> Response:
    """Re-queue the endpoint's failed deliveries of the last hours given."""
    session, form = await posted_form(request)
    context = context_of(request)
    endpoint = await context.dispatcher.events.endpoint(session.tenant.id, endpoint_id)
    if endpoint is None:
        return _missing(request)
    hours = _hours(form.get("hours", f"{RECOVER_HOURS:g}"))
    if hours is None:
        return _endpoint_page(
            request,
            endpoint,
            recover_errors={
                "hours": f"must be a number of hours, above 0 and at most {MAX_RECOVER_HOURS:g}"
            },
            status=422,
        )
    outcome = await context.dispatcher.events.recover(
        session.tenant.id, endpoint_id, since=context.dispatcher.now() - timedelta(hours=hours)
    )
    if outcome is None:
        return _missing(request)
    if isinstance(outcome, str):
        return _endpoint_page(
            request,
            endpoint,
            recover_errors={"hours": "the endpoint is disabled: enable it first"},
            status=409,
        )
    _log.info(
        "panel.endpoint_recovered",
        tenant_id=session.tenant.id,
        endpoint_id=endpoint_id,
        recovered=outcome.recovered,
    )
    return _endpoint_page(request, endpoint, recovered=outcome)


@router.post("/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, delivery_id: str) -> Response:
    """A new attempt of the delivery now, whatever its status."""
    session, _form = await posted_form(request)
    outcome = await context_of(request).dispatcher.events.retry_delivery(
        session.tenant.id, delivery_id
    )
    if outcome is None:
        return page(request, "refused.html", session, status=404, message="No such delivery.")
    if isinstance(outcome, str):
        message = {
            "endpoint_disabled": "Its endpoint is disabled: enable it first.",
            "in_flight": "An attempt of it is under way: try again when it is over.",
        }.get(outcome, outcome)
        return page(request, "refused.html", session, status=409, message=message)
    _log.info("panel.delivery_retried", tenant_id=session.tenant.id, delivery_id=delivery_id)
    return see_other(f"/deliveries/{delivery_id}?done=retried")
