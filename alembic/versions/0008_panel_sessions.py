"""panel_sessions: the admin panel's server-side sessions, tied to the key signed in with

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "panel_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_panel_sessions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_panel_sessions_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_panel_sessions")),
    )
    op.create_index(
        op.f("ix_panel_sessions_tenant_id"), "panel_sessions", ["tenant_id"], unique=False
    )
    op.create_index(op.f("ix_panel_sessions_key_id"), "panel_sessions", ["key_id"], unique=False)
    op.create_index(
        op.f("ix_panel_sessions_expires_at"), "panel_sessions", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_panel_sessions_expires_at"), table_name="panel_sessions")
    op.drop_index(op.f("ix_panel_sessions_key_id"), table_name="panel_sessions")
    op.drop_index(op.f("ix_panel_sessions_tenant_id"), table_name="panel_sessions")
    op.drop_table("panel_sessions")
