"""Admin panel sessions: server-side, tied to the API key they were opened with.

Signing in with a key opens a session: the browser gets a random token (``secrets``, 32
bytes) in its cookie; the database keeps only the token's SHA-256, the tenant, the key's
public id, a CSRF token and an expiry.  The key itself is never stored or sent back.  A
lookup joins the key's row, so a revoked key ends its sessions on their next request; an
expired session is refused (and purged in bounded batches); signing out deletes the row.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ._models import ApiKeyRow, PanelSessionRow, TenantRow
from ._sql_store import SqlConfigStore, _StoreErrors
from ._tenants import Tenant, _utc

#: How long a session lasts from sign-in (8 hours, ``VIZOCHOK_PANEL_SESSION_SECONDS``).
DEFAULT_SESSION_SECONDS: Final = 8 * 3600.0
#: Expired sessions deleted per sign-in at most (keeps that write short).
PURGE_BATCH: Final = 100
_TOKEN_BYTES: Final = 32
_MAX_TOKEN_CHARS: Final = 128

_SESSIONS = cast(Table, PanelSessionRow.__table__)
_KEYS = cast(Table, ApiKeyRow.__table__)
_TENANTS = cast(Table, TenantRow.__table__)

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _digest(token: str) -> str:
    return hashlib.sha256(token[:_MAX_TOKEN_CHARS].encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class PanelSession:
    """A live session: whose it is, and the token its forms must carry."""

    tenant: Tenant
    key_id: str
    csrf_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A session just opened: ``token`` goes into the cookie, and nowhere else."""

    token: str = field(repr=False)
    session: PanelSession


class PanelSessions:
    """Sessions in the config store's database (table ``panel_sessions``)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        url: str,
        open_store: Callable[[], Awaitable[None]] | None = None,
        lifetime_seconds: float = DEFAULT_SESSION_SECONDS,
        now: Now = _utc_now,
    ) -> None:
        self._engine = engine
        self._url = url
        self._open_store = open_store
        self.lifetime_seconds = lifetime_seconds
        self._now = now

    @classmethod
    def for_store(
        cls,
        store: SqlConfigStore,
        *,
        lifetime_seconds: float = DEFAULT_SESSION_SECONDS,
        now: Now = _utc_now,
    ) -> PanelSessions:
        """The sessions in ``store``'s database, on its engine."""
        return cls(
            store.engine,
            url=store.url,
            open_store=store.open,
            lifetime_seconds=lifetime_seconds,
            now=now,
        )

    async def _ready(self) -> None:
        if self._open_store is not None:
            await self._open_store()

    async def open(self, tenant: Tenant, key_id: str) -> OpenedSession:
        """A new session for ``tenant``, signed in with the key ``key_id``; expired sessions
        are purged (at most :data:`PURGE_BATCH`) in the same transaction."""
        await self._ready()
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = self._now()
        session = PanelSession(
            tenant=tenant,
            key_id=key_id,
            csrf_token=secrets.token_urlsafe(_TOKEN_BYTES),
            expires_at=now + timedelta(seconds=self.lifetime_seconds),
        )
        async with _StoreErrors(self._url, ()), self._engine.begin() as conn:
            expired = select(_SESSIONS.c.id).where(_SESSIONS.c.expires_at < now).limit(PURGE_BATCH)
            stale = [row.id for row in await conn.execute(expired)]
            if stale:
                await conn.execute(delete(_SESSIONS).where(_SESSIONS.c.id.in_(stale)))
            await conn.execute(
                insert(_SESSIONS).values(
                    id=_digest(token),
                    tenant_id=tenant.id,
                    key_id=key_id,
                    csrf_token=session.csrf_token,
                    expires_at=session.expires_at,
                )
            )
        return OpenedSession(token=token, session=session)

    async def get(self, token: str | None) -> PanelSession | None:
        """The live session of a cookie's token; ``None`` when unknown, expired, or its key
        was revoked."""
        if not token:
            return None
        await self._ready()
        async with _StoreErrors(self._url, ()), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        _SESSIONS.c.key_id,
                        _SESSIONS.c.csrf_token,
                        _SESSIONS.c.expires_at,
                        _TENANTS.c.id,
                        _TENANTS.c.name,
                        _TENANTS.c.created_at,
                    )
                    .join(_KEYS, _KEYS.c.id == _SESSIONS.c.key_id)
                    .join(_TENANTS, _TENANTS.c.id == _SESSIONS.c.tenant_id)
                    .where(
                        _SESSIONS.c.id == _digest(token),
                        _KEYS.c.revoked_at.is_(None),
                        _KEYS.c.tenant_id == _SESSIONS.c.tenant_id,
                    )
                )
            ).first()
        if row is None:
            return None
        expires_at = _utc(row.expires_at)
        if expires_at is None or expires_at <= self._now():
            return None
        return PanelSession(
            tenant=Tenant(id=row.id, name=row.name, created_at=_utc(row.created_at)),
            key_id=row.key_id,
            csrf_token=row.csrf_token,
            expires_at=expires_at,
        )

    async def close(self, token: str | None) -> None:
        """End the session of ``token`` (sign out); nothing happens for an unknown one."""
        if not token:
            return
        await self._ready()
        async with _StoreErrors(self._url, ()), self._engine.begin() as conn:
            await conn.execute(delete(_SESSIONS).where(_SESSIONS.c.id == _digest(token)))
