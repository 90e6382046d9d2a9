"""rolled secrets: a pending secret beside the current one, on webhook configs and event endpoints

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("webhook_configs", "event_endpoints")


def upgrade() -> None:
    for table in _TABLES:
        # batch mode: SQLite cannot drop columns in place (the downgrade)
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("pending_secret", sa.Text(), nullable=True))
            batch.add_column(sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(
                sa.Column("pending_promotes_at", sa.DateTime(timezone=True), nullable=True)
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("pending_promotes_at")
            batch.drop_column("pending_since")
            batch.drop_column("pending_secret")
