"""Routes for operators and load balancers, not tenants: ``/metrics``, ``/healthz``, ``/readyz``.

None takes a tenant's key.  ``/healthz`` and ``/readyz`` say only status words (no versions,
hosts, errors or timings: nothing that helps an attacker); ``/metrics`` takes the bearer token
``VIZOCHOK_METRICS_TOKEN`` when one is set, and is open otherwise (expose the admin port's
``/metrics`` to the scraper's network only).
"""

from __future__ import annotations

import asyncio
import hmac
from functools import cache
from typing import Final, Literal

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..observe import CONTENT_TYPE
from ..tenants._migrations import current_revision, head_revision
from ..tenants._sql_store import SqlConfigStore
from ..webhooks._dispatcher import Dispatcher
from ._deps import ContextDep, admin_context

_log = structlog.get_logger("vizochok_dispatch")

#: How long ``/readyz`` waits for the database (reachable, schema read) before saying no.
READY_TIMEOUT_SECONDS: Final = 2.0

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format: every ``vizochok_*`` series (404 when metrics are off; 401
    without ``VIZOCHOK_METRICS_TOKEN`` when one is set)."""
    context = admin_context(request)
    token = context.settings.metrics_token
    if token is not None and not _token_matches(request, token.get_secret_value()):
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    registry = context.dispatcher.metrics
    if registry is None:
        return Response(status_code=404)
    return Response(await registry.exposition(), media_type=CONTENT_TYPE)


def _token_matches(request: Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


class Health(BaseModel):
    """The process answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether this instance can serve, and each check's word."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ready", "store": "ok", "migrations": "ok", "event_worker": "ok"},
                {
                    "status": "not_ready",
                    "store": "unreachable",
                    "migrations": "unknown",
                    "event_worker": "ok",
                },
            ]
        }
    )

    status: Literal["ready", "not_ready"]
    #: The database answered within the bound.
    store: Literal["ok", "unreachable"]
    #: The database's schema is at the migration this code needs.
    migrations: Literal["ok", "behind", "unknown"]
    #: ``ok``: this process's embedded worker delivers events; ``stopped``: it should but
    #: stopped; ``external``: this process publishes to the procrastinate queue and
    #: ``vizochok-dispatch worker`` processes deliver; ``off``: nothing here delivers.
    event_worker: Literal["ok", "stopped", "external", "off"]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    """Always ``{"status": "ok"}`` while the process serves HTTP; for liveness probes."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="This instance can serve",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: a check failed"}},
)
async def readyz(context: ContextDep) -> JSONResponse:
    """Ready when the store answers within 2 s, its schema is at this code's migration and
    the event worker runs where it should; 503 with the same shape otherwise."""
    readiness = await check_readiness(context.dispatcher)
    return JSONResponse(
        readiness.model_dump(), status_code=200 if readiness.status == "ready" else 503
    )


async def check_readiness(dispatcher: Dispatcher) -> Readiness:
    """Run the readiness checks (store, schema, event worker); never raises."""
    store: Literal["ok", "unreachable"] = "ok"
    schema: Literal["ok", "behind", "unknown"] = "ok"
    inner = dispatcher.store.inner
    if isinstance(inner, SqlConfigStore):
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                current = await current_revision(inner.engine)
        except Exception as exc:
            _log.warning("admin.not_ready", check="store", error=type(exc).__name__)
            store, schema = "unreachable", "unknown"
        else:
            if current != _head():
                _log.warning("admin.not_ready", check="schema")
                schema = "behind"
    worker: Literal["ok", "stopped", "external", "off"] = "off"
    if dispatcher.events.worker_started:
        worker = "ok" if dispatcher.events.worker.running else "stopped"
    elif dispatcher.events.queue_open:
        worker = "external"
    ready = store == "ok" and schema == "ok" and worker != "stopped"
    return Readiness(
        status="ready" if ready else "not_ready",
        store=store,
        migrations=schema,
        event_worker=worker,
    )


@cache
def _head() -> str | None:
    """The code's migration head (read from the scripts once)."""
    return head_revision()
