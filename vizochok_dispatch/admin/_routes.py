"""The admin API's routes (docs/webhooks.md §7): read, update, rotate, test-fire, check."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final

import structlog
from fastapi import APIRouter, Request
from pydantic import TypeAdapter

from .._exceptions import FieldError, InvalidConfig, NoPendingSecret, StoreError
from ..observe._logs import log_time
from ..tenants._config import UNSET, WebhookConfig, mask_secret, merge_config, secret_problem
from ..tenants._rotation import in_effect
from ..webhooks._conformance import CheckOptions, check_tenant
from ..webhooks._testfire import run_test_fire
from ._deps import (
    AdminContext,
    AuthenticatedRoute,
    ContextDep,
    TenantDep,
    admin_context,
    authenticated_tenant,
)
from ._errors import ApiError, invalid, not_configured
from ._schemas import (
    ErrorResponse,
    SecretRollRequest,
    SecretRotateRequest,
    WebhookCheckReport,
    WebhookCheckRequest,
    WebhookConfigPublic,
    WebhookConfigUpdate,
    WebhookTestReport,
    WebhookTestRequest,
)

_log = structlog.get_logger("vizochok_dispatch")

_URL_FIELDS: Final = ("products_url", "cart_url", "cart_get_url")
_UPDATE_FIELDS: Final = frozenset(WebhookConfigUpdate.model_fields)
_REPORT: Final = TypeAdapter[WebhookTestReport](WebhookTestReport)
_CHECK_REPORT: Final = TypeAdapter[WebhookCheckReport](WebhookCheckReport)
_NOT_CONFIGURED_TEXT: Final = "no webhooks are configured yet: PATCH /api/v1/admin/webhooks first"
_NO_PENDING_TEXT: Final = (
    "no secret is pending: roll one first (POST …/secret/roll); a rotate drops a pending "
    "secret, and one whose overlap ended signs already"
)

#: Every error status, in the one error shape; each operation lists the ones it can answer.
_ERROR_TEXT: Final = {
    401: "missing, malformed, unknown or revoked key (checked before the body is read)",
    404: "no such resource for this API key's tenant (another tenant's is not found either)",
    409: "no saved configuration yet, (test-fire) the webhook has no URL, or (promote) no "
    "secret is pending",
    413: "request body over VIZOCHOK_ADMIN_MAX_BODY_BYTES (16 KiB by default)",
    415: "a body that is not application/json",
    422: "invalid fields, every one listed in error.fields (a write saves nothing)",
    429: "too many test-fires (or checks) for this tenant; Retry-After says when to try again",
    500: "an unexpected error on our side; the body says nothing more",
    503: "the configuration store is unavailable; retry",
}
_ERROR_HEADERS: Final[dict[int, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {
            "description": "whole seconds until a test-fire (or check) is allowed again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def errors_for(
    *statuses: int, texts: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation can answer; ``texts`` says
    what a status means for that operation when it differs from the webhook routes'."""
    every = sorted({401, 413, 500, 503, *statuses})
    described = {**_ERROR_TEXT, **(texts or {})}
    return {
        status: {
            "model": ErrorResponse,
            "description": described[status],
            **({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {}),
        }
        for status in every
    }


_errors = errors_for


router = APIRouter(prefix="/api/v1/admin", tags=["webhooks"], route_class=AuthenticatedRoute)


def _public(
    config: WebhookConfig, context: AdminContext, *, reveal: bool, reveal_pending: bool = False
) -> WebhookConfigPublic:
    # as it signs now: a rolled secret whose overlap ended shows as the current one
    config = in_effect(config, context.dispatcher.now())
    pending = config.pending_secret
    return WebhookConfigPublic(
        tenant_id=config.tenant_id,
        products_url=config.products_url,
        cart_url=config.cart_url,
        cart_get_url=config.cart_get_url,
        timeout_seconds=config.timeout_seconds,
        secret_masked=mask_secret(config.secret),
        secret=config.secret if reveal else None,
        version=config.version,
        updated_at=config.updated_at,
        circuits=context.dispatcher.circuit_states(config.tenant_id, config),
        pending_secret_masked=None if pending is None else mask_secret(pending),
        pending_secret=pending if reveal_pending else None,
        pending_since=config.pending_since,
        pending_promotes_at=config.pending_promotes_at,
    )


async def _stored(context: AdminContext, tenant_id: str) -> WebhookConfig | None:
    """The stored config, read past the dispatcher's cache: the admin API is authoritative."""
    return await context.dispatcher.store.inner.get_config(tenant_id)


@router.get("/webhooks", responses=_errors(409))
async def read_webhooks(tenant: TenantDep, context: ContextDep) -> WebhookConfigPublic:
    """The tenant's webhook configuration; the secret is shown masked."""
    config = await _stored(context, tenant.id)
    if config is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    return _public(config, context, reveal=False)


@router.patch("/webhooks", responses=_errors(415, 422))
async def update_webhooks(
    update: WebhookConfigUpdate, tenant: TenantDep, context: ContextDep
) -> WebhookConfigPublic:
    """Partial update; the first save generates the secret and shows it, once."""
    given: dict[str, Any] = update.model_dump(exclude_unset=True)
    existing = await _stored(context, tenant.id)
    if not given and existing is not None:
        return _public(existing, context, reveal=False)
    errors = await _update_errors(context, tenant.id, existing, given)
    if errors:
        raise invalid(errors)
    saved = await context.dispatcher.store.save_config(tenant.id, **given)
    reveal = "secret" in given or saved.version == 1
    _log.info(
        "admin.webhooks_updated",
        tenant_id=tenant.id,
        fields=sorted(given),
        version=saved.version,
        secret_generated=saved.version == 1 and "secret" not in given,
    )
    return _public(saved, context, reveal=reveal)


async def _update_errors(
    context: AdminContext,
    tenant_id: str,
    existing: WebhookConfig | None,
    given: dict[str, Any],
    *,
    refused: AbstractSet[str] = frozenset(),
) -> list[FieldError]:
    """Every field error of an update at once: the contract's rules (``merge_config``), then
    where each new host resolves.

    ``refused`` names fields already refused for their JSON type; they are not judged again.
    """
    # A null where null is refused is a type error: it is in ``refused`` already.
    errors: list[FieldError] = []
    checked = {name: value for name, value in given.items() if name not in refused}
    try:
        merge_config(
            tenant_id,
            existing,
            products_url=checked.get("products_url", UNSET),
            cart_url=checked.get("cart_url", UNSET),
            cart_get_url=checked.get("cart_get_url", UNSET),
            timeout_seconds=checked.get("timeout_seconds", UNSET),
            secret=checked.get("secret", UNSET),
            rules=context.dispatcher.settings.config_rules(),
        )
    except InvalidConfig as exc:
        errors.extend(error for error in exc.errors if error.field not in refused)
    judged = {*refused, *(error.field for error in errors)}
    urls = [
        (name, checked[name])
        for name in _URL_FIELDS
        if isinstance(checked.get(name), str) and name not in judged
    ]
    policy = context.dispatcher.settings.destination_policy()
    problems = await asyncio.gather(
        *(policy.resolved_url_problem(url, context.resolve) for _, url in urls)
    )
    errors.extend(
        FieldError(name, problem)
        for (name, _), problem in zip(urls, problems, strict=True)
        if problem is not None
    )
    return errors


@router.post("/webhooks/secret/rotate", responses=_errors(409, 415, 422))
async def rotate_secret(
    tenant: TenantDep, context: ContextDep, body: SecretRotateRequest | None = None
) -> WebhookConfigPublic:
    """A new secret (generated, or yours), returned in full this once."""
    if await _stored(context, tenant.id) is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    own = body.secret if body is not None else None
    saved = await context.dispatcher.store.save_config(tenant.id, secret=own)
    _log.info(
        "admin.secret_rotated", tenant_id=tenant.id, version=saved.version, own=own is not None
    )
    return _public(saved, context, reveal=True)


@router.post("/webhooks/secret/roll", responses=_errors(409, 415, 422))
async def roll_secret(
    tenant: TenantDep, context: ContextDep, body: SecretRollRequest | None = None
) -> WebhookConfigPublic:
    """A new secret made pending (generated, or yours), returned in full this once; the
    current one keeps signing until promote, or until the overlap ends (24 h by default)."""
    own = body.secret if body is not None else None
    rolled = await context.dispatcher.roll_secret(tenant.id, secret=own)
    if rolled is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    _log.info(
        "admin.secret_rolled",
        tenant_id=tenant.id,
        version=rolled.version,
        own=own is not None,
        promotes_at=log_time(rolled.pending_promotes_at),
    )
    return _public(rolled, context, reveal=False, reveal_pending=True)


@router.post("/webhooks/secret/promote", responses=_errors(409))
async def promote_secret(tenant: TenantDep, context: ContextDep) -> WebhookConfigPublic:
    """The pending secret signs from now on; the old one stops (409 when none is pending)."""
    try:
        promoted = await context.dispatcher.promote_secret(tenant.id)
    except NoPendingSecret:
        raise ApiError(409, "no_pending_secret", _NO_PENDING_TEXT) from None
    if promoted is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    _log.info("admin.secret_promoted", tenant_id=tenant.id, version=promoted.version)
    return _public(promoted, context, reveal=False)


@router.post("/webhooks/test", responses=_errors(409, 415, 422, 429))
async def fire_webhook_test(
    tenant: TenantDep, context: ContextDep, body: WebhookTestRequest | None = None
) -> WebhookTestReport:
    """Send one real, signed request through the production path and report what came back."""
    request = body or WebhookTestRequest()
    config = await context.dispatcher.store.get_config(tenant.id)
    if config is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    if request.webhook == "cart_get" and config.cart_get_url is None:
        raise not_configured("cart_get_url is not set: there is no cart GET webhook to test")
    wait = context.limiter.acquire(tenant.id)
    if wait is not None:
        _log.info("admin.test_fire_limited", tenant_id=tenant.id)
        raise ApiError(
            429,
            "rate_limited",
            f"at most {context.limiter.limit} test-fires a minute; try again later",
            headers={"Retry-After": context.limiter.retry_after_header(wait)},
        )
    report = await run_test_fire(
        context.dispatcher,
        tenant.id,
        webhook=request.webhook,
        skus=request.skus,
        store_id=request.store_id,
    )
    _log.info(
        "admin.test_fire",
        tenant_id=tenant.id,
        webhook=request.webhook,
        ok=report.ok,
        status=report.status,
        detail=report.detail,
        attempts=len(report.attempts),
    )
    return _REPORT.validate_python(report.as_dict())


@router.post("/webhooks/check", responses=_errors(409, 415, 422, 429))
async def check_webhooks(
    tenant: TenantDep, context: ContextDep, body: WebhookCheckRequest | None = None
) -> WebhookCheckReport:
    """Run the contract as checks against the configured webhooks (test data only, SSRF
    guard on): products, signature refusals, cart, cart GET and event endpoints, each
    passed, failed or skipped with what was seen and how to fix it."""
    request = body or WebhookCheckRequest()
    if await context.dispatcher.store.get_config(tenant.id) is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    wait = context.check_limiter.acquire(tenant.id)
    if wait is not None:
        _log.info("admin.check_limited", tenant_id=tenant.id)
        raise ApiError(
            429,
            "rate_limited",
            f"at most {context.check_limiter.limit} checks a minute; try again later",
            headers={"Retry-After": context.check_limiter.retry_after_header(wait)},
        )
    options = CheckOptions(skus=tuple(request.skus), sells_by_weight=request.sells_by_weight)
    report = await check_tenant(context.dispatcher, tenant.id, options)
    if report is None:  # deleted while the check ran
        raise not_configured(_NOT_CONFIGURED_TEXT)
    document = report.as_dict()
    _log.info(
        "admin.check",
        tenant_id=tenant.id,
        ok=report.ok,
        passed=document["passed"],
        failed=document["failed"],
        skipped=document["skipped"],
    )
    return _CHECK_REPORT.validate_python(document)


async def errors_beside_shape_errors(
    request: Request, body: object, refused: AbstractSet[str]
) -> list[FieldError]:
    """The contract's field errors in a body whose JSON shape was refused (a wrong type, an
    unknown field), so that one 422 lists every broken field, not the first layer only.

    The error handler calls this with the fields already refused; a route whose body has
    no further rules adds nothing.  A store failure here adds nothing either: the shape
    errors still go out.
    """
    tenant = authenticated_tenant(request)
    if tenant is None or not isinstance(body, dict):
        return []
    context = admin_context(request)
    endpoint = request.scope.get("endpoint")
    if endpoint is update_webhooks:
        given = {name: value for name, value in body.items() if name in _UPDATE_FIELDS}
        try:
            existing = await _stored(context, tenant.id)
        except StoreError:
            return []
        return await _update_errors(context, tenant.id, existing, given, refused=refused)
    if endpoint in (rotate_secret, roll_secret) and "secret" not in refused:
        secret = body.get("secret")
        problem = None if secret is None else secret_problem(secret)
        return [] if problem is None else [FieldError("secret", problem)]
    return []
