"""Merkle batches in the SQL ledger store: create one from pending records, move it through
submitted/mined/confirmed, release or requeue it after a failure or reorg, and the receipt's reads.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from secureflow.ledger.errors import BatchConflictError, InvalidStateError, StoreError, UnknownBatchError
from secureflow.ledger.store.engine import scrub_password, unavailable
from secureflow.ledger.store.models import BatchOrm, StepRecordOrm, utcnow
from secureflow.ledger.store.schemas import Batch, StepRecordRow
from secureflow.ledger.store.sqlbase import (
    _ADDRESS,
    _REASON,
    SqlStoreBase,
    _chunks,
    _hex32,
    _ids_match,
    _to,
    _uint,
)


class BatchesMixin(SqlStoreBase):
    """The store's batches (``batches``) and the status of the records in them."""

    def _locked_batch(self, s: Session, batch_id: str) -> BatchOrm:
        row = s.get(BatchOrm, _hex32(batch_id), with_for_update=True)
        if row is None:
            raise UnknownBatchError(f"no batch {batch_id} in the ledger store")
        return row

    def create_batch(self, batch_id: str, root: str, record_ids: list[int]) -> Batch:
        batch_id, root = _hex32(batch_id), _hex32(root)
        ids = list(record_ids)
        if not ids:
            raise ValueError("a batch needs at least one record id")
        if len(set(ids)) != len(ids):
            raise ValueError("record ids in a batch must be unique")
        now = utcnow()
        with self._tx(write=True) as s:
            row = s.get(BatchOrm, batch_id, with_for_update=True)
            if row is not None and not (row.status in ("reorged", "failed") and row.root == root):
                raise BatchConflictError(
                    f"batch {batch_id} already exists (status {row.status}, root {row.root})"
                )
            same_root = s.scalars(select(BatchOrm.batch_id).where(BatchOrm.root == root)).first()
            if same_root is not None and same_root != batch_id:
                raise BatchConflictError(f"root {root} already belongs to batch {same_root}")
            if row is None:
                row = BatchOrm(batch_id=batch_id, root=root, created_at=now)
                s.add(row)
            # A new batch, or a reorged/failed one rebuilt from the same records (same root): start over.
            row.record_count, row.status, row.failure_reason, row.updated_at = len(ids), "built", None, now
            row.tx_hash = row.sender = row.block_hash = None
            row.nonce = row.block_number = None
            try:
                s.flush()
            except IntegrityError as exc:
                raise BatchConflictError(f"batch {batch_id} or root {root} was created concurrently") from exc
            records = cast(Table, StepRecordOrm.__table__)
            result = s.execute(
                update(records)
                .where(
                    _ids_match(records.c.id, ids, s.get_bind().dialect.name), records.c.status == "pending"
                )
                .values(status="submitted", batch_id=batch_id, updated_at=now)
            )
            moved = cast(CursorResult[Any], result).rowcount
            self._touch_batch(s, batch_id)
            if moved != len(ids):
                moved_ids = set(self._moved_into(s, ids, batch_id))
                refused = [i for i in ids if i not in moved_ids]
                raise InvalidStateError(
                    f"records {refused[:20]} are not pending (unknown, batched, confirmed or failed); "
                    f"batch {batch_id} was not created",
                    hint="take fresh records from claim_pending() and build the batch again",
                )
            return _to(Batch, row)

    @staticmethod
    def _moved_into(s: Session, ids: list[int], batch_id: str) -> list[int]:
        found: list[int] = []
        for chunk in _chunks(ids):
            found.extend(
                s.scalars(
                    select(StepRecordOrm.id).where(
                        StepRecordOrm.id.in_(chunk), StepRecordOrm.batch_id == batch_id
                    )
                )
            )
        return found

    def get_batch(self, batch_id: str) -> Batch | None:
        with self._tx(write=False) as s:
            row = s.get(BatchOrm, _hex32(batch_id))
            return None if row is None else _to(Batch, row)

    def records_for_batch(self, batch_id: str) -> list[StepRecordRow]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(StepRecordOrm)
                .where(StepRecordOrm.batch_id == _hex32(batch_id))
                .order_by(StepRecordOrm.id)
            )
            return [_to(StepRecordRow, row) for row in rows]

    # Light reads for the API's receipts: Core statements on one connection, no ORM objects.
    def batch_leaves(self, batch_id: str) -> list[str]:
        records = StepRecordOrm.__table__.c
        with self._tx(write=False) as s:
            return list(
                s.connection().scalars(
                    select(records.leaf).where(records.batch_id == _hex32(batch_id)).order_by(records.id)
                )
            )

    _RECORD_WITH_BATCH = (
        select(
            *StepRecordOrm.__table__.c,
            *(column.label(f"b_{column.name}") for column in BatchOrm.__table__.c),
        )
        .select_from(
            StepRecordOrm.__table__.outerjoin(
                BatchOrm.__table__, BatchOrm.__table__.c.batch_id == StepRecordOrm.__table__.c.batch_id
            )
        )
        .where(
            StepRecordOrm.__table__.c.job_id == bindparam("job_id"),
            StepRecordOrm.__table__.c.seq == bindparam("seq"),
        )
    )

    def record_with_batch(self, job_id: str, seq: int) -> tuple[StepRecordRow, Batch | None] | None:
        params = {"job_id": _hex32(job_id), "seq": seq}
        try:
            with self._engine.connect() as connection:  # one statement: no ORM session needed
                found = connection.execute(self._RECORD_WITH_BATCH, params).mappings().one_or_none()
        except (OperationalError, InterfaceError) as exc:
            raise unavailable(self.url, exc) from exc
        except DBAPIError as exc:
            reason = scrub_password(str(exc.orig).strip().splitlines()[0], self.url)
            raise StoreError(f"the ledger database at {self.masked_url} refused the read: {reason}") from exc
        if found is None:
            return None
        row = StepRecordRow.model_construct(**{name: found[name] for name in StepRecordRow.model_fields})
        if found["b_batch_id"] is None:
            return row, None
        batch = Batch.model_construct(**{name: found[f"b_{name}"] for name in Batch.model_fields})
        return row, batch

    def mark_batch_submitted(self, batch_id: str, tx_hash: str, sender: str, nonce: int) -> Batch:
        tx_hash, sender = _hex32(tx_hash), _ADDRESS.validate_python(sender)
        _uint(nonce, "nonce")
        with self._tx(write=True) as s:
            row = self._locked_batch(s, batch_id)
            if row.status not in ("built", "submitted"):
                raise InvalidStateError(f"batch {row.batch_id} is {row.status}: it cannot be (re)submitted")
            now = utcnow()
            row.status, row.tx_hash, row.sender, row.nonce = "submitted", tx_hash, sender, nonce
            row.block_number = row.block_hash = None
            row.updated_at = now
            self._touch_batch(s, row.batch_id)
            s.execute(
                update(StepRecordOrm)
                .where(StepRecordOrm.batch_id == row.batch_id, StepRecordOrm.status == "pending")
                .values(status="submitted", updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return _to(Batch, row)

    def mark_batch_confirmed(self, batch_id: str, block_number: int, block_hash: str) -> Batch:
        block_hash = _hex32(block_hash)
        _uint(block_number, "block_number")
        now = utcnow()
        with self._tx(write=True) as s:
            row = self._locked_batch(s, batch_id)
            if row.status not in ("built", "submitted", "confirmed"):
                raise InvalidStateError(
                    f"batch {row.batch_id} is {row.status}: its records were released; "
                    "confirm the batch rebuilt from them instead"
                )
            if row.block_hash is not None and (row.block_number, row.block_hash) != (
                block_number,
                block_hash,
            ):
                # Compare-and-set: the batch was re-mined or requeued since the caller looked at it.
                raise InvalidStateError(
                    f"batch {row.batch_id} is mined in block {row.block_number} ({row.block_hash}), "
                    f"not {block_number} ({block_hash})",
                    hint="read the batch again; it was re-anchored after a reorg",
                )
            row.status, row.block_number, row.block_hash, row.updated_at = (
                "confirmed",
                block_number,
                block_hash,
                now,
            )
            self._touch_batch(s, row.batch_id)
            s.execute(
                update(StepRecordOrm)
                .where(StepRecordOrm.batch_id == row.batch_id, StepRecordOrm.status == "submitted")
                .values(status="confirmed", confirmed_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return _to(Batch, row)

    def _release(self, batch_id: str, reason: str, new_status: str, allowed: tuple[str, ...]) -> Batch:
        reason = _REASON.validate_python(reason)
        now = utcnow()
        with self._tx(write=True) as s:
            row = self._locked_batch(s, batch_id)
            if row.status == new_status:
                return _to(Batch, row)
            if row.status not in allowed:
                raise InvalidStateError(
                    f"batch {row.batch_id} is {row.status}: it cannot become {new_status}"
                )
            row.status, row.failure_reason, row.updated_at = new_status, reason, now
            self._touch_batch(s, row.batch_id)
            s.execute(
                update(StepRecordOrm)
                .where(
                    StepRecordOrm.batch_id == row.batch_id,
                    StepRecordOrm.status.in_(("submitted", "confirmed")),
                )
                .values(status="pending", batch_id=None, confirmed_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return _to(Batch, row)

    def mark_batch_reverted_to_pending(self, batch_id: str, reason: str) -> Batch:
        return self._release(batch_id, reason, "reorged", ("built", "submitted", "confirmed"))

    def mark_batch_failed(self, batch_id: str, reason: str) -> Batch:
        return self._release(batch_id, reason, "failed", ("built", "submitted"))

    def requeue_batch(self, batch_id: str, reason: str) -> Batch:
        reason = _REASON.validate_python(reason)
        now = utcnow()
        with self._tx(write=True) as s:
            row = self._locked_batch(s, batch_id)
            if row.status not in ("built", "submitted", "confirmed"):
                raise InvalidStateError(f"batch {row.batch_id} is {row.status}: it cannot be re-sent")
            row.status, row.failure_reason, row.updated_at = "built", reason, now
            row.tx_hash = row.sender = row.block_hash = None
            row.nonce = row.block_number = None
            self._touch_batch(s, row.batch_id)
            s.execute(
                update(StepRecordOrm)
                .where(
                    StepRecordOrm.batch_id == row.batch_id,
                    StepRecordOrm.status.in_(("submitted", "confirmed")),
                )
                .values(status="pending", confirmed_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            return _to(Batch, row)

    def mark_batch_mined(self, batch_id: str, block_number: int, block_hash: str) -> Batch:
        block_hash = _hex32(block_hash)
        _uint(block_number, "block_number")
        with self._tx(write=True) as s:
            row = self._locked_batch(s, batch_id)
            if row.status != "submitted":
                raise InvalidStateError(
                    f"batch {row.batch_id} is {row.status}: only a submitted batch is mined"
                )
            row.block_number, row.block_hash, row.updated_at = block_number, block_hash, utcnow()
            return _to(Batch, row)

    def batches_in_flight(self, limit: int = 1000) -> list[Batch]:
        _uint(limit, "limit", 100_000)
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(BatchOrm)
                .where(BatchOrm.status.in_(("built", "submitted")))
                .order_by(BatchOrm.created_at, BatchOrm.batch_id)
                .limit(limit)
            )
            return [_to(Batch, row) for row in rows]

    def confirmed_batch_ids(self) -> list[str]:
        with self._tx(write=False) as s:
            ids = s.scalars(select(BatchOrm.batch_id).where(BatchOrm.status == "confirmed"))
            return [str(batch_id) for batch_id in ids]

    def batches_anchored_after(self, block_number: int) -> list[Batch]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(BatchOrm)
                .where(
                    BatchOrm.status.in_(("submitted", "confirmed")),
                    BatchOrm.block_number.is_not(None),
                    BatchOrm.block_number > block_number,
                )
                .order_by(BatchOrm.block_number)
            )
            return [_to(Batch, row) for row in rows]
