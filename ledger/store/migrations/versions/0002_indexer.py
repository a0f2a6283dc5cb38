"""Indexer tables: chain_events (ledger-contract events on the canonical chain) and indexed_blocks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEX32 = sa.String(length=66)


def upgrade() -> None:
    op.create_table(
        "chain_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", HEX32, nullable=False),
        sa.Column("tx_hash", HEX32, nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("batch_id", HEX32, nullable=True),
        sa.Column("root", HEX32, nullable=True),
        sa.Column("job_id", HEX32, nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_events")),
        sa.UniqueConstraint("block_hash", "log_index", name=op.f("uq_chain_events_block_hash_log_index")),
    )
    op.create_index("ix_chain_events_block_number", "chain_events", ["block_number"])
    op.create_index("ix_chain_events_batch_id", "chain_events", ["batch_id"])
    op.create_index("ix_chain_events_job_id", "chain_events", ["job_id"])
    op.create_table(
        "indexed_blocks",
        sa.Column("block_number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("block_hash", HEX32, nullable=False),
        sa.Column("parent_hash", HEX32, nullable=False),
        sa.PrimaryKeyConstraint("block_number", name=op.f("pk_indexed_blocks")),
    )


def downgrade() -> None:
    op.drop_table("indexed_blocks")
    op.drop_index("ix_chain_events_job_id", table_name="chain_events")
    op.drop_index("ix_chain_events_batch_id", table_name="chain_events")
    op.drop_index("ix_chain_events_block_number", table_name="chain_events")
    op.drop_table("chain_events")
