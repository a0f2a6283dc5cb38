"""Sender nonces in the SQL ledger store: one atomic upsert per allocation (``INSERT ... ON CONFLICT
DO UPDATE ... RETURNING``), safe for concurrent callers on both engines, the first allocation included.
"""

from __future__ import annotations

from sqlalchemy import case

from secureflow.ledger.store.models import NonceOrm, utcnow
from secureflow.ledger.store.schemas import MAX_UINT64
from secureflow.ledger.store.sqlbase import _ADDRESS, SqlStoreBase, _uint


class NoncesMixin(SqlStoreBase):
    """The store's next nonce per (chain, sender)."""

    def allocate_nonce(self, chain_id: int, address: str, chain_pending_nonce: int) -> int:
        _uint(chain_id, "chain_id")
        _uint(chain_pending_nonce, "chain_pending_nonce", MAX_UINT64 - 1)
        address = _ADDRESS.validate_python(address)
        now = utcnow()
        stored = NonceOrm.next_nonce
        with self._tx(write=True) as s:
            stmt = self._upsert(
                s,
                NonceOrm,
                {
                    "chain_id": chain_id,
                    "address": address,
                    "next_nonce": chain_pending_nonce + 1,
                    "updated_at": now,
                },
                {
                    "next_nonce": case((stored > chain_pending_nonce, stored), else_=chain_pending_nonce) + 1,
                    "updated_at": now,
                },
            )
            next_nonce = s.execute(stmt.returning(NonceOrm.next_nonce)).scalar_one()
            return int(next_nonce) - 1

    def reset_nonce(self, chain_id: int, address: str, next_nonce: int) -> None:
        _uint(chain_id, "chain_id")
        _uint(next_nonce, "next_nonce")
        address = _ADDRESS.validate_python(address)
        now = utcnow()
        with self._tx(write=True) as s:
            values = {"chain_id": chain_id, "address": address, "next_nonce": next_nonce, "updated_at": now}
            s.execute(self._upsert(s, NonceOrm, values, {"next_nonce": next_nonce, "updated_at": now}))

    def peek_nonce(self, chain_id: int, address: str) -> int | None:
        address = _ADDRESS.validate_python(address)
        with self._tx(write=False) as s:
            row = s.get(NonceOrm, (chain_id, address))
            return None if row is None else row.next_nonce
