"""Why a job ended, and finding jobs that stopped moving.

Jobs: ``reason`` (None while running or completed; the failed step, the consent refusals, the
executor's failure or who cancelled, for a failed or cancelled job), and an index on
``(status, updated_at)`` for the running jobs with no progress since a time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_index("ix_jobs_status_updated_at", "jobs", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_updated_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reason")
