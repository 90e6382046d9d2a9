"""webhook_configs: one row per tenant

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_configs",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("products_url", sa.String(length=2048), nullable=False),
        sa.Column("cart_url", sa.String(length=2048), nullable=False),
        sa.Column("cart_get_url", sa.String(length=2048), nullable=True),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_webhook_configs")),
    )


def downgrade() -> None:
    op.drop_table("webhook_configs")
