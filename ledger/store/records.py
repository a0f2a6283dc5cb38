"""The step-record outbox of the SQL ledger store: accept records (one or a chunk), read them,
count them, hand pending leaves to the batcher.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, case, func, select, text, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secureflow.ledger.errors import (
    InvalidStateError,
    RecordConflictError,
    StoreError,
    UnknownJobError,
    UnknownRecordError,
)
from secureflow.ledger.store.base import PendingLeaf
from secureflow.ledger.store.models import JobOrm, StepRecordOrm, UtcDateTime, utcnow
from secureflow.ledger.store.schemas import RECORD_STATUSES, NewStepRecord, StepRecordRow
from secureflow.ledger.store.sqlbase import _IN_CHUNK, _REASON, SqlStoreBase, _hex32, _to, _uint


def _closing(job_id: str, status: str) -> InvalidStateError:
    return InvalidStateError(
        f"job {job_id} is {status} and its close on chain is under way: no new step record is accepted",
        hint="a job's records come before its end; submit a new job to run more steps",
    )


def _record_conflict(rec: NewStepRecord, stored_hash: str) -> RecordConflictError:
    return RecordConflictError(
        f"job {rec.job_id} already has step {rec.seq} with record hash {stored_hash}; "
        f"refusing a different record (hash {rec.record_hash}) under the same sequence number"
    )


_MAX_INT64 = 2**63 - 1
_RECORD_COLUMNS = "job_id, seq, record_json, record_hash, leaf, status, accepted_at, updated_at"
_INSERT_RECORDS_POSTGRESQL = text(
    f"INSERT INTO step_records ({_RECORD_COLUMNS}) "  # noqa: S608 - column names are module constants; values are bound parameters
    "SELECT j, q, r, h, l, 'pending', :now, :now "
    "FROM json_to_recordset(CAST(:rows AS JSON)) AS t(j VARCHAR, q BIGINT, r TEXT, h VARCHAR, l VARCHAR) "
    "ON CONFLICT (job_id, seq) DO NOTHING RETURNING id, job_id, seq"
).bindparams(bindparam("now", type_=UtcDateTime()))


class RecordsMixin(SqlStoreBase):
    """The store's step records (``step_records``: the outbox)."""

    def accept_record(self, rec: NewStepRecord, *, after_close: bool = False) -> StepRecordRow:
        with self._tx(write=True) as s:
            job = self._locked_job(s, rec.job_id)  # serialises writers of one job's records
            existing = s.scalars(
                select(StepRecordOrm).where(StepRecordOrm.job_id == rec.job_id, StepRecordOrm.seq == rec.seq)
            ).one_or_none()
            if existing is not None:
                if (existing.record_hash, existing.leaf) == (rec.record_hash, rec.leaf):
                    return _to(StepRecordRow, existing)
                raise _record_conflict(rec, existing.record_hash)
            if job.close_status is not None and not after_close:
                raise _closing(rec.job_id, job.status)
            now = utcnow()
            row = StepRecordOrm(
                job_id=rec.job_id,
                seq=rec.seq,
                record_json=rec.record_json,
                record_hash=rec.record_hash,
                leaf=rec.leaf,
                status="pending",
                batch_id=None,
                failure_reason=None,
                accepted_at=now,
                updated_at=now,
                confirmed_at=None,
            )
            s.add(row)
            job.updated_at = now
            if job.status == "created":
                job.status = "running"
            try:
                s.flush()
            except IntegrityError as exc:
                raise RecordConflictError(
                    f"job {rec.job_id} step {rec.seq} was written concurrently; read it and compare"
                ) from exc
            return _to(StepRecordRow, row)

    def get_record(self, job_id: str, seq: int) -> StepRecordRow | None:
        with self._tx(write=False) as s:
            row = s.scalars(
                select(StepRecordOrm).where(StepRecordOrm.job_id == _hex32(job_id), StepRecordOrm.seq == seq)
            ).one_or_none()
            return None if row is None else _to(StepRecordRow, row)

    def get_record_by_id(self, record_id: int) -> StepRecordRow | None:
        with self._tx(write=False) as s:
            row = s.get(StepRecordOrm, record_id)
            return None if row is None else _to(StepRecordRow, row)

    def records_for_job(self, job_id: str) -> list[StepRecordRow]:
        job_id = _hex32(job_id)
        with self._tx(write=False) as s:
            if s.get(JobOrm, job_id) is None:
                raise UnknownJobError(f"no job {job_id} in the ledger store")
            rows = s.scalars(
                select(StepRecordOrm).where(StepRecordOrm.job_id == job_id).order_by(StepRecordOrm.seq)
            )
            return [_to(StepRecordRow, row) for row in rows]

    def claim_pending(self, limit: int) -> list[StepRecordRow]:
        _uint(limit, "limit", 100_000)
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(StepRecordOrm)
                .where(StepRecordOrm.status == "pending", StepRecordOrm.batch_id.is_(None))
                .order_by(StepRecordOrm.id)
                .limit(limit)
            )
            return [_to(StepRecordRow, row) for row in rows]

    def mark_record_failed(self, record_id: int, reason: str) -> StepRecordRow:
        reason = _REASON.validate_python(reason)
        with self._tx(write=True) as s:
            row = s.get(StepRecordOrm, record_id, with_for_update=True)
            if row is None:
                raise UnknownRecordError(f"no step record with id {record_id}")
            if row.status == "confirmed":
                raise InvalidStateError(
                    f"step record {record_id} (job {row.job_id} step {row.seq}) is already confirmed on chain"
                )
            row.status = "failed"
            row.failure_reason = reason
            row.updated_at = utcnow()
            return _to(StepRecordRow, row)

    def count_records_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(RECORD_STATUSES, 0)
        with self._tx(write=False) as s:
            for status, count in s.execute(
                select(StepRecordOrm.status, func.count()).group_by(StepRecordOrm.status)
            ):
                counts[status] = count
        return counts

    def oldest_unconfirmed_accepted_at(self) -> datetime | None:
        oldest: datetime | None = None
        with self._tx(write=False) as s:
            for status in ("pending", "submitted"):  # ids grow with acceptance: the (status, id) index
                accepted = s.scalar(
                    select(StepRecordOrm.accepted_at)
                    .where(StepRecordOrm.status == status)
                    .order_by(StepRecordOrm.id)
                    .limit(1)
                )
                if accepted is not None and (oldest is None or accepted < oldest):
                    oldest = accepted
        return oldest

    def unanchored_running_jobs(self, accepted_before: datetime, limit: int = 1000) -> list[StepRecordRow]:
        _uint(limit, "limit", 10_000)
        # ids grow with acceptance: a job's lowest waiting id is its longest waiting record
        oldest_per_job = (
            select(func.min(StepRecordOrm.id))
            .join(JobOrm, JobOrm.job_id == StepRecordOrm.job_id)
            .where(
                JobOrm.status == "running",
                StepRecordOrm.status.in_(("pending", "submitted")),
                StepRecordOrm.accepted_at <= accepted_before,
            )
            .group_by(StepRecordOrm.job_id)
        )
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(StepRecordOrm)
                .where(StepRecordOrm.id.in_(oldest_per_job))
                .order_by(StepRecordOrm.id)
                .limit(limit)
            )
            return [_to(StepRecordRow, row) for row in rows]

    def job_record_counts(self, job_id: str) -> tuple[dict[str, int], int | None]:
        counts: dict[str, int] = dict.fromkeys(RECORD_STATUSES, 0)
        highest: int | None = None
        with self._tx(write=False) as s:
            for status, count, top in s.execute(
                select(StepRecordOrm.status, func.count(), func.max(StepRecordOrm.seq))
                .where(StepRecordOrm.job_id == _hex32(job_id))
                .group_by(StepRecordOrm.status)
            ):
                counts[status] = count
                highest = top if highest is None else max(highest, top)
        return counts, highest

    def accept_records(self, recs: Sequence[NewStepRecord]) -> list[StepRecordRow]:
        """One transaction, a fixed number of statements whatever the chunk size (the producer's hot path).

        Each job is locked and started by one UPDATE (in job id order, so concurrent callers cannot
        deadlock); then a single ``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`` writes the
        whole chunk on PostgreSQL, its rows passed as one JSON document (``json_to_recordset``); on
        SQLite one prepared INSERT is run by the driver for every row (``executemany``, no per-row Python
        in SQLAlchemy). No huge parameter lists for the driver to parse. Records
        already stored are then compared with what was sent (idempotent retry, or a conflict that rolls
        the whole call back).
        """
        if not recs:
            return []
        by_key = {(r.job_id, r.seq): r for r in recs}
        if len(by_key) != len(recs):
            raise RecordConflictError("the same (job, seq) appears twice in one call")
        too_big = [r.seq for r in recs if r.seq > _MAX_INT64]
        if too_big:
            raise ValueError(f"seq {too_big[0]} does not fit the database's signed 64-bit seq column")
        now = utcnow()
        with self._tx(write=True) as s:
            closing = {}
            self._touch(s, {r.job_id for r in recs})
            for job_id in sorted({r.job_id for r in recs}):
                status = self._start_job(s, job_id, now)
                if status is not None:
                    closing[job_id] = status
            try:
                ids = self._insert_new_records(s, recs, now)
            except IntegrityError as exc:
                raise RecordConflictError("some of these records were written concurrently; retry") from exc
            late = next((job_id for job_id, _ in ids if job_id in closing), None)
            if late is not None:  # a new record of a job whose close is under way: roll the call back
                raise _closing(late, closing[late])
            existing = self._stored_records(s, [r for r in recs if (r.job_id, r.seq) not in ids])
            if len(ids) + len(existing) != len(recs):  # skipped as a duplicate, yet not visible: a race
                raise RecordConflictError("some of these records were written concurrently; retry")
            for key, old in existing.items():
                rec = by_key[key]
                if (old.record_hash, old.leaf) != (rec.record_hash, rec.leaf):
                    raise _record_conflict(rec, old.record_hash)
        # The rows are built after the commit: on SQLite the write lock is held only for the SQL.
        rows: list[StepRecordRow] = []
        for rec in recs:
            key = (rec.job_id, rec.seq)
            row_id = ids.get(key)
            if row_id is not None:
                rows.append(
                    StepRecordRow.model_validate(
                        {
                            "id": row_id,
                            "job_id": rec.job_id,
                            "seq": rec.seq,
                            "record_json": rec.record_json,
                            "record_hash": rec.record_hash,
                            "leaf": rec.leaf,
                            "status": "pending",
                            "batch_id": None,
                            "failure_reason": None,
                            "accepted_at": now,
                            "updated_at": now,
                            "confirmed_at": None,
                        }
                    )
                )
            else:
                rows.append(_to(StepRecordRow, existing[key]))
        return rows

    @staticmethod
    def _start_job(s: Session, job_id: str, now: datetime) -> str | None:
        """Lock the job's row mark it touched and ``running`` (UnknownJobError if absent); the job's status
        if its close is under way (no new record may join it then), else None."""
        jobs = cast(Table, JobOrm.__table__)
        row = s.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(
                updated_at=now,
                status=case((jobs.c.status == "created", "running"), else_=jobs.c.status),
            )
            .returning(jobs.c.status, jobs.c.close_status)
        ).one_or_none()
        if row is None:
            raise UnknownJobError(f"no job {job_id} in the ledger store")
        return None if row.close_status is None else str(row.status)

    @staticmethod
    def _insert_new_records(
        s: Session, recs: Sequence[NewStepRecord], now: datetime
    ) -> dict[tuple[str, int], int]:
        """Insert the records not stored yet; the new rows' ids by (job id, seq)."""
        if s.get_bind().dialect.name != "postgresql":
            return RecordsMixin._insert_new_records_sqlite(s, recs, now)
        # PostgreSQL: the chunk travels as ONE JSON text parameter, parsed by the server in C. (Arrays of
        # strings are slower: psycopg escapes every quote of every record's JSON in Python.)
        rows = [
            {"j": r.job_id, "q": r.seq, "r": r.record_json, "h": r.record_hash, "l": r.leaf} for r in recs
        ]
        # ensure_ascii=False: text reaches the database as UTF-8, not as \u escapes for it to decode.
        result = s.execute(
            _INSERT_RECORDS_POSTGRESQL, {"rows": json.dumps(rows, ensure_ascii=False), "now": now}
        )
        return {(job_id, int(seq)): int(row_id) for row_id, job_id, seq in result}

    @staticmethod
    def _insert_new_records_sqlite(
        s: Session, recs: Sequence[NewStepRecord], now: datetime
    ) -> dict[tuple[str, int], int]:
        """SQLite: one prepared INSERT run by the driver for every row, then the new ids by rowid range.

        The write transaction (``BEGIN IMMEDIATE``) excludes every other writer, and SQLite gives a new
        row the largest rowid + 1, so the rows inserted here are exactly those above the largest id seen
        before. Should that not hold (rowids exhausted, then chosen at random), the call is refused.
        """
        connection = s.connection()
        dialect = connection.dialect
        stored_now = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
        when = stored_now(now) if stored_now is not None else now
        before = int(connection.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM step_records").scalar_one())
        inserted = connection.exec_driver_sql(
            f"INSERT INTO step_records ({_RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "  # noqa: S608 - column names are module constants; values are bound parameters
            "ON CONFLICT (job_id, seq) DO NOTHING",
            [(r.job_id, r.seq, r.record_json, r.record_hash, r.leaf, when, when) for r in recs],
        ).rowcount
        ids = {
            (job_id, int(seq)): int(row_id)
            for row_id, job_id, seq in connection.exec_driver_sql(
                "SELECT id, job_id, seq FROM step_records WHERE id > ?", (before,)
            )
        }
        if len(ids) != inserted or not ids.keys() <= {(r.job_id, r.seq) for r in recs}:
            raise StoreError(  # rolls the call back: nothing is written
                "the SQLite ledger database gave new step records ids that are not above the largest "
                "existing id; cannot tell the new rows from stored ones",
                hint="step_records ids are exhausted, or a writer bypassed the write lock: check the file",
            )
        return ids

    @staticmethod
    def _stored_records(s: Session, recs: Sequence[NewStepRecord]) -> dict[tuple[str, int], StepRecordOrm]:
        """The stored rows under the keys of ``recs`` (records sent again: a retry or a conflict)."""
        found: dict[tuple[str, int], StepRecordOrm] = {}
        for job_id in sorted({r.job_id for r in recs}):
            seqs = [r.seq for r in recs if r.job_id == job_id]
            for start in range(0, len(seqs), _IN_CHUNK):
                query = select(StepRecordOrm).where(
                    StepRecordOrm.job_id == job_id, StepRecordOrm.seq.in_(seqs[start : start + _IN_CHUNK])
                )
                found.update(((row.job_id, row.seq), row) for row in s.scalars(query))
        return found

    def pending_leaves(self, limit: int) -> list[PendingLeaf]:
        _uint(limit, "limit", 100_000)
        records = cast(Table, StepRecordOrm.__table__).c
        # The acceptance time comes back as stored and is converted once per distinct value (a whole
        # accepted chunk shares one): converting thousands of equal timestamps was most of this read.
        query = (
            select(
                records.id,
                records.leaf,
                type_coerce(records.accepted_at, String()),
                records.job_id,
                records.seq,
                records.record_hash,
            )
            .where(records.status == "pending", records.batch_id.is_(None))
            .order_by(records.id)
            .limit(limit)
        )
        with self._tx(write=False) as s:
            rows = s.connection().execute(query).all()
        dialect = self._engine.dialect
        to_time = records.accepted_at.type.dialect_impl(dialect).result_processor(dialect, None)
        times: dict[Any, datetime] = {}
        leaves: list[PendingLeaf] = []
        for row_id, leaf, stored, job_id, seq, record_hash in rows:
            accepted = times.get(stored)
            if accepted is None:
                accepted = times[stored] = cast(datetime, to_time(stored) if to_time is not None else stored)
            leaves.append(PendingLeaf(row_id, leaf, accepted, job_id, seq, record_hash))
        return leaves

    def count_pending(self, limit: int) -> int:
        _uint(limit, "limit", 100_000)
        records = cast(Table, StepRecordOrm.__table__).c
        pending = (
            select(records.id)
            .where(records.status == "pending", records.batch_id.is_(None))
            .limit(limit)
            .subquery()
        )
        with self._tx(write=False) as s:
            return int(s.connection().execute(select(func.count()).select_from(pending)).scalar_one())
