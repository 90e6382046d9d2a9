"""What the routes depend on: the app's context, and the tenant an API key belongs to.

``TenantDep`` is the only way a route learns which tenant it serves: from the key, never
from the path or the body, so one tenant's key cannot name another tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .._destinations import HostResolver
from .._dispatcher import Dispatcher
from .._ratelimit import RateLimiter
from .._settings import DispatchSettings
from .._tenants import Tenant, TenantDirectory
from ._errors import unauthorized

_log = structlog.get_logger("vizochok_dispatch")

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="sk_...",
    description="The tenant's API key (`vizochok-dispatch tenants create` / `keys create`).",
)


def _presented(request: Request) -> str | None:
    """The bearer token, or ``None``; any other header form is simply no token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True, slots=True)
class AdminContext:
    """Everything the routes use, built by the app's lifespan (never a module global)."""

    settings: DispatchSettings
    dispatcher: Dispatcher
    tenants: TenantDirectory
    limiter: RateLimiter
    resolve: HostResolver

    async def authenticate(self, request: Request) -> Tenant | None:
        """The tenant of the request's key, or ``None`` (the same work either way)."""
        tenant = await self.tenants.authenticate(_presented(request))
        if tenant is None:
            _log.info("admin.auth_failed", path=request.url.path)
        return tenant


def admin_context(request: Request) -> AdminContext:
    """The context the lifespan put on the app."""
    context: AdminContext = request.app.state.admin
    return context


ContextDep = Annotated[AdminContext, Depends(admin_context)]


async def current_tenant(
    request: Request,
    context: ContextDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Tenant:
    """The tenant whose active key the request carries; one 401 for every other case."""
    tenant = await context.authenticate(request)
    if tenant is None:
        raise unauthorized()
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]
