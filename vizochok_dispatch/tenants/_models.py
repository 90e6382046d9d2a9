"""SQLAlchemy models: the schema the Alembic migrations must produce exactly."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The ``Column.info`` key that marks a column holding secrets encrypted at rest
#: (``tenants._crypto``); its table has a ``tenant_id`` column.  The key-file and keys checks
#: of the store read every marked column of every table on :class:`Base`, so a table added by
#: another subpackage (event endpoints) is checked without this one importing it.
ENCRYPTED_SECRET: Final = "encrypted_secret"  # noqa: S105 - a marker's name
#: The ``Column.info`` key beside :data:`ENCRYPTED_SECRET` naming what a secret is bound to
#: (the keyring's associated data): a function of the row's mapping.  Absent: the row's
#: ``tenant_id``.  ``secrets reencrypt`` reads it, so it re-encrypts every marked column.
SECRET_BINDING: Final = "secret_binding"  # noqa: S105 - a marker's name

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can name them."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class WebhookConfigRow(Base):
    """One tenant's webhook configuration."""

    __tablename__ = "webhook_configs"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    products_url: Mapped[str] = mapped_column(String(2048))
    cart_url: Mapped[str] = mapped_column(String(2048))
    cart_get_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    timeout_seconds: Mapped[float] = mapped_column(Float)
    secret: Mapped[str] = mapped_column(Text, info={ENCRYPTED_SECRET: True})
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: A rolled secret that does not sign yet (``tenants._rotation``), encrypted like ``secret``.
    pending_secret: Mapped[str | None] = mapped_column(
        Text, nullable=True, info={ENCRYPTED_SECRET: True}
    )
    pending_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    pending_promotes_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class TenantRow(Base):
    """A tenant of the admin API: the retailer whose webhooks ``webhook_configs`` holds."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKeyRow(Base):
    """An admin API key, stored only as its SHA-256 hash; a revoked key keeps its row."""

    __tablename__ = "api_keys"

    #: The public id (``key_...``) that names the key in listings and ``keys revoke``.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    #: Lowercase hex SHA-256 of the whole key; authentication looks keys up by it.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PanelSessionRow(Base):
    """A signed-in admin panel session: the browser holds a random token, the database its
    SHA-256 (``tenants._sessions``); the session lasts while its API key is not revoked."""

    __tablename__ = "panel_sessions"

    #: Lowercase hex SHA-256 of the cookie's token.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    #: The key signed in with; revoking it ends the session.
    key_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    #: The token every form of the session carries (``csrf_token``).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def secret_binding(column: Column[str], row: Mapping[str, Any]) -> str:
    """What a secret in ``column`` of ``row`` is bound to (see :data:`SECRET_BINDING`)."""
    bind: Callable[[Mapping[str, Any]], str] | None = column.info.get(SECRET_BINDING)
    return str(row["tenant_id"]) if bind is None else bind(row)


def encrypted_secret_columns() -> list[Column[str]]:
    """Every column marked :data:`ENCRYPTED_SECRET` on :class:`Base`, in table order.

    The package root imports every subpackage, so each table is on ``Base`` by the time a
    store opens.
    """
    found: list[Column[str]] = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if column.info.get(ENCRYPTED_SECRET):
                found.append(cast(Column[str], column))
    return found
