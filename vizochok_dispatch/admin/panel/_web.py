"""What every panel page shares: templates, the session cookie, forms and their CSRF check.

The session cookie holds a random token only (``tenants._sessions``): ``HttpOnly``,
``SameSite=Strict``, ``Path=/panel``, ``Max-Age`` of the session's lifetime, and ``Secure``
when the request came over https (uvicorn reads ``X-Forwarded-Proto`` from a trusted proxy),
or always when ``VIZOCHOK_PANEL_SECURE_COOKIE=true`` (a TLS proxy that does not forward it).
Every form carries the session's CSRF token (the sign-in form a cookie-bound one); a post
without the right one is refused with 403 before it changes anything.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ...tenants._sessions import PanelSession, PanelSessions
from .._deps import AdminContext, admin_context

PREFIX: Final = "/panel"
SESSION_COOKIE: Final = "vizochok_panel"
#: The sign-in form's CSRF token (double submit: cookie and field must match).
SIGN_IN_COOKIE: Final = "vizochok_panel_signin"
CSRF_FIELD: Final = "csrf_token"
_FORM_TYPE: Final = "application/x-www-form-urlencoded"
#: The pages of the navigation bar, in order: path, label.
NAV: Final = (
    ("/webhooks", "Webhooks"),
    ("/test", "Test"),
    ("/health", "Health"),
    ("/endpoints", "Event endpoints"),
    ("/calls", "Call log"),
    ("/deliveries", "Deliveries"),
)

#: Headers on every panel page: nothing from elsewhere, no framing, no caching of a tenant's
#: settings, no referrer beyond this origin.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(
    env=Environment(
        loader=PackageLoader("vizochok_dispatch.admin.panel", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


templates.env.filters["when"] = _when
templates.env.filters["ms"] = _ms


class Refused(Exception):
    """A post the panel will not act on (bad or missing CSRF token, a wrong content type)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInNeeded(Exception):
    """No live session: the page answers with the sign-in page's address."""


@dataclass(frozen=True, slots=True)
class Form:
    """An url-encoded form: each name's values in order (checkboxes repeat a name)."""

    values: Mapping[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``, stripped of surrounding white space."""
        found = self.values.get(name)
        return found[0].strip() if found else default

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``."""
        return list(self.values.get(name, []))

    def has(self, name: str) -> bool:
        """Whether ``name`` was sent (a checked checkbox)."""
        return name in self.values


def context_of(request: Request) -> AdminContext:
    """The admin app's context."""
    return admin_context(request)


def sessions_of(request: Request) -> PanelSessions:
    """The panel's sessions; the panel needs the SQL config store."""
    sessions = context_of(request).sessions
    if sessions is None:
        raise Refused(503, "the admin panel needs the SQL config store")
    return sessions


async def current_session(request: Request) -> PanelSession | None:
    """The request's live session, or ``None``."""
    cached = getattr(request.state, "panel_session", None)
    if isinstance(cached, PanelSession):
        return cached
    found = await sessions_of(request).get(request.cookies.get(SESSION_COOKIE))
    request.state.panel_session = found
    return found


async def require_session(request: Request) -> PanelSession:
    """The live session; :class:`SignInNeeded` without one."""
    session = await current_session(request)
    if session is None:
        raise SignInNeeded
    return session


async def read_form(request: Request) -> Form:
    """The url-encoded body (the admin app capped its size already)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != _FORM_TYPE:
        raise Refused(415, "send the form as application/x-www-form-urlencoded")
    body = (await request.body()).decode("utf-8", "replace")
    values: dict[str, list[str]] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, max_num_fields=500):
        values.setdefault(name, []).append(value)
    return Form(values)


def _token_matches(presented: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(presented.encode(), (expected or "").encode())


async def posted_form(request: Request) -> tuple[PanelSession, Form]:
    """A signed-in post: the session and its form, after the CSRF check (403 without it)."""
    session = await current_session(request)
    form = await read_form(request)
    if session is None:
        # Checked after the body: a forged post is told the same as an expired session.
        raise Refused(403, "your session has ended: sign in again")
    if not _token_matches(form.get(CSRF_FIELD), session.csrf_token):
        raise Refused(403, "this form's security token is missing or wrong: reload the page")
    return session, form


def sign_in_token_ok(request: Request, form: Form) -> bool:
    """The sign-in form's token matches its cookie."""
    return _token_matches(form.get(CSRF_FIELD), request.cookies.get(SIGN_IN_COOKIE))


def new_sign_in_token() -> str:
    """A fresh token for the sign-in form and its cookie."""
    return secrets.token_urlsafe(32)


def secure_cookie(request: Request) -> bool:
    """Whether the panel's cookies get ``Secure``."""
    settings = context_of(request).settings
    if settings.panel_secure_cookie is not None:
        return settings.panel_secure_cookie
    return request.url.scheme == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, max_age: int
) -> None:
    """A panel cookie with the flags above."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
    )


def page(
    request: Request,
    template: str,
    session: PanelSession | None,
    *,
    status: int = 200,
    **values: Any,  # noqa: ANN401 - template values of any kind
) -> HTMLResponse:
    """A rendered page with the panel's headers; the session's CSRF token goes into every
    form through ``csrf``."""
    response = templates.TemplateResponse(
        request,
        template,
        {
            "session": session,
            "csrf": session.csrf_token if session is not None else values.pop("csrf", ""),
            "prefix": PREFIX,
            "path": request.url.path,
            "notice": None,
            "nav": NAV,
            **values,
        },
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def see_other(path: str) -> RedirectResponse:
    """A 303 to a panel page (after a post: reloading does not post again)."""
    response = RedirectResponse(PREFIX + path, status_code=303)
    response.headers.update(SECURITY_HEADERS)
    return response
