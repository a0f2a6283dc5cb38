"""API tables: the ``metrics`` role (a key that may scrape ``/metrics`` and nothing else).

Revision ID: api0003
Revises: api0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "api0003"
down_revision: str | None = "api0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "role IN ('admin', 'member', 'service', 'auditor')"
_NEW = "role IN ('admin', 'member', 'service', 'auditor', 'metrics')"


def _replace_check(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode (render_as_batch) copies the table with the new one.
    with op.batch_alter_table("api_members", recreate="auto") as batch:
        batch.drop_constraint("ck_api_members_role", type_="check")
        batch.create_check_constraint("ck_api_members_role", condition)


def upgrade() -> None:
    _replace_check(_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM api_keys WHERE member_id IN (SELECT id FROM api_members WHERE role = 'metrics')")
    op.execute("DELETE FROM api_members WHERE role = 'metrics'")
    _replace_check(_OLD)
