"""API tables: the anchoring service a job is bound to (the only service key that may post its steps).

Revision ID: api0005
Revises: api0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0005"
down_revision: str | None = "api0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.add_column(sa.Column("service", sa.String(42), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_manifests") as batch:
        batch.drop_column("service")
