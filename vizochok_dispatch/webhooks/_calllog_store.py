"""The synchronous call log's table and its SQL: batched inserts, filtered pages, purges.

One row per logged call (``webhook_calls``), written by :class:`~._calllog.CallLog`'s
background task, never by a call itself.  A row holds what a developer needs to see why a
call failed and nothing that could sign a request: no secret, no signature, no request body,
no URL (a cart GET's query carries the customer's session).  Attempts and problem lines are
JSON; the answer's first 4 KiB are bytes.

Pages are newest first, in ``(at, id)`` order, and the cursor names the last row shown
(keyset pagination), so a page never repeats or skips a row because newer ones arrived.
Purges delete in bounded batches (:data:`PURGE_BATCH` rows a statement), so no statement holds
locks for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import (
    JSON,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import StaticPool

from .._exceptions import StoreError
from ..events._tables import UtcDateTime
from ..tenants._models import Base
from ..tenants._pages import Cursor, Page, before, newest_first, page_of
from ..tenants._sql_store import SqlConfigStore, safe_url
from ._results import Attempt

CallOutcome = Literal["ok", "failed"]
#: Rows one purge statement deletes at most.
PURGE_BATCH: Final = 1000
#: Purge statements one purge makes at most (the next purge goes on where it stopped).
MAX_PURGE_STATEMENTS: Final = 20


class WebhookCallRow(Base):
    """One logged synchronous call (see the module docstring)."""

    __tablename__ = "webhook_calls"
    __table_args__ = (
        # A tenant's page, newest first, with or without a time range; the per-tenant count.
        Index("ix_webhook_calls_tenant_id_at_id", "tenant_id", "at", "id"),
        # ``--failed`` and ``outcome=failed``: failures are few among sampled successes.
        Index("ix_webhook_calls_tenant_id_outcome_at", "tenant_id", "outcome", "at"),
        Index("ix_webhook_calls_tenant_id_delivery_id", "tenant_id", "delivery_id"),
        # The age purge, across tenants.
        Index("ix_webhook_calls_at", "at"),
    )

    #: ``call_`` then 26 letters and digits (sortable by the call's time).
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(128))
    #: ``products``, ``cart`` or ``cart_get``.
    webhook: Mapped[str] = mapped_column(String(16))
    #: When the call ended.
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: ``ok`` or ``failed``.
    outcome: Mapped[str] = mapped_column(String(16))
    #: The failure's detail (docs/webhooks.md §3); ``None`` when ``ok``.
    detail: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: ``None`` when nothing was sent (``circuit_open``, ``not_configured`` …).
    delivery_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The last answer's HTTP status, when one came.
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The whole call, retry delay included, in milliseconds; ``None`` when nothing was sent.
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: ``[{"number", "status", "latency_ms", "detail", "reason"}, …]``.
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: What was wrong in the reply, one line each.
    problems: Mapped[list[str]] = mapped_column(JSON)
    #: The first 4 KiB of the last non-200 answer's body.
    response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


_C = cast(Table, WebhookCallRow.__table__)


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One entry of the call log, as a tenant or an operator reads it."""

    #: ``call_`` then 26 letters and digits.
    id: str
    tenant_id: str
    #: ``products``, ``cart`` or ``cart_get``.
    webhook: str
    #: When the call ended (UTC).
    at: datetime
    outcome: CallOutcome
    #: ``None`` when ``ok``; else the failure's detail (docs/webhooks.md §3).
    detail: str | None
    #: The ``X-VIZOCHOK-Delivery`` the attempts carried; ``None`` when nothing was sent.
    delivery_id: str | None
    #: The last answer's HTTP status, when one came.
    status: int | None
    #: The whole call in milliseconds; ``None`` when nothing was sent.
    latency_ms: float | None
    attempts: tuple[Attempt, ...]
    #: What was wrong in the tenant's reply, one readable line each.
    problems: tuple[str, ...]
    #: The first 4 KiB of the last non-200 answer's body, when one came.
    response: bytes | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the time in ISO 8601, the answer as UTF-8 text (bad bytes replaced);
        what the admin API and ``vizochok-dispatch calls --json`` show."""
        return {
            "id": self.id,
            "webhook": self.webhook,
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "detail": self.detail,
            "delivery_id": self.delivery_id,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "attempts": [attempt_dict(attempt) for attempt in self.attempts],
            "problems": list(self.problems),
            "response": None if self.response is None else self.response.decode("utf-8", "replace"),
        }


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    """An attempt as the log stores and shows it."""
    return {
        "number": attempt.number,
        "status": attempt.status,
        "latency_ms": attempt.elapsed_ms,
        "detail": attempt.detail,
        "reason": attempt.reason,
    }


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which entries a page holds; every field left ``None`` matches everything."""

    webhook: str | None = None
    outcome: CallOutcome | None = None
    detail: str | None = None
    #: Entries at or after this time.
    since: datetime | None = None
    #: Entries before this time.
    until: datetime | None = None
    delivery_id: str | None = None


class CallLogStore:
    """The ``webhook_calls`` rows, on a :class:`SqlConfigStore`'s database.

    Writes get an engine (a pool) of their own, so a slow or hung write never makes a config
    lookup wait for a connection; in-memory SQLite lives in one connection, shared one
    statement at a time.
    """

    def __init__(self, config_store: SqlConfigStore) -> None:
        self._config = config_store
        self._own_engine: AsyncEngine | None = None
        self._serial: asyncio.Lock | None = None

    async def open(self) -> None:
        """Open (migrate, or check) the database through the config store; idempotent."""
        await self._config.open()
        if self._own_engine is not None or self._serial is not None:
            return
        if isinstance(self._config.engine.pool, StaticPool):
            self._serial = asyncio.Lock()
        else:
            self._own_engine = self._config.create_engine()

    async def close(self) -> None:
        """Dispose of the engine of its own; idempotent."""
        if self._own_engine is not None:
            engine, self._own_engine = self._own_engine, None
            await engine.dispose()

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        await self.open()
        engine = self._own_engine or self._config.engine
        try:
            async with self._one_at_a_time(), engine.connect() as conn:
                if write:
                    await conn.begin()
                yield conn
                if write:
                    await conn.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(
                f"call log at {safe_url(self._config.url)} failed: {type(exc).__name__}"
            ) from exc

    @asynccontextmanager
    async def _one_at_a_time(self) -> AsyncIterator[None]:
        if self._serial is None:
            yield
            return
        async with self._serial:
            yield

    # -- writing ---------------------------------------------------------------------------

    async def insert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert ``rows`` (``webhook_calls`` columns) in one statement and transaction."""
        if rows:
            async with self._connection(write=True) as conn:
                await conn.execute(insert(_C), list(rows))

    async def purge(
        self,
        *,
        older_than: datetime | None,
        keep_per_tenant: int | None,
        tenants: Sequence[str],
    ) -> tuple[int, list[str]]:
        """Delete entries older than ``older_than``, and each of ``tenants``' entries beyond
        its newest ``keep_per_tenant``, in batches of :data:`PURGE_BATCH` rows and at most
        :data:`MAX_PURGE_STATEMENTS` deleting statements.

        Returns the rows deleted, and the tenants whose count was not (fully) checked: what
        the next purge goes on with.
        """
        budget = MAX_PURGE_STATEMENTS
        deleted = 0
        if older_than is not None:
            done, budget, _ = await self._delete_batches(_C.c.at < older_than, budget)
            deleted += done
        if keep_per_tenant is None:
            return deleted, []
        for index, tenant_id in enumerate(tenants):
            if budget <= 0:
                return deleted, list(tenants[index:])
            async with self._connection(write=False) as conn:
                oldest_kept = (
                    await conn.execute(
                        select(_C.c.at, _C.c.id)
                        .where(_C.c.tenant_id == tenant_id)
                        .order_by(*newest_first(_C.c.at, _C.c.id))
                        .offset(keep_per_tenant - 1)
                        .limit(1)
                    )
                ).first()
            if oldest_kept is None:
                continue
            done, budget, finished = await self._delete_batches(
                and_(
                    _C.c.tenant_id == tenant_id,
                    before(_C.c.at, _C.c.id, Cursor(oldest_kept[0], oldest_kept[1])),
                ),
                budget,
            )
            deleted += done
            if not finished:
                return deleted, list(tenants[index:])
        return deleted, []

    async def _delete_batches(
        self,
        condition: Any,  # noqa: ANN401 - a SQL expression
        budget: int,
    ) -> tuple[int, int, bool]:
        """Delete rows matching ``condition``, a batch a statement, within ``budget``
        statements: the rows deleted, the budget left, and whether none is left."""
        deleted = 0
        while budget > 0:
            budget -= 1
            chosen = select(_C.c.id).where(condition).limit(PURGE_BATCH).scalar_subquery()
            async with self._connection(write=True) as conn:
                count = (await conn.execute(delete(_C).where(_C.c.id.in_(chosen)))).rowcount
            deleted += count
            if count < PURGE_BATCH:
                return deleted, budget, True
        return deleted, budget, False

    # -- reading ---------------------------------------------------------------------------

    async def page(
        self, tenant_id: str, where: CallFilter, *, cursor: Cursor | None, limit: int
    ) -> Page[LoggedCall]:
        """Up to ``limit`` of the tenant's entries matching ``where``, newest first, after
        the position ``cursor`` names (keyset pagination, ``tenants._pages``)."""
        query = select(_C).where(_C.c.tenant_id == tenant_id)
        for column, value in (
            (_C.c.webhook, where.webhook),
            (_C.c.outcome, where.outcome),
            (_C.c.detail, where.detail),
            (_C.c.delivery_id, where.delivery_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if where.since is not None:
            query = query.where(_C.c.at >= where.since)
        if where.until is not None:
            query = query.where(_C.c.at < where.until)
        if cursor is not None:
            query = query.where(before(_C.c.at, _C.c.id, cursor))
        query = query.order_by(*newest_first(_C.c.at, _C.c.id)).limit(limit + 1)
        async with self._connection(write=False) as conn:
            rows = [_logged(row._mapping) for row in await conn.execute(query)]
        return page_of(rows, limit, lambda call: (call.at, call.id))


def _logged(row: RowMapping) -> LoggedCall:
    return LoggedCall(
        id=row["id"],
        tenant_id=row["tenant_id"],
        webhook=row["webhook"],
        at=row["at"],
        outcome=row["outcome"],
        detail=row["detail"],
        delivery_id=row["delivery_id"],
        status=row["status_code"],
        latency_ms=row["latency_ms"],
        attempts=tuple(
            Attempt(
                number=item["number"],
                status=item["status"],
                elapsed_ms=item["latency_ms"],
                detail=item["detail"],
                reason=item.get("reason"),
            )
            for item in row["attempts"]
        ),
        problems=tuple(row["problems"]),
        response=row["response"],
    )
