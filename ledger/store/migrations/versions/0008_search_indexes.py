"""Indexes for the console's search: a record, a model or a transaction found by its hash.

``GET /v1/search`` looks a 32-byte hash up as a job id (the primary key), a step record's hash, a model's
hash and a transaction's hash (the batch that anchored records, and every indexed ledger event: consents,
opens, models, closes). Each is one index lookup, never a scan of the records or events.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_step_records_record_hash", "step_records", "record_hash"),
    ("ix_models_model_hash", "models", "model_hash"),
    ("ix_batches_tx_hash", "batches", "tx_hash"),
    ("ix_chain_events_tx_hash", "chain_events", "tx_hash"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _column in reversed(INDEXES):
        op.drop_index(name, table_name=table)
