"""The admin API: tenants configure, rotate and test-fire their webhooks (docs/webhooks.md §7).

``create_admin_app(settings)`` builds the FastAPI app; ``vizochok-dispatch serve`` runs it
under uvicorn.  This is the only part of the package that imports FastAPI; it needs the
``server`` extra.
"""

from __future__ import annotations

from ._app import AdminGuard, create_admin_app
from ._deps import AdminContext, ContextDep, TenantDep
from ._errors import ApiError, error_body
from ._schemas import (
    ErrorResponse,
    SecretRotateRequest,
    WebhookConfigPublic,
    WebhookConfigUpdate,
    WebhookTestReport,
    WebhookTestRequest,
)

__all__ = [
    "AdminContext",
    "AdminGuard",
    "ApiError",
    "ContextDep",
    "ErrorResponse",
    "SecretRotateRequest",
    "TenantDep",
    "WebhookConfigPublic",
    "WebhookConfigUpdate",
    "WebhookTestReport",
    "WebhookTestRequest",
    "create_admin_app",
    "error_body",
]
