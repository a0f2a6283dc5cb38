"""The console's search over the ledger's tables: jobs found by an id, a member, a hash or a time range.

A 32-byte hash is looked up, each by one index (migration 0008), as a job id, a step record's hash, a
model's hash and a transaction's hash (the batch that anchored records; every indexed ledger event of a
job: consents, opens, models, closes). A member's address finds the jobs it is party to or created; a
time range alone, the jobs created in it. Every lookup is narrowed by `SearchScope` in SQL: the time
range (the job's creation) and, for a member, only its own jobs (for a service, the jobs the caller's
``within`` names), so a member's search cannot tell another member's job, record, model or transaction from
one that does not exist.

Each function runs on the caller's session or connection and returns frozen `SearchHit` values, newest
job first, at most ``limit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, and_, or_, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from secureflow.ledger.store.models import BatchOrm, ChainEventOrm, JobOrm, ModelOrm, StepRecordOrm

Db = Session


@dataclass(frozen=True)
class SearchScope:
    """What every search is narrowed to (each field given narrows it)."""

    visible_to: str | None = None
    """Only the jobs this (checksummed) address is party to or created; None: every job."""
    since: datetime | None = None
    """Only jobs created at or after (timezone-aware)."""
    until: datetime | None = None
    """Only jobs created before (timezone-aware)."""
    within: Any = None
    """Only the job ids this SELECT of one column yields (e.g. the jobs bound to a service, from the
    caller's own tables); None: no such restriction."""


@dataclass(frozen=True)
class SearchHit:
    """One thing found, with the job it belongs to."""

    kind: str
    """job, member, record, model or transaction: what the query matched."""
    job_id: str
    job_status: str
    created_at: datetime
    seq: int | None = None
    record_hash: str | None = None
    model_id: str | None = None
    version: int | None = None
    model_hash: str | None = None
    tx_hash: str | None = None
    event: str | None = None
    """For a transaction: what it did for the job (BatchAnchored, JobOpened, ModelRecorded, ...)."""


def _party_clause(address: str) -> Any:
    return or_(sql_cast(JobOrm.parties, String).like(f'%"{address}"%'), JobOrm.creator == address)


def _scoped(query: Select[Any], scope: SearchScope, limit: int) -> Select[Any]:
    clauses: list[Any] = []
    if scope.visible_to is not None:
        clauses.append(_party_clause(scope.visible_to))
    if scope.since is not None:
        clauses.append(JobOrm.created_at >= scope.since)
    if scope.until is not None:
        clauses.append(JobOrm.created_at < scope.until)
    if scope.within is not None:
        clauses.append(JobOrm.job_id.in_(scope.within))
    if clauses:
        query = query.where(and_(*clauses))
    return query.order_by(JobOrm.created_at.desc(), JobOrm.job_id).limit(limit)


def _jobs(db: Db, kind: str, where: Any, scope: SearchScope, limit: int) -> list[SearchHit]:
    query = _scoped(select(JobOrm.job_id, JobOrm.status, JobOrm.created_at).where(where), scope, limit)
    return [SearchHit(kind, job_id, status, created) for job_id, status, created in db.execute(query).all()]


def search_hash(db: Db, value: str, scope: SearchScope, limit: int) -> list[SearchHit]:
    """A lower-case 0x-hex 32-byte ``value`` as a job id, record hash, model hash and transaction hash."""
    hits = _jobs(db, "job", JobOrm.job_id == value, scope, limit)
    job_cols = (JobOrm.job_id, JobOrm.status, JobOrm.created_at)

    records = select(*job_cols, StepRecordOrm.seq).join(StepRecordOrm, StepRecordOrm.job_id == JobOrm.job_id)
    for job_id, status, created, seq in db.execute(
        _scoped(records.where(StepRecordOrm.record_hash == value), scope, limit)
    ).all():
        hits.append(SearchHit("record", job_id, status, created, seq=seq, record_hash=value))

    models = select(*job_cols, ModelOrm.model_id, ModelOrm.version).join(
        ModelOrm, ModelOrm.job_id == JobOrm.job_id
    )
    for job_id, status, created, model_id, version in db.execute(
        _scoped(models.where(ModelOrm.model_hash == value), scope, limit)
    ).all():
        hits.append(
            SearchHit("model", job_id, status, created, model_id=model_id, version=version, model_hash=value)
        )

    anchored = (
        select(*job_cols, StepRecordOrm.seq)
        .join(StepRecordOrm, StepRecordOrm.job_id == JobOrm.job_id)
        .join(BatchOrm, BatchOrm.batch_id == StepRecordOrm.batch_id)
        .where(BatchOrm.tx_hash == value, StepRecordOrm.status.in_(("submitted", "confirmed")))
    )
    for job_id, status, created, seq in db.execute(_scoped(anchored, scope, limit)).all():
        hits.append(
            SearchHit("transaction", job_id, status, created, seq=seq, tx_hash=value, event="BatchAnchored")
        )

    events = select(*job_cols, ChainEventOrm.name).join(ChainEventOrm, ChainEventOrm.job_id == JobOrm.job_id)
    seen: set[tuple[str, str]] = set()
    for job_id, status, created, name in db.execute(
        _scoped(events.where(ChainEventOrm.tx_hash == value), scope, limit)
    ).all():
        if (job_id, name) not in seen:
            seen.add((job_id, name))
            hits.append(SearchHit("transaction", job_id, status, created, tx_hash=value, event=name))
    return hits[:limit]


def search_member(db: Db, address: str, scope: SearchScope, limit: int) -> list[SearchHit]:
    """The jobs the checksummed ``address`` is party to or created."""
    return _jobs(db, "member", _party_clause(address), scope, limit)


def search_time(db: Db, scope: SearchScope, limit: int) -> list[SearchHit]:
    """The jobs created in the scope's time range (at least one bound given by the caller)."""
    return _jobs(db, "job", JobOrm.job_id.isnot(None), scope, limit)
