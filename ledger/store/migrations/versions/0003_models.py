"""Models: each trained model's hash and version, and the state of its on-chain ``recordModel``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEX32 = sa.String(length=66)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("job_id", HEX32, nullable=False),
        sa.Column("model_hash", HEX32, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", HEX32, nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'submitted', 'confirmed')", name=op.f("ck_models_status")),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.job_id"], name=op.f("fk_models_job_id_jobs")),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_models")),
    )
    op.create_index("ix_models_status", "models", ["status"])


def downgrade() -> None:
    op.drop_index("ix_models_status", table_name="models")
    op.drop_table("models")
