"""the synchronous call log: webhook_calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_calls",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("webhook", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=64), nullable=True),
        sa.Column("delivery_id", sa.String(length=64), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("attempts", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_calls")),
    )
    op.create_index("ix_webhook_calls_tenant_id_at_id", "webhook_calls", ["tenant_id", "at", "id"])
    op.create_index(
        "ix_webhook_calls_tenant_id_outcome_at", "webhook_calls", ["tenant_id", "outcome", "at"]
    )
    op.create_index(
        "ix_webhook_calls_tenant_id_delivery_id", "webhook_calls", ["tenant_id", "delivery_id"]
    )
    op.create_index("ix_webhook_calls_at", "webhook_calls", ["at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_calls_at", table_name="webhook_calls")
    op.drop_index("ix_webhook_calls_tenant_id_delivery_id", table_name="webhook_calls")
    op.drop_index("ix_webhook_calls_tenant_id_outcome_at", table_name="webhook_calls")
    op.drop_index("ix_webhook_calls_tenant_id_at_id", table_name="webhook_calls")
    op.drop_table("webhook_calls")
