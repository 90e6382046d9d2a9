"""The panel's sign-in, webhook settings and test-fire pages (docs/webhooks.md §7).

Each page calls what the admin API's routes call (the config store through the dispatcher,
``_update_errors`` for the same field errors, ``run_test_fire``): never HTTP to itself.
"""

from __future__ import annotations

from typing import Any, Final

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ..._exceptions import FieldError, InvalidConfig, NoPendingSecret
from ...tenants._config import WebhookConfig, mask_secret
from ...tenants._rotation import in_effect
from ...webhooks._testfire import run_test_fire
from .._errors import validation_fields
from .._routes import _stored, _update_errors
from .._schemas import WebhookTestRequest
from ._events import answers_of, catalog, run_endpoint_test
from ._web import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    context_of,
    current_session,
    new_sign_in_token,
    page,
    posted_form,
    read_form,
    require_session,
    see_other,
    sessions_of,
    set_cookie,
    sign_in_token_ok,
)

_log = structlog.get_logger("vizochok_dispatch")

router = APIRouter(prefix=PREFIX, include_in_schema=False)

WEBHOOKS: Final = (
    ("products", "Products", "products_url"),
    ("cart", "Cart", "cart_url"),
    ("cart_get", "Cart GET", "cart_get_url"),
)
#: What a redirect after a post says, by the ``done`` query value (never free text).
NOTICES: Final = {
    "saved": "Saved. Calls use the new settings from now on.",
    "unchanged": "Nothing changed.",
    "promoted": "The pending secret signs from now on; the old one no longer does.",
    "signed_out": "You are signed out.",
}


def notice(request: Request) -> str | None:
    """The notice a redirect asked for, if it is one of :data:`NOTICES`."""
    return NOTICES.get(request.query_params.get("done", ""))


# -- sign in and out ------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    """The webhook settings when signed in, the sign-in page otherwise."""
    if await current_session(request) is None:
        return see_other("/sign-in")
    return see_other("/webhooks")


def _sign_in_page(request: Request, *, error: str | None, status: int = 200) -> HTMLResponse:
    token = new_sign_in_token()
    response = page(
        request,
        "sign_in.html",
        None,
        status=status,
        csrf=token,
        error=error,
        notice=notice(request),
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    """The sign-in form: the tenant's API key."""
    if await current_session(request) is not None:
        return see_other("/webhooks")
    return _sign_in_page(request, error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Open a session for a valid, unrevoked key (the key itself is not kept)."""
    form = await read_form(request)
    if not sign_in_token_ok(request, form):
        return _sign_in_page(
            request, error="The form expired or was not sent from this page: try again.", status=403
        )
    context = context_of(request)
    found = await context.tenants.authenticate_key(form.get("api_key"))
    if found is None:
        _log.info("panel.sign_in_failed")
        return _sign_in_page(
            request, error="That key is not valid (unknown or revoked).", status=401
        )
    tenant, key_id = found
    sessions = sessions_of(request)
    opened = await sessions.open(tenant, key_id)
    _log.info("panel.signed_in", tenant_id=tenant.id, key_id=key_id)
    response = see_other("/webhooks")
    set_cookie(
        response, request, SESSION_COOKIE, opened.token, max_age=int(sessions.lifetime_seconds)
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (its row is deleted) and drop the cookie."""
    session, _form = await posted_form(request)
    await sessions_of(request).close(request.cookies.get(SESSION_COOKIE))
    _log.info("panel.signed_out", tenant_id=session.tenant.id)
    response = RedirectResponse(f"{PREFIX}/sign-in?done=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


# -- webhooks -------------------------------------------------------------------------------


def _values(config: WebhookConfig | None) -> dict[str, str]:
    if config is None:
        return {"products_url": "", "cart_url": "", "cart_get_url": "", "timeout_seconds": ""}
    return {
        "products_url": config.products_url,
        "cart_url": config.cart_url,
        "cart_get_url": config.cart_get_url or "",
        "timeout_seconds": f"{config.timeout_seconds:g}",
    }


def _webhooks_page(
    request: Request,
    config: WebhookConfig | None,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    shown_secret: str | None = None,
    shown_pending: str | None = None,
    message: str | None = None,
) -> HTMLResponse:
    context = context_of(request)
    session = request.state.panel_session
    current = None if config is None else in_effect(config, context.dispatcher.now())
    return page(
        request,
        "webhooks.html",
        session,
        status=status,
        config=current,
        values=values if values is not None else _values(current),
        errors=errors or {},
        secret_masked=None if current is None else mask_secret(current.secret),
        pending_masked=(
            None
            if current is None or current.pending_secret is None
            else mask_secret(current.pending_secret)
        ),
        shown_secret=shown_secret,
        shown_pending=shown_pending,
        circuits=(
            {} if current is None else context.dispatcher.circuit_states(current.tenant_id, current)
        ),
        webhooks=WEBHOOKS,
        notice=message or notice(request),
        overlap_hours=context.settings.secret_overlap_seconds / 3600,
    )


@router.get("/webhooks")
async def webhooks_page(request: Request) -> Response:
    """The three URLs, the timeout, the secret (masked) and its rotation."""
    session = await require_session(request)
    return _webhooks_page(request, await _stored(context_of(request), session.tenant.id))


def _given(
    form_values: dict[str, str], existing: WebhookConfig | None
) -> tuple[dict[str, Any], list[FieldError]]:
    """The fields a form changes, typed as the API takes them, and the ones that do not
    parse."""
    given: dict[str, Any] = {}
    errors: list[FieldError] = []
    old = _values(existing)
    for name in ("products_url", "cart_url"):
        if existing is None or form_values[name] != old[name]:
            given[name] = form_values[name]
    if form_values["cart_get_url"] != old["cart_get_url"]:
        given["cart_get_url"] = form_values["cart_get_url"] or None
    timeout = form_values["timeout_seconds"]
    if timeout and timeout != old["timeout_seconds"]:
        try:
            given["timeout_seconds"] = float(timeout)
        except ValueError:
            errors.append(FieldError("timeout_seconds", "must be a number of seconds"))
    return given, errors


@router.post("/webhooks")
async def save_webhooks(request: Request) -> Response:
    """Save what the form changed; every field error is shown beside its field."""
    session, form = await posted_form(request)
    context = context_of(request)
    existing = await _stored(context, session.tenant.id)
    values = {name: form.get(name) for name in _values(None)}
    given, errors = _given(values, existing)
    if not given and not errors:
        return see_other("/webhooks?done=unchanged")
    errors += await _update_errors(
        context, session.tenant.id, existing, given, refused={e.field for e in errors}
    )
    if errors:
        return _webhooks_page(
            request,
            existing,
            values=values,
            errors={error.field: error.message for error in errors},
            status=422,
        )
    try:
        saved = await context.dispatcher.store.save_config(session.tenant.id, **given)
    except InvalidConfig as exc:  # a rule the first pass could not see (a race)
        errors_by = {error.field: error.message for error in exc.errors}
        return _webhooks_page(request, existing, values=values, errors=errors_by, status=422)
    _log.info(
        "panel.webhooks_updated",
        tenant_id=session.tenant.id,
        fields=sorted(given),
        version=saved.version,
    )
    if saved.version == 1:  # the first save generated the secret: shown this once
        return _webhooks_page(request, saved, shown_secret=saved.secret, message=NOTICES["saved"])
    return see_other("/webhooks?done=saved")


@router.post("/webhooks/secret/roll")
async def roll_secret(request: Request) -> Response:
    """A new pending secret, shown in full this once; the current one keeps signing."""
    session, _form = await posted_form(request)
    context = context_of(request)
    rolled = await context.dispatcher.roll_secret(session.tenant.id)
    if rolled is None:
        return _webhooks_page(request, None, message="Save the webhook URLs first.", status=409)
    _log.info("panel.secret_rolled", tenant_id=session.tenant.id, version=rolled.version)
    return _webhooks_page(
        request,
        rolled,
        shown_pending=rolled.pending_secret,
        message="A new secret is pending. Copy it now: it is not shown again.",
    )


@router.post("/webhooks/secret/promote")
async def promote_secret(request: Request) -> Response:
    """The pending secret signs from now on."""
    session, _form = await posted_form(request)
    context = context_of(request)
    try:
        promoted = await context.dispatcher.promote_secret(session.tenant.id)
    except NoPendingSecret:
        existing = await _stored(context, session.tenant.id)
        return _webhooks_page(
            request, existing, message="No secret is pending: roll one first.", status=409
        )
    if promoted is None:
        return _webhooks_page(request, None, message="Save the webhook URLs first.", status=409)
    _log.info("panel.secret_promoted", tenant_id=session.tenant.id, version=promoted.version)
    return see_other("/webhooks?done=promoted")


@router.post("/webhooks/secret/rotate")
async def rotate_secret(request: Request) -> Response:
    """Replace the secret at once (CONTRACT §7), only with the confirmation box ticked."""
    session, form = await posted_form(request)
    context = context_of(request)
    existing = await _stored(context, session.tenant.id)
    if existing is None:
        return _webhooks_page(request, None, message="Save the webhook URLs first.", status=409)
    if not form.has("confirm"):
        return _webhooks_page(
            request,
            existing,
            errors={"confirm": "tick the box to confirm: the current secret stops working now"},
            status=422,
        )
    saved = await context.dispatcher.store.save_config(session.tenant.id, secret=None)
    _log.info("panel.secret_rotated", tenant_id=session.tenant.id, version=saved.version)
    return _webhooks_page(
        request,
        saved,
        shown_secret=saved.secret,
        message="The secret was replaced. Copy it now: it is not shown again.",
    )


# -- test-fire ------------------------------------------------------------------------------


async def _test_page(request: Request, **values: Any) -> HTMLResponse:  # noqa: ANN401 - template values
    for name in ("report", "tested", "chosen_endpoint", "chosen_type"):
        values.setdefault(name, None)
    values.setdefault("errors", {})
    values.setdefault("event_errors", {})
    values.setdefault("event_answers", [])
    values.setdefault("chosen", "products")
    values.setdefault("skus", "")
    session = request.state.panel_session
    endpoints = await context_of(request).dispatcher.events.endpoints(session.tenant.id)
    return page(
        request,
        "test.html",
        session,
        webhooks=WEBHOOKS,
        endpoints=endpoints,
        catalog=catalog(),
        **values,
    )


@router.get("/test")
async def test_page(request: Request) -> Response:
    """Choose a webhook to test-fire."""
    await require_session(request)
    return await _test_page(request)


@router.post("/test")
async def test_fire(request: Request) -> Response:
    """Test-fire one webhook through the production path and show the report."""
    session, form = await posted_form(request)
    context = context_of(request)
    raw: dict[str, Any] = {"webhook": form.get("webhook", "products")}
    skus = [sku.strip() for sku in form.get("skus").replace("\n", ",").split(",") if sku.strip()]
    if skus:
        raw["skus"] = skus
    shown = {"chosen": raw["webhook"], "skus": form.get("skus")}
    try:
        chosen = WebhookTestRequest.model_validate(raw)
    except ValidationError as exc:
        fields = validation_fields(exc.errors(include_input=False))
        errors = {field.field.split(".", 1)[0]: field.message for field in fields}
        return await _test_page(request, errors=errors, status=422, **shown)
    config = await context.dispatcher.store.get_config(session.tenant.id)
    problem = None
    if config is None:
        problem = "No webhooks are configured yet: save the URLs first."
    elif chosen.webhook == "cart_get" and config.cart_get_url is None:
        problem = "The cart GET URL is not set: there is no cart GET webhook to test."
    elif (wait := context.limiter.acquire(session.tenant.id)) is not None:
        problem = (
            f"At most {context.limiter.limit} test-fires a minute: "
            f"try again in {context.limiter.retry_after_header(wait)} s."
        )
    if problem is not None:
        return await _test_page(request, errors={"webhook": problem}, **shown)
    report = await run_test_fire(
        context.dispatcher,
        session.tenant.id,
        webhook=chosen.webhook,
        skus=chosen.skus,
        store_id=chosen.store_id,
    )
    _log.info("panel.test_fire", tenant_id=session.tenant.id, webhook=chosen.webhook, ok=report.ok)
    return await _test_page(request, report=report.as_dict(), **shown)


@router.post("/test/event")
async def test_event(request: Request) -> Response:
    """Send an event type's example to one of the tenant's endpoints, and show the report."""
    session, form = await posted_form(request)
    endpoint_id = form.get("endpoint_id")
    event_type = form.get("event_type")
    shown = {"chosen_endpoint": endpoint_id, "chosen_type": event_type}
    report, errors = await run_endpoint_test(request, session.tenant.id, endpoint_id, event_type)
    if report is None:
        return await _test_page(request, event_errors=errors, status=422, **shown)
    return await _test_page(
        request, tested=report, event_answers=answers_of(report.attempts), **shown
    )
