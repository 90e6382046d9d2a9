"""What the routes depend on: the app's context, and the tenant an API key belongs to.

``TenantDep`` is the only way a route learns which tenant it serves: from the key, never
from the path or the body, so one tenant's key cannot name another tenant.  Every admin route
is an :class:`AuthenticatedRoute`: the key is checked before the body is read, so a caller
without a valid key gets the one 401 whatever it sends.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..http._destinations import HostResolver
from ..tenants._sessions import PanelSessions
from ..tenants._tenants import Tenant, TenantDirectory
from ..webhooks._dispatcher import Dispatcher
from ..webhooks._ratelimit import RateLimiter
from ..webhooks._settings import DispatchSettings
from ._body import AdminRequest
from ._errors import error_response, unauthorized

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
    #: The admin panel's sessions; ``None`` when the config store is not SQL (no panel).
    sessions: PanelSessions | None = None
    #: How often one tenant may run the conformance check (``POST …/webhooks/check``).
    check_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(limit=2))

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


class AuthenticatedRoute(APIRoute):
    """A route that checks the API key first, before FastAPI reads or parses the body.

    Without a valid key the answer is the one 401, whatever the body is (FastAPI would
    otherwise parse it first and answer 400 or 422 about it).  With one, the tenant is kept
    on ``request.state`` for :data:`TenantDep`, and the body is read by
    :class:`~vizochok_dispatch.admin._body.AdminRequest`, so even a body Starlette cannot
    parse becomes a field-level 422.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind the key check."""
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            tenant = await admin_context(request).authenticate(request)
            if tenant is None:
                return error_response(unauthorized())
            request.state.tenant = tenant
            return await handler(AdminRequest(request.scope, request.receive))

        return authenticated


def authenticated_tenant(request: Request) -> Tenant | None:
    """The tenant :class:`AuthenticatedRoute` found for this request, if it ran."""
    tenant = getattr(request.state, "tenant", None)
    return tenant if isinstance(tenant, Tenant) else None


async def current_tenant(
    request: Request,
    context: ContextDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Tenant:
    """The tenant whose active key the request carries; one 401 for every other case.

    ``_credentials`` only declares the scheme in OpenAPI; the key was checked by the route.
    """
    tenant = authenticated_tenant(request) or await context.authenticate(request)
    if tenant is None:
        raise unauthorized()
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]
