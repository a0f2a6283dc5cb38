"""Trained models' anchoring state in the SQL ledger store (``models`` rows; the ORM tables are in
``models.py``).
"""

from __future__ import annotations

from sqlalchemy import select

from secureflow.ledger.errors import StoreConflictError, StoreNotFoundError
from secureflow.ledger.store.models import ModelOrm, utcnow
from secureflow.ledger.store.schemas import MODEL_STATUSES, ModelRow, ModelStatus, NewModel
from secureflow.ledger.store.sqlbase import SqlStoreBase, _hex32, _to


class ModelsMixin(SqlStoreBase):
    """The store's model rows."""

    def accept_model(self, model: NewModel) -> ModelRow:
        now = utcnow()
        with self._tx(write=True) as s:
            self._locked_job(s, model.job_id)
            row = s.get(ModelOrm, (model.model_id, model.version), with_for_update=True)
            if row is not None:
                if row.model_hash != model.model_hash or row.job_id != model.job_id:
                    raise StoreConflictError(
                        f"model {model.model_id} v{model.version} is recorded with hash {row.model_hash} "
                        f"(job {row.job_id}); refusing hash {model.model_hash}",
                        hint="a new model needs a new version",
                    )
                return _to(ModelRow, row)
            row = ModelOrm(
                **model.model_dump(),
                status="pending",
                tx_hash=None,
                block_number=None,
                accepted_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
            return _to(ModelRow, row)

    def models(self, *, status: ModelStatus | None = None, job_id: str | None = None) -> list[ModelRow]:
        query = select(ModelOrm)
        if status is not None:
            query = query.where(ModelOrm.status == status)
        if job_id is not None:
            query = query.where(ModelOrm.job_id == _hex32(job_id))
        with self._tx(write=False) as s:
            rows = s.scalars(query.order_by(ModelOrm.accepted_at, ModelOrm.model_id, ModelOrm.version))
            return [_to(ModelRow, row) for row in rows]

    def mark_model(
        self,
        model_id: str,
        version: int,
        status: ModelStatus,
        *,
        tx_hash: str | None,
        block: int | None,
        reason: str | None = None,
    ) -> ModelRow:
        if status not in MODEL_STATUSES:
            raise ValueError(f"model status must be one of {', '.join(MODEL_STATUSES)}, got {status!r}")
        if status == "failed" and not reason:
            raise ValueError("a failed model needs its reason")
        with self._tx(write=True) as s:
            row = s.get(ModelOrm, (model_id, version), with_for_update=True)
            if row is None:
                raise StoreNotFoundError(f"no model {model_id} v{version} in the ledger store")
            row.status = status
            row.tx_hash = None if tx_hash is None else _hex32(tx_hash)
            row.block_number = block
            row.failure_reason = reason[:2000] if reason else None
            row.updated_at = utcnow()
            return _to(ModelRow, row)
