"""A job the parties' nodes refused: status ``rejected``.

A job whose consent a party's node refused (its policy, its pinned deployment) never opens on
chain; it ends ``rejected`` with every refusing node's reason in ``reason``, which is not a
failure of anything that ran.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-16
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = "status IN ('created', 'running', 'completed', 'failed', 'cancelled')"
AFTER = "status IN ('created', 'running', 'completed', 'failed', 'cancelled', 'rejected')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), AFTER)


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'failed' WHERE status = 'rejected'")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_jobs_status"), BEFORE)
