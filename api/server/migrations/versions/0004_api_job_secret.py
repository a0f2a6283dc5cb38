"""API tables: the job secret beside a submitted manifest (salt of its manifest and parameter commitments).

Revision ID: api0004
Revises: api0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0004"
down_revision: str | None = "api0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.add_column(sa.Column("job_secret", sa.String(66), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.drop_column("job_secret")
