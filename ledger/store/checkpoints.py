"""Named chain-follower checkpoints in the SQL ledger store (block number and hash)."""

from __future__ import annotations

from secureflow.ledger.store.models import CheckpointOrm, utcnow
from secureflow.ledger.store.schemas import Checkpoint
from secureflow.ledger.store.sqlbase import SqlStoreBase, _hex32, _to, _uint


class CheckpointsMixin(SqlStoreBase):
    """The store's checkpoints."""

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        with self._tx(write=False) as s:
            row = s.get(CheckpointOrm, name)
            return None if row is None else _to(Checkpoint, row)

    def set_checkpoint(self, name: str, block_number: int, block_hash: str) -> Checkpoint:
        if not name or len(name) > 100:
            raise ValueError("checkpoint name must be 1 to 100 characters")
        _uint(block_number, "block_number")
        block_hash = _hex32(block_hash)
        now = utcnow()
        with self._tx(write=True) as s:
            values = {"name": name, "block_number": block_number, "block_hash": block_hash, "updated_at": now}
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )
            return _to(Checkpoint, values)
