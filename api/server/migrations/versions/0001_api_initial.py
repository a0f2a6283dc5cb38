"""API tables: members (roles, on-chain addresses), hashed API keys, job manifests, audit record index.

Revision ID: api0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_members",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("address", sa.String(42), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'member', 'service', 'auditor')", name="ck_api_members_role"),
        sa.UniqueConstraint("name", name="uq_api_members_name"),
        sa.UniqueConstraint("address", "role", name="uq_api_members_address_role"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(24), primary_key=True),
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("api_members.id"), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
    )
    op.create_index("ix_api_keys_member_id", "api_keys", ["member_id"])
    op.create_table(
        "api_manifests",
        sa.Column("job_id", sa.String(66), primary_key=True),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
    )
    op.create_table(
        "api_record_index",
        sa.Column("record_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("job_id", sa.String(66), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_api_record_index_algorithm", "api_record_index", ["algorithm", "record_id"])
    op.create_index("ix_api_record_index_job", "api_record_index", ["job_id", "record_id"])
    op.create_index("ix_api_record_index_started", "api_record_index", ["started_at_ms"])


def downgrade() -> None:
    op.drop_table("api_record_index")
    op.drop_table("api_manifests")
    op.drop_index("ix_api_keys_member_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("api_members")
