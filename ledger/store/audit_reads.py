"""The API's audit reads of the ledger's tables: the read interface the ledger owns for them.

The API shows and filters the ledger's jobs, step records and batches (a job's steps page, audit queries,
record counts, jobs by visibility). Those queries live here, beside the tables they read, so a ledger
migration that breaks one fails the ledger's own type check and tests instead of the API at run time;
only ``secureflow.ledger.store`` imports the ORM tables (import-linter checks it).

The API keeps an audit index of its own (per outbox record id: the algorithm and step times from the
record's JSON, which the ledger stores but does not parse), filled from the outbox in id order with
`AuditReads.newest_record_id` and `AuditReads.records_after`. The reads that show or filter those fields
join it, so the caller hands its index table to `AuditReads`; of it, the ledger reads the columns
``record_id``, ``algorithm``, ``started_at_ms`` and ``finished_at_ms``.

Every method runs on the caller's session or connection (its transaction, its error handling) and
returns plain, immutable values: frozen dataclasses, named tuples, or, for the hot steps page, the
statement's rows as tuples in the documented column order (no per-row objects on the hot path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FromClause

from secureflow.ledger.store.models import BatchOrm, JobOrm, StepRecordOrm

INDEX_COLUMNS = ("record_id", "algorithm", "started_at_ms", "finished_at_ms")
"""The columns of the caller's audit index table that these reads use."""

Db = Session | Connection
"""Where a read runs: the caller's ORM session or Core connection (and so its transaction)."""

StepsPageRow = tuple[
    int,
    str | None,
    int | None,
    int | None,
    str,
    str,
    str,
    str | None,
    str | None,
    int | None,
    datetime,
    datetime | None,
    str | None,
]
"""A row of `AuditReads.steps_page_rows`, by position: seq, algorithm, started_at_ms, finished_at_ms (these
three None while the record is not in the audit index yet), record_hash, leaf, status, batch_id, the batch's
tx_hash and block_number (None outside a batch), accepted_at, confirmed_at, failure_reason (why a ``failed``
record will never be anchored, e.g. ``quarantined: …``; else None)."""


@dataclass(frozen=True)
class RecordFilter:
    """What an audit query selects; every field given narrows it."""

    job_id: str | None = None
    member: str | None = None
    algorithm: str | None = None
    job_ids: Sequence[str] | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    status: str | None = None
    visible_to: str | None = None
    """Only jobs this address is party to (or created); None means all jobs."""


@dataclass(frozen=True)
class RecordItem:
    """A step record as audit reads show it: the outbox row, its index fields and its batch's anchor."""

    record_id: int
    job_id: str
    seq: int
    algorithm: str
    started_at_ms: int
    finished_at_ms: int
    record_hash: str
    leaf: str
    status: str
    batch_id: str | None
    accepted_at: datetime
    confirmed_at: datetime | None
    tx_hash: str | None
    """The anchoring transaction, only while the record is submitted or confirmed."""
    block_number: int | None
    failure_reason: str | None = None
    """Why a ``failed`` record will never be anchored (e.g. ``quarantined: …``)."""


@dataclass(frozen=True)
class ActivityBucket:
    """Step records confirmed on chain in one time bucket, and how long they took from acceptance."""

    start: datetime
    """The bucket's first instant (UTC, a multiple of the bucket size since the epoch)."""
    anchored: int
    """Records whose anchor was confirmed in this bucket."""
    latency_avg_seconds: float
    """Mean of confirmed_at - accepted_at over those records."""
    latency_max_seconds: float


@dataclass(frozen=True)
class Backlog:
    """Records on their way to the chain (or never going there) and the oldest one still pending."""

    pending: int
    submitted: int
    failed: int
    oldest_pending_at: datetime | None


class OutboxEntry(NamedTuple):
    """An outbox record as the audit index is filled from it."""

    id: int
    job_id: str
    seq: int
    record_json: str


def _like_address(address: str) -> str:
    return f'%"{address}"%'


def _party_clause(address: str) -> Any:
    return or_(sql_cast(JobOrm.parties, String).like(_like_address(address)), JobOrm.creator == address)


def _dialect(db: Db) -> str:
    bind = db.get_bind() if isinstance(db, Session) else db
    return str(bind.dialect.name)


def _bucket(column: Any, seconds: int, dialect: str) -> Any:
    """The number of the ``seconds``-long bucket (since the epoch) a stored UTC timestamp falls in, in SQL."""
    if (
        dialect == "sqlite"
    ):  # stored as naive UTC text; strftime('%s') gives whole seconds; // divides integers
        return sql_cast(func.strftime("%s", column), Integer) // seconds
    return sql_cast(func.floor(func.extract("epoch", column) / seconds), BigInteger)


def _seconds_between(start: Any, end: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return sql_cast(func.extract("epoch", end - start), Float)


def _utc(value: datetime | str) -> datetime:
    """A timestamp of an aggregate (SQLite returns MIN() of the text column as text), timezone-aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class AuditReads:
    """The audit reads over the ledger's tables and the caller's audit index ``index`` (thread-safe).

    The statements are built once here; each call runs one (or, for the index sync, a few) on ``db``.
    """

    def __init__(self, index: FromClause) -> None:
        if not isinstance(index, Table):
            raise TypeError(f"the audit index must be a table, got {type(index).__name__}")
        missing = [name for name in INDEX_COLUMNS if name not in index.c]
        if missing:
            raise ValueError(f"the audit index table {index.name} lacks the columns {', '.join(missing)}")
        self.index = index
        records, batches = StepRecordOrm.__table__, BatchOrm.__table__
        self._steps_page = (
            select(
                records.c.seq,
                index.c.algorithm,
                index.c.started_at_ms,
                index.c.finished_at_ms,
                records.c.record_hash,
                records.c.leaf,
                records.c.status,
                records.c.batch_id,
                batches.c.tx_hash,
                batches.c.block_number,
                records.c.accepted_at,
                records.c.confirmed_at,
                records.c.failure_reason,
            )
            .select_from(
                records.outerjoin(index, index.c.record_id == records.c.id).outerjoin(
                    batches, batches.c.batch_id == records.c.batch_id
                )
            )
            .where(records.c.job_id == bindparam("job_id"), records.c.seq > bindparam("after"))
            .order_by(records.c.seq)
            .limit(bindparam("limit"))
        )
        """A page of a job's records in seq order, with the audit index's fields and the batch's
        transaction."""

    # -- the hot steps page ----------------------------------------------------------------------------
    def steps_page_rows(self, db: Db, job_id: str, after_seq: int, limit: int) -> Sequence[StepsPageRow]:
        """Up to ``limit`` of the job's records with seq above ``after_seq``, in seq order: one Core
        statement, the rows as tuples (see `StepsPageRow`), the batch's transaction as stored (whatever
        the record's status)."""
        rows = db.execute(self._steps_page, {"job_id": job_id, "after": after_seq, "limit": limit}).all()
        return cast(Sequence[StepsPageRow], rows)  # Row is a tuple subclass, these columns in this order

    # -- jobs ------------------------------------------------------------------------------------------
    def jobs_page(
        self, db: Db, *, visible_to: str | None, status: str | None, limit: int, offset: int
    ) -> list[str]:
        """Job ids, newest first, optionally only those an address is party to (or created)."""
        query = select(JobOrm.job_id)
        if visible_to is not None:
            query = query.where(_party_clause(visible_to))
        if status is not None:
            query = query.where(JobOrm.status == status)
        query = query.order_by(JobOrm.created_at.desc(), JobOrm.job_id).limit(limit).offset(offset)
        return list(db.scalars(query))

    def job_record_counts(self, db: Db, job_id: str) -> dict[str, int]:
        """Number of the job's records per anchoring status (every status present)."""
        counts = {"pending": 0, "submitted": 0, "confirmed": 0, "failed": 0}
        rows = db.execute(
            select(StepRecordOrm.status, func.count())
            .where(StepRecordOrm.job_id == job_id)
            .group_by(StepRecordOrm.status)
        ).all()
        for status, count in rows:
            counts[str(status)] = int(count)
        return counts

    def jobs_by_status(self, db: Db, *, visible_to: str | None) -> dict[str, int]:
        """Number of jobs per compute status (only the statuses present), optionally only those an address
        is party to (or created)."""
        query = select(JobOrm.status, func.count()).group_by(JobOrm.status)
        if visible_to is not None:
            query = query.where(_party_clause(visible_to))
        return {str(status): int(count) for status, count in db.execute(query).all()}

    # -- consortium activity ---------------------------------------------------------------------------
    def anchored_per_bucket(
        self, db: Db, *, since: datetime, bucket_seconds: int, visible_to: str | None
    ) -> list[ActivityBucket]:
        """Records confirmed since ``since``, grouped in SQL by ``bucket_seconds`` of their confirmation
        time: per bucket (only those with records, oldest first) the count and the accept-to-confirmed
        latency (mean and maximum). Optionally only the records of jobs an address is party to."""
        if bucket_seconds < 1:
            raise ValueError("bucket_seconds must be at least 1")
        records = StepRecordOrm.__table__
        dialect = _dialect(db)
        latency = _seconds_between(records.c.accepted_at, records.c.confirmed_at, dialect)
        bucket = _bucket(records.c.confirmed_at, bucket_seconds, dialect).label("bucket")
        query = (
            select(bucket, func.count(), func.avg(latency), func.max(latency))
            .select_from(records.join(JobOrm.__table__, JobOrm.job_id == records.c.job_id))
            .where(records.c.status == "confirmed", records.c.confirmed_at >= since)
            .group_by(bucket)
            .order_by(bucket)
        )
        if visible_to is not None:
            query = query.where(_party_clause(visible_to))
        return [
            ActivityBucket(
                start=datetime.fromtimestamp(int(index) * bucket_seconds, timezone.utc),
                anchored=int(count),
                latency_avg_seconds=max(0.0, float(avg or 0.0)),
                latency_max_seconds=max(0.0, float(high or 0.0)),
            )
            for index, count, avg, high in db.execute(query).all()
        ]

    def backlog(self, db: Db, *, visible_to: str | None) -> Backlog:
        """Records pending, submitted and failed, and when the oldest pending one was accepted (optionally
        only those of jobs an address is party to)."""
        query = (
            select(StepRecordOrm.status, func.count(), func.min(StepRecordOrm.accepted_at))
            .join(JobOrm, JobOrm.job_id == StepRecordOrm.job_id)
            .where(StepRecordOrm.status.in_(("pending", "submitted", "failed")))
            .group_by(StepRecordOrm.status)
        )
        if visible_to is not None:
            query = query.where(_party_clause(visible_to))
        counts: dict[str, int] = {}
        oldest: datetime | None = None
        for status, count, first in db.execute(query).all():
            counts[str(status)] = int(count)
            if status == "pending" and first is not None:
                oldest = _utc(first)
        return Backlog(
            pending=counts.get("pending", 0),
            submitted=counts.get("submitted", 0),
            failed=counts.get("failed", 0),
            oldest_pending_at=oldest,
        )

    # -- audit records ---------------------------------------------------------------------------------
    def steps(self, db: Db, job_id: str, after_seq: int, limit: int) -> list[RecordItem]:
        """One page of a job's indexed records ordered by seq (seq greater than ``after_seq``)."""
        return self._records(
            db,
            and_(StepRecordOrm.job_id == job_id, StepRecordOrm.seq > after_seq),
            order=StepRecordOrm.seq,
            limit=limit,
        )

    def records(self, db: Db, flt: RecordFilter, after_id: int, limit: int) -> list[RecordItem]:
        """Audit query: indexed records matching the filter, in outbox (acceptance) order after
        ``after_id``."""
        index = self.index.c
        clauses: list[Any] = [StepRecordOrm.id > after_id]
        if flt.job_id is not None:
            clauses.append(StepRecordOrm.job_id == flt.job_id)
        if flt.job_ids is not None:
            clauses.append(StepRecordOrm.job_id.in_(list(flt.job_ids)))
        if flt.algorithm is not None:
            clauses.append(index.algorithm == flt.algorithm)
        if flt.since_ms is not None:
            clauses.append(index.started_at_ms >= flt.since_ms)
        if flt.until_ms is not None:
            clauses.append(index.started_at_ms < flt.until_ms)
        if flt.status is not None:
            clauses.append(StepRecordOrm.status == flt.status)
        if flt.member is not None:
            clauses.append(_party_clause(flt.member))
        if flt.visible_to is not None:
            clauses.append(_party_clause(flt.visible_to))
        return self._records(db, and_(*clauses), order=StepRecordOrm.id, limit=limit)

    def _records(self, db: Db, where: Any, *, order: Any, limit: int) -> list[RecordItem]:
        index = self.index.c
        rows = db.execute(
            select(
                StepRecordOrm.id,
                StepRecordOrm.job_id,
                StepRecordOrm.seq,
                index.algorithm,
                index.started_at_ms,
                index.finished_at_ms,
                StepRecordOrm.record_hash,
                StepRecordOrm.leaf,
                StepRecordOrm.status,
                StepRecordOrm.batch_id,
                StepRecordOrm.accepted_at,
                StepRecordOrm.confirmed_at,
                BatchOrm.tx_hash,
                BatchOrm.block_number,
                StepRecordOrm.failure_reason,
            )
            .join(self.index, index.record_id == StepRecordOrm.id)
            .join(JobOrm, JobOrm.job_id == StepRecordOrm.job_id)
            .outerjoin(BatchOrm, BatchOrm.batch_id == StepRecordOrm.batch_id)
            .where(where)
            .order_by(order)
            .limit(limit)
        ).all()
        items = []
        for r in rows:
            in_batch = r.status in ("submitted", "confirmed")
            items.append(
                RecordItem(
                    record_id=r.id,
                    job_id=r.job_id,
                    seq=r.seq,
                    algorithm=r.algorithm,
                    started_at_ms=r.started_at_ms,
                    finished_at_ms=r.finished_at_ms,
                    record_hash=r.record_hash,
                    leaf=r.leaf,
                    status=r.status,
                    batch_id=r.batch_id,
                    accepted_at=r.accepted_at,
                    confirmed_at=r.confirmed_at,
                    tx_hash=r.tx_hash if in_batch else None,
                    block_number=r.block_number if in_batch else None,
                    failure_reason=r.failure_reason,
                )
            )
        return items

    # -- filling the audit index -----------------------------------------------------------------------
    def newest_record_id(self, db: Db) -> int:
        """The highest outbox id (0 without records): one primary-key read."""
        return int(db.scalar(select(func.max(StepRecordOrm.id))) or 0)

    def records_after(self, db: Db, after_id: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` outbox records with an id above ``after_id``, in id order."""
        rows = db.execute(
            select(StepRecordOrm.id, StepRecordOrm.job_id, StepRecordOrm.seq, StepRecordOrm.record_json)
            .where(StepRecordOrm.id > after_id)
            .order_by(StepRecordOrm.id)
            .limit(limit)
        ).all()
        return [OutboxEntry(row_id, job_id, seq, record_json) for row_id, job_id, seq, record_json in rows]

    def analyze(self, connection: Connection) -> None:
        """Refresh the planner's statistics of the outbox and the audit index (PostgreSQL only)."""
        if connection.dialect.name != "postgresql":
            return
        quote = connection.dialect.identifier_preparer.format_table
        connection.exec_driver_sql(f"ANALYZE {quote(StepRecordOrm.__table__)}, {quote(self.index)}")
