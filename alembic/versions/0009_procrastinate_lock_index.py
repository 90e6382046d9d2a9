"""an index on procrastinate's jobs by lock, for the event workers' per-endpoint locks

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

procrastinate fetches a job only if no running or earlier waiting job has the same lock; its
own index for that check leads with the job id, so with a backlog of locked jobs (every event
job carries its endpoint's slot lock) each fetch read the whole index once per waiting job:
150 ms a fetch with 1,600 jobs waiting, the one worker fetching at a time.  By lock first, a
fetch takes a few milliseconds whatever the backlog.  PostgreSQL only, in procrastinate's
schema; nothing on SQLite.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "procrastinate_jobs_lock_active_vizochok"


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"CREATE INDEX {INDEX} ON procrastinate.procrastinate_jobs (lock, id) "
            "WHERE status IN ('todo', 'doing')"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS procrastinate.{INDEX}")
