"""The admin API's app factory: settings in, a FastAPI app out, nothing module-global.

The lifespan builds (or borrows) the :class:`~vizochok_dispatch.Dispatcher`, so the admin
API writes through the very cache the dispatcher reads (a PATCH applies to the next call)
and test-fires go through the very path production calls take.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._exceptions import InvalidCall
from .._version import __version__
from ..http._destinations import HostResolver, system_resolve
from ..tenants._sessions import PanelSessions
from ..tenants._sql_store import SqlConfigStore
from ..tenants._tenants import TenantDirectory
from ..webhooks._dispatcher import Dispatcher
from ..webhooks._ratelimit import RateLimiter
from ..webhooks._settings import DispatchSettings
from ._call_routes import router as call_router
from ._deps import AdminContext
from ._errors import ApiError, error_body, install_error_handlers
from ._event_ops import router as event_ops_router
from ._event_routes import router as event_router
from ._operations import router as operations_router
from ._routes import errors_beside_shape_errors, router
from .panel import install_panel

_log = structlog.get_logger("vizochok_dispatch")

#: Where the documentation pages' scripts, styles and icon are served from.
DOCS_ASSETS = "/docs-assets"

DESCRIPTION = """\
Each tenant manages its own webhooks with its API key (`Authorization: Bearer sk_...`).
Every error is `{"error": {"code", "message", "fields"?}}`.
"""


def create_admin_app(
    settings: DispatchSettings | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    tenants: TenantDirectory | None = None,
    clock: Callable[[], float] = time.monotonic,
    resolve: HostResolver = system_resolve,
) -> FastAPI:
    """The admin API.

    ``settings`` default to the ``VIZOCHOK_*`` environment.  Without a ``dispatcher`` the
    lifespan builds one from the settings, starts it as ``async with`` would (with
    ``VIZOCHOK_EVENT_WORKER=embedded``, the default, its worker delivers events while the app
    serves; ``procrastinate`` only publishes, ``vizochok-dispatch worker`` processes deliver)
    and closes it on shutdown; a production deployment without
    ``VIZOCHOK_SECRET_KEYS`` raises :class:`~vizochok_dispatch.SettingsError` right here,
    before anything is served.  ``clock`` drives the test-fire and check rate limits and
    ``resolve`` the save-time DNS check; tests inject both.
    """
    chosen = settings or (dispatcher.settings if dispatcher is not None else DispatchSettings())
    if dispatcher is None:
        chosen.secret_box()  # production without keys refuses to start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = dispatcher if dispatcher is not None else Dispatcher.from_settings(chosen)
        try:
            if dispatcher is None:
                # Entered like ``async with``: the embedded event worker (the default) and
                # the call log's writer run while the app serves, and stop with it.
                await active.__aenter__()
            else:
                await active.store.open()  # a borrowed dispatcher's owner starts its worker
            app.state.admin = AdminContext(
                settings=chosen,
                dispatcher=active,
                tenants=tenants if tenants is not None else _directory(active),
                limiter=RateLimiter(
                    limit=chosen.admin_test_fires_per_minute, period_seconds=60.0, clock=clock
                ),
                resolve=resolve,
                sessions=_sessions(active, chosen),
                check_limiter=RateLimiter(
                    limit=chosen.admin_checks_per_minute, period_seconds=60.0, clock=clock
                ),
            )
            _log.info("admin.started", production=chosen.is_production())
            yield
        finally:
            if dispatcher is None:
                await active.aclose()

    # /docs (Swagger UI) and /redoc load their scripts and styles from this server, shipped
    # in the fastapi-offline package: the docs render with no internet access.
    app = FastAPIOffline(
        title="VIZOCHOK webhook admin API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        # Swagger UI would send the spec to validator.swagger.io for its badge otherwise.
        swagger_ui_parameters={"validatorUrl": None},
    )
    install_error_handlers(app, more_field_errors=errors_beside_shape_errors)
    app.include_router(router)
    app.include_router(call_router)
    app.include_router(operations_router)
    app.include_router(event_router)
    app.include_router(event_ops_router)
    install_panel(app)
    app.add_middleware(AdminGuard, max_body_bytes=chosen.admin_max_body_bytes)
    return app


def _sessions(dispatcher: Dispatcher, settings: DispatchSettings) -> PanelSessions | None:
    inner = dispatcher.store.inner
    if not isinstance(inner, SqlConfigStore):
        return None
    return PanelSessions.for_store(
        inner, lifetime_seconds=settings.panel_session_seconds, now=dispatcher.now
    )


def _directory(dispatcher: Dispatcher) -> TenantDirectory:
    inner = dispatcher.store.inner
    if not isinstance(inner, SqlConfigStore):
        raise InvalidCall("the dispatcher's store is not SQL: pass tenants=TenantDirectory(...)")
    return TenantDirectory.for_store(inner)


class AdminGuard:
    """Outermost guard: a body-size cap before anything reads, and a last-resort 500.

    The body is read (up to the cap) before the app sees it, so an oversized request is
    refused with 413 whether it declares its length or streams it.  An unexpected exception
    becomes the one error shape with no detail; only its type and place are logged.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, replay, tracking_send)
        except Exception as exc:
            # Type and place only: library messages can carry values (SQL parameters, input).
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            _log.error(
                "admin.internal_error",
                error_type=type(exc).__name__,
                where=f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}",
            )
            if started:
                raise
            await _send_json(
                send, 500, error_body("internal_error", "something went wrong on our side")
            )

    async def _too_large(self, send: Send) -> None:
        error = ApiError(
            413,
            "body_too_large",
            f"the request body is over {self.max_body_bytes} bytes",
        )
        await _send_json(send, 413, error_body(error.code, error.message), close=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], *, close: bool = False) -> None:
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))  # the unread body must not be parsed next
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
