"""event webhooks: endpoints, events, deliveries and their attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _times() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "event_endpoints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("signature_scheme", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("timeout_seconds", sa.Float(), nullable=False),
        sa.Column("ordered", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        *_times(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_endpoints")),
    )
    op.create_index(
        op.f("ix_event_endpoints_tenant_id"), "event_endpoints", ["tenant_id"], unique=False
    )
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=256), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_events_tenant_id_idempotency_key"
        ),
    )
    op.create_index(
        "ix_events_tenant_id_created_at", "events", ["tenant_id", "created_at"], unique=False
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim_token", sa.String(length=64), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.String(length=64), nullable=True),
        *_times(),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["event_endpoints.id"],
            name=op.f("fk_event_deliveries_endpoint_id_event_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_event_deliveries_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
    )
    op.create_index(
        "ix_event_deliveries_endpoint_id_status_sequence",
        "event_deliveries",
        ["endpoint_id", "status", "sequence"],
        unique=False,
    )
    op.create_index(
        op.f("ix_event_deliveries_event_id"), "event_deliveries", ["event_id"], unique=False
    )
    op.create_index(
        "ix_event_deliveries_status_next_attempt_at",
        "event_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_event_deliveries_tenant_id"), "event_deliveries", ["tenant_id"], unique=False
    )
    op.create_table(
        "event_attempts",
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("detail", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_deliveries.id"],
            name=op.f("fk_event_attempts_delivery_id_event_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("delivery_id", "number", name=op.f("pk_event_attempts")),
    )


def downgrade() -> None:
    op.drop_table("event_attempts")
    op.drop_index(op.f("ix_event_deliveries_tenant_id"), table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_status_next_attempt_at", table_name="event_deliveries")
    op.drop_index(op.f("ix_event_deliveries_event_id"), table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_endpoint_id_status_sequence", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_index("ix_events_tenant_id_created_at", table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_event_endpoints_tenant_id"), table_name="event_endpoints")
    op.drop_table("event_endpoints")
