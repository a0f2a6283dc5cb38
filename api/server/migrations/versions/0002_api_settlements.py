"""API tables: contribution proposals posted through the API and the parties' approval signatures.

Revision ID: api0002
Revises: api0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0002"
down_revision: str | None = "api0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_settlement_proposals",
        sa.Column("job_id", sa.String(66), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("inputs_hash", sa.String(66), nullable=False),
        sa.Column("proposal_json", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_api_settlement_proposals"),
    )
    op.create_table(
        "api_settlement_approvals",
        sa.Column("job_id", sa.String(66), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("party", sa.String(42), nullable=False),
        sa.Column("signature", sa.String(132), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", "party", name="pk_api_settlement_approvals"),
        sa.ForeignKeyConstraint(
            ["job_id", "seq"],
            ["api_settlement_proposals.job_id", "api_settlement_proposals.seq"],
            name="fk_api_settlement_approvals_proposal",
        ),
    )


def downgrade() -> None:
    op.drop_table("api_settlement_approvals")
    op.drop_table("api_settlement_proposals")
