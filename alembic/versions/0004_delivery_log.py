"""the delivery log: each delivery's event type, and the indexes of its filtered pages

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

The log is read newest first on ``(created_at, id)`` with keyset pagination
(``tenants._pages``); each index below turns a filtered page (by tenant; tenant and status;
tenant and event type; endpoint) into one index range scan, on the first page and on any
later one.  ``event_type`` is copied onto the delivery so its filter needs no join; older
rows are filled from their event.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_event_deliveries_tenant_id_created_at_id": ["tenant_id", "created_at", "id"],
    "ix_event_deliveries_tenant_id_status_created_at_id": [
        "tenant_id",
        "status",
        "created_at",
        "id",
    ],
    "ix_event_deliveries_tenant_id_event_type_created_at_id": [
        "tenant_id",
        "event_type",
        "created_at",
        "id",
    ],
    "ix_event_deliveries_endpoint_id_created_at_id": ["endpoint_id", "created_at", "id"],
}


def upgrade() -> None:
    op.add_column("event_deliveries", sa.Column("event_type", sa.String(length=128), nullable=True))
    op.execute(
        "UPDATE event_deliveries SET event_type = (SELECT events.event_type FROM events "
        "WHERE events.id = event_deliveries.event_id) WHERE event_type IS NULL"
    )
    # (tenant_id, created_at, id) serves everything the tenant_id index did.
    op.drop_index(op.f("ix_event_deliveries_tenant_id"), table_name="event_deliveries")
    for name, columns in _INDEXES.items():
        op.create_index(name, "event_deliveries", columns, unique=False)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="event_deliveries")
    op.create_index(
        op.f("ix_event_deliveries_tenant_id"), "event_deliveries", ["tenant_id"], unique=False
    )
    op.drop_column("event_deliveries", "event_type")
