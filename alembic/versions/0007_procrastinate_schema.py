"""procrastinate's job queue schema (the scale-out event worker), on PostgreSQL only

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

``VIZOCHOK_EVENT_WORKER=procrastinate`` runs event deliveries on procrastinate, whose tables,
types and functions this migration creates in a PostgreSQL schema of their own,
``procrastinate`` (so they never mix with ours), from the installed procrastinate's own
``schema.sql``.  On SQLite it does nothing: procrastinate needs PostgreSQL.

procrastinate is pinned to one minor version (pyproject.toml).  Moving to a newer one means a
new migration here that applies the SQL migration scripts procrastinate ships for it
(``procrastinate/sql/migrations``), with ``search_path`` set to ``procrastinate`` as below.
"""

import inspect
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.util import await_only

from alembic import context, op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "procrastinate"


def _schema_sql() -> str:
    from procrastinate.schema import SchemaManager  # noqa: PLC0415 - PostgreSQL only

    return SchemaManager.get_schema()


def upgrade() -> None:
    if context.is_offline_mode():
        if op.get_context().dialect.name == "postgresql":
            op.execute(f"CREATE SCHEMA {SCHEMA}")
            op.execute(f"SET LOCAL search_path TO {SCHEMA}")
            op.execute(_schema_sql())
        return
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    previous = bind.execute(sa.text("SELECT current_setting('search_path')")).scalar_one()
    bind.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
    bind.execute(sa.text(f"SET LOCAL search_path TO {SCHEMA}"))
    # schema.sql is many statements (functions with $$ bodies): the driver's own simple
    # query runs it whole, where SQLAlchemy would prepare it as one statement
    ran = bind.connection.driver_connection.execute(_schema_sql())  # type: ignore[union-attr]
    if inspect.isawaitable(ran):
        await_only(ran)
    bind.execute(sa.text("SELECT set_config('search_path', :path, true)"), {"path": previous})


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
