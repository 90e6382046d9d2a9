"""event operations: endpoint failure counts (auto-disable), test and manual deliveries, and the
index retention reads by

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "event_endpoints",
        sa.Column("failed_deliveries", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column(
        "event_endpoints",
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "event_deliveries",
        sa.Column("test", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("event_deliveries", sa.Column("trigger", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_event_deliveries_status_updated_at",
        "event_deliveries",
        ["status", "updated_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_event_deliveries_status_updated_at", table_name="event_deliveries")
    with op.batch_alter_table("event_deliveries") as batch:
        batch.drop_column("trigger")
        batch.drop_column("test")
    with op.batch_alter_table("event_endpoints") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("failed_deliveries")
