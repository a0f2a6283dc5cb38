"""API tables: when a job was handed to the job queue; leases of finished jobs cleared.

``queued_at`` is set when the job queue (the broker) took the job. A job the API stored while the
broker was unreachable keeps it empty, and the API's queue sweeper (`QueueSweeper`) sends it once the
broker answers again, so an accepted job is never left behind. Rows from before this revision were
handed to an executor (or to none) at submission: they count as queued.

A finished job's coordinator now clears its lease (``lease_until`` NULL) instead of ending it at the release
time, and the API's job watchdog looks only at leases that are set: every lease is cleared here, so that
jobs finished before this revision are not taken for jobs whose coordinator died. A coordinator running a
job at upgrade time sets its lease again at its next renewal.

Revision ID: api0007
Revises: api0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0007"
down_revision: str | None = "api0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_api_manifests_queued_at", ["queued_at"])
        batch.create_index("ix_api_manifests_lease_until", ["lease_until"])
    op.execute("UPDATE api_manifests SET queued_at = created_at, lease_until = NULL")


def downgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.drop_index("ix_api_manifests_lease_until")
        batch.drop_index("ix_api_manifests_queued_at")
        batch.drop_column("queued_at")
