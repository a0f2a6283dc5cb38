"""Jobs in the SQL ledger store: create, read, page, status changes and the on-chain close."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from secureflow.ledger.errors import DuplicateJobError, InvalidStateError
from secureflow.ledger.store.models import JobOrm, utcnow
from secureflow.ledger.store.schemas import (
    CHAIN_STATUSES,
    CLOSE_STATUSES,
    JOB_STATUSES,
    TERMINAL_JOB_STATUSES,
    ChainStatus,
    CloseStatus,
    Job,
    JobStatus,
    NewJob,
    job_reason,
)
from secureflow.ledger.store.sqlbase import SqlStoreBase, _hex32, _to, _uint


class JobsMixin(SqlStoreBase):
    """The store's jobs (``jobs`` table)."""

    def create_job(self, job: NewJob) -> Job:
        now = utcnow()
        with self._tx(write=True) as s:
            if s.get(JobOrm, job.job_id) is not None:
                raise DuplicateJobError(f"job {job.job_id} already exists")
            row = JobOrm(
                job_id=job.job_id,
                manifest_hash=job.manifest_hash,
                creator=job.creator,
                parties=list(job.parties),
                salt=job.salt,
                status="created",
                chain_status="pending",
                created_tx_hash=None,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            try:
                s.flush()
            except IntegrityError as exc:
                raise DuplicateJobError(f"job {job.job_id} already exists") from exc
            return _to(Job, row)

    def get_job(self, job_id: str) -> Job | None:
        with self._tx(write=False) as s:
            row = s.get(JobOrm, _hex32(job_id))
            return None if row is None else _to(Job, row)

    def list_jobs(self, limit: int = 100, offset: int = 0) -> list[Job]:
        _uint(limit, "limit", 10_000)
        _uint(offset, "offset")
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(JobOrm).order_by(JobOrm.created_at.desc(), JobOrm.job_id).limit(limit).offset(offset)
            )
            return [_to(Job, row) for row in rows]

    def update_job(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        chain_status: ChainStatus | None = None,
        created_tx_hash: str | None = None,
        reason: str | None = None,
        hold_close: bool = False,
    ) -> Job:
        job_id = _hex32(job_id)
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
        if reason is not None and status not in ("failed", "cancelled", "rejected"):
            raise ValueError(
                "a job's reason goes with status failed, cancelled or rejected (why it did not complete)"
            )
        why = job_reason(reason) if reason is not None and reason.strip() else None
        if chain_status is not None and chain_status not in CHAIN_STATUSES:
            raise ValueError(f"chain status must be one of {', '.join(CHAIN_STATUSES)}, got {chain_status!r}")
        tx_hash = None if created_tx_hash is None else _hex32(created_tx_hash)
        with self._tx(write=True) as s:
            row = self._locked_job(s, job_id)
            if status is not None and status != row.status:
                if row.status in TERMINAL_JOB_STATUSES or status == "created":
                    raise InvalidStateError(f"job {job_id} is {row.status}: it cannot become {status}")
                row.status = status
                row.reason = why
                closes = status in TERMINAL_JOB_STATUSES and status != "rejected" and not hold_close
                if closes and row.close_status is None:
                    row.close_status = "pending"
            elif why is not None and row.reason is None:
                row.reason = why  # the job ended this way already, without saying why: the first reason stays
            if chain_status is not None:
                row.chain_status = chain_status
            if tx_hash is not None:
                row.created_tx_hash = tx_hash
            row.updated_at = utcnow()
            return _to(Job, row)

    def release_close(self, job_id: str) -> None:
        with self._tx(write=True) as s:
            row = self._locked_job(s, _hex32(job_id))
            if row.status in TERMINAL_JOB_STATUSES and row.status != "rejected" and row.close_status is None:
                row.close_status = "pending"
                row.updated_at = utcnow()

    def stuck_jobs(
        self, idle_since: datetime, *, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Job]:
        _uint(limit, "limit", 10_000)
        query = select(JobOrm).where(JobOrm.status == "running", JobOrm.updated_at <= idle_since)
        if job_ids is not None:
            query = query.where(JobOrm.job_id.in_([_hex32(j) for j in job_ids]))
        with self._tx(write=False) as s:
            rows = s.scalars(query.order_by(JobOrm.updated_at, JobOrm.job_id).limit(limit))
            return [_to(Job, row) for row in rows]

    def count_stuck_jobs(self, idle_since: datetime) -> int:
        with self._tx(write=False) as s:
            count = s.scalar(
                select(func.count())
                .select_from(JobOrm)
                .where(JobOrm.status == "running", JobOrm.updated_at <= idle_since)
            )
            return int(count or 0)

    def count_jobs_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
        with self._tx(write=False) as s:
            for status, count in s.execute(select(JobOrm.status, func.count()).group_by(JobOrm.status)):
                counts[status] = count
        return counts

    def jobs_to_close(self, status: CloseStatus = "pending", limit: int = 100) -> list[Job]:
        if status not in CLOSE_STATUSES:
            raise ValueError(f"close status must be one of {', '.join(CLOSE_STATUSES)}, got {status!r}")
        _uint(limit, "limit", 10_000)
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(JobOrm)
                .where(JobOrm.close_status == status, JobOrm.chain_status == "confirmed")
                .order_by(JobOrm.updated_at, JobOrm.job_id)
                .limit(limit)
            )
            return [_to(Job, row) for row in rows]

    def jobs_closed_after(self, block_number: int) -> list[Job]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(JobOrm).where(JobOrm.close_block > block_number).order_by(JobOrm.close_block)
            )
            return [_to(Job, row) for row in rows]

    def mark_job_close(
        self,
        job_id: str,
        status: CloseStatus,
        *,
        tx_hash: str | None = None,
        block: int | None = None,
        reason: str | None = None,
    ) -> Job:
        if status not in CLOSE_STATUSES:
            raise ValueError(f"close status must be one of {', '.join(CLOSE_STATUSES)}, got {status!r}")
        if status == "failed" and not reason:
            raise ValueError("a failed close needs its reason")
        with self._tx(write=True) as s:
            row = self._locked_job(s, _hex32(job_id))
            if row.status not in TERMINAL_JOB_STATUSES:
                raise InvalidStateError(f"job {row.job_id} is {row.status}: only a finished job is closed")
            row.close_status = status
            row.close_tx_hash = None if tx_hash is None else _hex32(tx_hash)
            row.close_block = block
            row.close_reason = reason[:2000] if reason else None
            row.updated_at = utcnow()
            return _to(Job, row)
