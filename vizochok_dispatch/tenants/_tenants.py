"""Tenants and their admin API keys: issued once, stored only as a hash, revocable.

A key is ``sk_`` + 32 random bytes (URL-safe base64).  The database keeps its SHA-256 (a
fast hash is right for a random 256-bit key: nothing to brute-force) under a unique index,
plus a public id (``key_...``) to name it in listings and revocation.  Authentication hashes
whatever was presented (missing and malformed keys included), runs the same single query
(``key_hash = ? AND revoked_at IS NULL``) and compares the digests in constant time, so a
missing, malformed, unknown or revoked key does the same work and gets the same answer:
``None``.  A revoked key keeps its row (``revoked_at``) for the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .._exceptions import InvalidCall, TenantExists, UnknownTenant
from ._models import ApiKeyRow, TenantRow
from ._sql_store import SqlConfigStore, _StoreErrors

API_KEY_PREFIX: Final = "sk_"
KEY_ID_PREFIX: Final = "key_"
#: Random bytes in a key (``secrets.token_urlsafe(32)``: 43 characters after the prefix).
API_KEY_BYTES: Final = 32
#: Longer presented tokens are cut before hashing (they never match, and cost the same).
MAX_PRESENTED_CHARS: Final = 256
MAX_TENANT_NAME_CHARS: Final = 200
_API_KEY = re.compile(r"sk_[A-Za-z0-9_-]{43,}")
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KEY_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_TENANTS = cast(Table, TenantRow.__table__)
_KEYS = cast(Table, ApiKeyRow.__table__)


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant as the admin API knows it."""

    id: str
    name: str
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just issued: the only moment its full text exists outside the caller's hands."""

    key_id: str
    tenant_id: str
    #: ``sk_...``; shown once, never stored, never in a ``repr``.
    key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What is known about a stored key: never the key itself."""

    key_id: str
    tenant_id: str
    created_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Whether the key still authenticates."""
        return self.revoked_at is None


def generate_api_key() -> str:
    """A fresh ``sk_`` key carrying 32 random bytes."""
    return API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)


def hash_api_key(presented: str) -> str:
    """The lowercase hex SHA-256 stored (and looked up) for a key."""
    return hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_api_key(presented: str) -> bool:
    """Whether ``presented`` has the shape of an issued key (says nothing about validity)."""
    return bool(_API_KEY.fullmatch(presented)) and len(presented) <= MAX_PRESENTED_CHARS


def tenant_id_problem(tenant_id: str) -> str | None:
    """Why a new tenant id is refused: ids are short, printable and safe in URLs and logs."""
    if not _TENANT_ID.fullmatch(tenant_id):
        return "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def unknown_tenant(tenant_id: str) -> UnknownTenant:
    """The one error every operation gives for a tenant that does not exist."""
    return UnknownTenant(f"no tenant {tenant_id!r}")


def _new_tenant_id() -> str:
    return f"tn_{secrets.token_hex(8)}"


def _new_key_id() -> str:
    return f"{KEY_ID_PREFIX}{secrets.token_hex(8)}"


class TenantDirectory:
    """Tenants and API keys in the config store's database (tables ``tenants``, ``api_keys``).

    Shares the store's engine, and opens the store (migrating or checking the schema) before
    its first query.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        url: str,
        open_store: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._url = url
        self._open_store = open_store

    @classmethod
    def for_store(cls, store: SqlConfigStore) -> TenantDirectory:
        """The directory in ``store``'s database, on its engine."""
        return cls(store.engine, url=store.url, open_store=store.open)

    async def _ready(self) -> None:
        if self._open_store is not None:
            await self._open_store()

    def _guard(self, *passthrough: type[BaseException]) -> _StoreErrors:
        return _StoreErrors(self._url, passthrough)

    # -- tenants ------------------------------------------------------------------------------

    async def create_tenant(
        self, name: str, *, tenant_id: str | None = None
    ) -> tuple[Tenant, IssuedKey]:
        """Create a tenant and its first API key, in one transaction."""
        clean = name.strip() if isinstance(name, str) else ""
        if not clean or len(clean) > MAX_TENANT_NAME_CHARS or not clean.isprintable():
            raise InvalidCall(
                f"a tenant name must be 1-{MAX_TENANT_NAME_CHARS} printable characters"
            )
        chosen = tenant_id if tenant_id is not None else _new_tenant_id()
        if (problem := tenant_id_problem(chosen)) is not None:
            raise InvalidCall(f"tenant id {problem}")
        await self._ready()
        issued = IssuedKey(key_id=_new_key_id(), tenant_id=chosen, key=generate_api_key())
        try:
            async with self._guard(IntegrityError), self._engine.begin() as conn:
                await conn.execute(insert(_TENANTS).values(id=chosen, name=clean))
                await conn.execute(
                    insert(_KEYS).values(
                        id=issued.key_id, tenant_id=chosen, key_hash=hash_api_key(issued.key)
                    )
                )
        except IntegrityError:
            raise TenantExists(f"tenant {chosen!r} already exists") from None
        return Tenant(id=chosen, name=clean), issued

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant, or ``None``."""
        await self._ready()
        if tenant_id_problem(tenant_id) is not None:
            return None  # no tenant has an id create_tenant refuses (nor may it reach SQL)
        async with self._guard(), self._engine.connect() as conn:
            row = (await conn.execute(select(_TENANTS).where(_TENANTS.c.id == tenant_id))).first()
        return None if row is None else _tenant(row._mapping)

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, oldest first."""
        await self._ready()
        async with self._guard(), self._engine.connect() as conn:
            rows = await conn.execute(
                select(_TENANTS).order_by(_TENANTS.c.created_at, _TENANTS.c.id)
            )
            return [_tenant(row._mapping) for row in rows]

    # -- keys ---------------------------------------------------------------------------------

    async def create_key(self, tenant_id: str) -> IssuedKey:
        """Issue another key for an existing tenant (rotation: create, deploy, revoke the old)."""
        if await self.get_tenant(tenant_id) is None:
            raise unknown_tenant(tenant_id)
        issued = IssuedKey(key_id=_new_key_id(), tenant_id=tenant_id, key=generate_api_key())
        async with self._guard(), self._engine.begin() as conn:
            await conn.execute(
                insert(_KEYS).values(
                    id=issued.key_id, tenant_id=tenant_id, key_hash=hash_api_key(issued.key)
                )
            )
        return issued

    async def revoke_key(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once; revoking twice keeps the first time. Unknown id raises."""
        await self._ready()
        if not _KEY_ID_SHAPE.fullmatch(key_id):
            raise UnknownTenant(f"no API key {key_id!r}")  # not an id this module makes
        async with self._guard(), self._engine.begin() as conn:
            await conn.execute(
                update(_KEYS)
                .where(_KEYS.c.id == key_id, _KEYS.c.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            row = (await conn.execute(select(_KEYS).where(_KEYS.c.id == key_id))).first()
        if row is None:
            raise UnknownTenant(f"no API key {key_id!r}")
        return _key_info(row._mapping)

    async def list_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """The tenant's keys, revoked ones included, oldest first; an unknown tenant raises
        :class:`UnknownTenant` (a tenant always has its first key, so none means no tenant)."""
        if await self.get_tenant(tenant_id) is None:
            raise unknown_tenant(tenant_id)
        async with self._guard(), self._engine.connect() as conn:
            rows = await conn.execute(
                select(_KEYS)
                .where(_KEYS.c.tenant_id == tenant_id)
                .order_by(_KEYS.c.created_at, _KEYS.c.id)
            )
            return [_key_info(row._mapping) for row in rows]

    async def authenticate(self, presented: str | None) -> Tenant | None:
        """The tenant an active key belongs to; ``None`` for anything else, after equal work.

        The token is hashed and looked up whatever its shape, so a missing, malformed,
        unknown or revoked key costs one hash and one indexed query, like a valid one.
        """
        found = await self.authenticate_key(presented)
        return None if found is None else found[0]

    async def authenticate_key(self, presented: str | None) -> tuple[Tenant, str] | None:
        """:meth:`authenticate`, with the public id (``key_...``) of the key that matched:
        the admin panel ties a session to it, so revoking the key ends the session."""
        token = (presented or "")[:MAX_PRESENTED_CHARS]
        digest = hash_api_key(token)
        await self._ready()
        async with self._guard(), self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        _KEYS.c.key_hash,
                        _KEYS.c.id.label("key_id"),
                        _TENANTS.c.id,
                        _TENANTS.c.name,
                        _TENANTS.c.created_at,
                    )
                    .join(_TENANTS, _TENANTS.c.id == _KEYS.c.tenant_id)
                    .where(_KEYS.c.key_hash == digest, _KEYS.c.revoked_at.is_(None))
                )
            ).first()
        stored = row.key_hash if row is not None else "0" * 64
        matched = hmac.compare_digest(stored, digest)
        if row is None or not matched or not looks_like_api_key(token):
            return None
        return Tenant(id=row.id, name=row.name, created_at=_utc(row.created_at)), row.key_id


def _utc(value: Any) -> datetime | None:  # noqa: ANN401 - a driver's datetime (or None)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite keeps no zone; the database writes UTC
    return value if isinstance(value, datetime) else None


def _tenant(row: Any) -> Tenant:  # noqa: ANN401 - a SQLAlchemy row mapping
    return Tenant(id=row["id"], name=row["name"], created_at=_utc(row["created_at"]))


def _key_info(row: Any) -> ApiKeyInfo:  # noqa: ANN401 - a SQLAlchemy row mapping
    return ApiKeyInfo(
        key_id=row["id"],
        tenant_id=row["tenant_id"],
        created_at=_utc(row["created_at"]),
        revoked_at=_utc(row["revoked_at"]),
    )
