"""The admin panel: a tenant's webhook settings, tests, events and logs in a browser.

Server-rendered pages under ``/panel/`` of the admin app (Jinja2 templates and one style
sheet shipped in this package; usable without JavaScript, whose only use is a copy button).
Sign in with the tenant's API key; the pages call the same domain methods as the admin API.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ._events import router as events_router
from ._logs import router as logs_router
from ._pages import router as pages_router
from ._web import PREFIX, SECURITY_HEADERS, Refused, SignInNeeded, page

#: The panel's static files: name -> media type.
_STATIC: Final = {"panel.css": "text/css; charset=utf-8", "panel.js": "text/javascript"}


def install_panel(app: FastAPI) -> None:
    """Serve the panel under ``/panel/`` of ``app`` (the admin app)."""
    app.include_router(pages_router)
    app.include_router(logs_router)
    app.include_router(events_router)

    @app.get(PREFIX + "/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        media = _STATIC.get(name)
        if media is None:
            return Response(status_code=404)
        content = files(__package__).joinpath("static", name).read_bytes()
        return Response(
            content,
            media_type=media,
            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.get(PREFIX, include_in_schema=False)
    async def bare() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    async def on_refused(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, Refused)  # noqa: S101 - registered for it only
        response = page(request, "refused.html", None, status=exc.status, message=exc.message)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def on_sign_in_needed(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse(PREFIX + "/sign-in", status_code=303)

    app.add_exception_handler(Refused, on_refused)
    app.add_exception_handler(SignInNeeded, on_sign_in_needed)
