"""On-chain closes of jobs, and models the contract refused.

Jobs: ``close_status`` (None until the job finishes; pending, submitted, confirmed or failed),
the close transaction and block, and the reason of a refused close. Models: status ``failed``
with ``failure_reason`` (a refused ``recordModel`` is not retried).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEX32 = sa.String(length=66)
STATUS = sa.String(length=16)
CLOSE_STATUSES = "close_status IN ('pending', 'submitted', 'confirmed', 'failed')"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("close_status", STATUS, nullable=True))
        batch.add_column(sa.Column("close_tx_hash", HEX32, nullable=True))
        batch.add_column(sa.Column("close_block", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("close_reason", sa.Text(), nullable=True))
        batch.create_check_constraint(op.f("ck_jobs_close_status"), CLOSE_STATUSES)
    op.create_index("ix_jobs_close_status_chain_status", "jobs", ["close_status", "chain_status"])
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch.drop_constraint(op.f("ck_models_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_models_status"), "status IN ('pending', 'submitted', 'confirmed', 'failed')"
        )


def downgrade() -> None:
    op.execute("UPDATE models SET status = 'pending' WHERE status = 'failed'")
    with op.batch_alter_table("models") as batch:
        batch.drop_constraint(op.f("ck_models_status"), type_="check")
        batch.create_check_constraint(
            op.f("ck_models_status"), "status IN ('pending', 'submitted', 'confirmed')"
        )
        batch.drop_column("failure_reason")
    op.drop_index("ix_jobs_close_status_chain_status", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_close_status"), type_="check")
        batch.drop_column("close_reason")
        batch.drop_column("close_block")
        batch.drop_column("close_tx_hash")
        batch.drop_column("close_status")
