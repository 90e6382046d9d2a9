"""The admin API's routes (CONTRACT §7): read, update, rotate, test-fire."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import structlog
from fastapi import APIRouter

from .._config import UNSET, WebhookConfig, mask_secret, merge_config
from .._exceptions import FieldError, InvalidConfig
from .._testfire import run_test_fire
from ._deps import AdminContext, AuthenticatedRoute, ContextDep, TenantDep
from ._errors import ApiError, invalid, not_configured
from ._schemas import (
    ErrorResponse,
    SecretRotateRequest,
    WebhookConfigPublic,
    WebhookConfigUpdate,
    WebhookTestReport,
    WebhookTestRequest,
)

_log = structlog.get_logger("vizochok_dispatch")

_URL_FIELDS: Final = ("products_url", "cart_url", "cart_get_url")
_NULLABLE: Final = frozenset({"cart_get_url"})
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorResponse, "description": "missing, malformed, unknown or revoked key"},
    413: {"model": ErrorResponse, "description": "request body over the size cap"},
    422: {"model": ErrorResponse, "description": "invalid fields, listed one by one"},
}
_NOT_CONFIGURED_TEXT: Final = "no webhooks are configured yet: PATCH /api/v1/admin/webhooks first"

router = APIRouter(
    prefix="/api/v1/admin", tags=["webhooks"], responses=_ERRORS, route_class=AuthenticatedRoute
)


def _public(config: WebhookConfig, context: AdminContext, *, reveal: bool) -> WebhookConfigPublic:
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
        circuits=context.dispatcher.circuit_states(config.tenant_id),
    )


async def _stored(context: AdminContext, tenant_id: str) -> WebhookConfig | None:
    """The stored config, read past the dispatcher's cache: the admin API is authoritative."""
    return await context.dispatcher.store.inner.get_config(tenant_id)


@router.get("/webhooks", responses={409: {"model": ErrorResponse}})
async def read_webhooks(tenant: TenantDep, context: ContextDep) -> WebhookConfigPublic:
    """The tenant's webhook configuration; the secret is shown masked."""
    config = await _stored(context, tenant.id)
    if config is None:
        raise not_configured(_NOT_CONFIGURED_TEXT)
    return _public(config, context, reveal=False)


@router.patch("/webhooks")
async def update_webhooks(
    update: WebhookConfigUpdate, tenant: TenantDep, context: ContextDep
) -> WebhookConfigPublic:
    """Partial update; the first save generates the secret and shows it, once."""
    given: dict[str, Any] = update.model_dump(exclude_unset=True)
    errors = [
        FieldError(name, "must not be null")
        for name, value in given.items()
        if value is None and name not in _NULLABLE
    ]
    if errors:
        raise invalid(errors)
    existing = await _stored(context, tenant.id)
    if not given and existing is not None:
        return _public(existing, context, reveal=False)
    await _check_everything(context, tenant.id, existing, given)
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


async def _check_everything(
    context: AdminContext, tenant_id: str, existing: WebhookConfig | None, given: dict[str, Any]
) -> None:
    """Every field error at once: the contract's rules, then where each new host resolves."""
    errors: list[FieldError] = []
    try:
        merge_config(
            tenant_id,
            existing,
            products_url=given.get("products_url", UNSET),
            cart_url=given.get("cart_url", UNSET),
            cart_get_url=given.get("cart_get_url", UNSET),
            timeout_seconds=given.get("timeout_seconds", UNSET),
            secret=given.get("secret", UNSET),
            rules=context.dispatcher.settings.config_rules(),
        )
    except InvalidConfig as exc:
        errors.extend(exc.errors)
    refused = {error.field for error in errors}
    urls = [
        (name, given[name])
        for name in _URL_FIELDS
        if isinstance(given.get(name), str) and name not in refused
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
    if errors:
        raise invalid(errors)


@router.post("/webhooks/secret/rotate", responses={409: {"model": ErrorResponse}})
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


@router.post(
    "/webhooks/test",
    responses={
        409: {"model": ErrorResponse, "description": "the webhook is not configured"},
        429: {"model": ErrorResponse, "description": "too many test-fires; see Retry-After"},
    },
)
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
    return WebhookTestReport.model_validate(report.as_dict())
