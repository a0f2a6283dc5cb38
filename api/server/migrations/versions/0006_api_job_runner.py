"""API tables: which coordinator runs a job, and until when its lease holds.

A coordinator worker claims a job before running it (``runner``, ``lease_until``) and renews the
lease while it runs; a task delivered twice finds the job claimed and does not run it again, and a
job whose coordinator died (its lease lapsed) is taken over by the redelivered task.

Revision ID: api0006
Revises: api0005
Create Date: 2026-12-16
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0006"
down_revision: str | None = "api0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.add_column(sa.Column("runner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("runner")
