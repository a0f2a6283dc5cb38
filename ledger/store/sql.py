"""The SQLAlchemy implementation of :class:`LedgerStore` (SQLite and PostgreSQL), and :func:`open_store`.

Each method is one transaction. Writers lock what they change first
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so
concurrent threads and processes see a consistent outbox. Nonce allocation is
a single atomic upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``),
which is safe for concurrent callers on both engines, including the very
first allocation for a sender.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import (
    BigInteger,
    CursorResult,
    Engine,
    String,
    Table,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from secureflow.ledger.errors import (
    BatchConflictError,
    DuplicateJobError,
    InvalidStateError,
    RecordConflictError,
    StoreConflictError,
    StoreError,
    StoreMissingError,
    StoreNotFoundError,
    UnknownBatchError,
    UnknownJobError,
    UnknownRecordError,
)
from secureflow.ledger.store.base import LedgerStore, PendingLeaf
from secureflow.ledger.store.engine import (
    WRITE_OPTION,
    make_engine,
    mask_url,
    resolve_url,
    scrub_password,
    unavailable,
)
from secureflow.ledger.store.models import (
    BatchOrm,
    ChainEventOrm,
    CheckpointOrm,
    IndexedBlockOrm,
    JobOrm,
    ModelOrm,
    NonceOrm,
    StepRecordOrm,
    UtcDateTime,
    utcnow,
)
from secureflow.ledger.store.schemas import (
    CHAIN_STATUSES,
    CLOSE_STATUSES,
    JOB_STATUSES,
    MAX_UINT64,
    MODEL_STATUSES,
    RECORD_STATUSES,
    TERMINAL_JOB_STATUSES,
    Address,
    Batch,
    ChainEvent,
    ChainStatus,
    Checkpoint,
    CloseStatus,
    Hex32,
    IndexedBlock,
    Job,
    JobStatus,
    ModelRow,
    ModelStatus,
    NewChainEvent,
    NewJob,
    NewModel,
    NewStepRecord,
    Reason,
    StepRecordRow,
)

_M = TypeVar("_M", bound=BaseModel)
_HEX32: TypeAdapter[str] = TypeAdapter(Hex32)
_ADDRESS: TypeAdapter[str] = TypeAdapter(Address)
_REASON: TypeAdapter[str] = TypeAdapter(Reason)
_IN_CHUNK = (
    5_000  # ids per IN (...) list: well under SQLite's (32,766) and PostgreSQL's bound-parameter limits
)


def _hex32(value: str) -> str:
    return _HEX32.validate_python(value)


def _uint(value: int, what: str, maximum: int = MAX_UINT64) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{what} must be an integer between 0 and {maximum}, got {value!r}")
    return value


def _to(model: type[_M], row: object) -> _M:
    """A boundary model of a row read from our own database (validated when it was written)."""
    if isinstance(row, dict):
        return model.model_validate(row)
    return model.model_construct(**{name: getattr(row, name) for name in model.model_fields})


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


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


def _ids_match(column: ColumnElement[int], ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of ``ids``, with the whole list as ONE bound parameter (an array on PostgreSQL,
    a JSON array read by ``json_each`` on SQLite): thousands of ids cost no query text to build or parse."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(
        select(literal_column("value")).select_from(func.json_each(bindparam("ids", json.dumps(ids))))
    )


class SqlLedgerStore(LedgerStore):
    """The ledger store on a SQLAlchemy engine; thread-safe (one session per call)."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self._engine = make_engine(url, **engine_options)
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(
            self._engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def masked_url(self) -> str:
        """The database URL without its password."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"SqlLedgerStore({self.masked_url!r})"

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Session]:
        """One transaction; database failures become StoreError subclasses naming the masked URL."""
        factory = self._write if write else self._read
        try:
            with factory.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise unavailable(self.url, exc) from exc
        except DBAPIError as exc:
            reason = scrub_password(str(exc.orig).strip().splitlines()[0], self.url)
            raise StoreError(
                f"the ledger database at {self.masked_url} refused the operation: {reason}"
            ) from exc

    def schema_revision(self) -> str | None:
        """The migration revision the database is at (None if never migrated)."""
        from secureflow.ledger.store.migrate import revision_of_engine  # alembic is imported only when needed

        return revision_of_engine(self._engine)

    def check(self) -> None:
        """Raise unless the database answers and its schema is at the newest revision (for readiness)."""
        from secureflow.ledger.store.migrate import head_revision

        revision, head = self.schema_revision(), head_revision()
        if revision != head:
            raise StoreError(
                f"the ledger database at {self.masked_url} is at schema revision {revision}, expected {head}",
                hint="run `secureflow db upgrade` (or open the store with open_store, which migrates)",
            )

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, safe from several processes at once)."""
        from secureflow.ledger.store.migrate import upgrade_engine

        upgrade_engine(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def _upsert(
        self, session: Session, table: type[Any], values: dict[str, Any], set_: dict[str, Any]
    ) -> Any:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        keys = [column.name for column in table.__table__.primary_key.columns]
        stmt = insert(table).values(**values)
        return stmt.on_conflict_do_update(index_elements=keys, set_=set_)

    # -- jobs -----------------------------------------------------------------------------------------
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

    def _locked_job(self, s: Session, job_id: str) -> JobOrm:
        row = s.scalars(select(JobOrm).where(JobOrm.job_id == job_id).with_for_update()).one_or_none()
        if row is None:
            raise UnknownJobError(f"no job {job_id} in the ledger store")
        return row

    def update_job(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        chain_status: ChainStatus | None = None,
        created_tx_hash: str | None = None,
    ) -> Job:
        job_id = _hex32(job_id)
        if status is not None and status not in JOB_STATUSES:
            raise ValueError(f"job status must be one of {', '.join(JOB_STATUSES)}, got {status!r}")
        if chain_status is not None and chain_status not in CHAIN_STATUSES:
            raise ValueError(f"chain status must be one of {', '.join(CHAIN_STATUSES)}, got {chain_status!r}")
        tx_hash = None if created_tx_hash is None else _hex32(created_tx_hash)
        with self._tx(write=True) as s:
            row = self._locked_job(s, job_id)
            if status is not None and status != row.status:
                if row.status in TERMINAL_JOB_STATUSES or status == "created":
                    raise InvalidStateError(f"job {job_id} is {row.status}: it cannot become {status}")
                row.status = status
                if status in TERMINAL_JOB_STATUSES and row.close_status is None:
                    row.close_status = "pending"
            if chain_status is not None:
                row.chain_status = chain_status
            if tx_hash is not None:
                row.created_tx_hash = tx_hash
            row.updated_at = utcnow()
            return _to(Job, row)

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

    # -- step records ---------------------------------------------------------------------------------
    def accept_record(self, rec: NewStepRecord) -> StepRecordRow:
        with self._tx(write=True) as s:
            job = self._locked_job(s, rec.job_id)  # serialises writers of one job's records
            existing = s.scalars(
                select(StepRecordOrm).where(StepRecordOrm.job_id == rec.job_id, StepRecordOrm.seq == rec.seq)
            ).one_or_none()
            if existing is not None:
                if (existing.record_hash, existing.leaf) == (rec.record_hash, rec.leaf):
                    return _to(StepRecordRow, existing)
                raise _record_conflict(rec, existing.record_hash)
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

    # -- batches --------------------------------------------------------------------------------------
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

    # -- anchoring pipeline -------------------------------------------------------------------------
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
            for job_id in sorted({r.job_id for r in recs}):
                self._start_job(s, job_id, now)
            try:
                ids = self._insert_new_records(s, recs, now)
            except IntegrityError as exc:
                raise RecordConflictError("some of these records were written concurrently; retry") from exc
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
    def _start_job(s: Session, job_id: str, now: datetime) -> None:
        """Lock the job's row mark it touched and ``running`` (UnknownJobError if absent)."""
        jobs = cast(Table, JobOrm.__table__)
        result = s.execute(
            update(jobs)
            .where(jobs.c.job_id == job_id)
            .values(
                updated_at=now,
                status=case((jobs.c.status == "created", "running"), else_=jobs.c.status),
            )
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            raise UnknownJobError(f"no job {job_id} in the ledger store")

    @staticmethod
    def _insert_new_records(
        s: Session, recs: Sequence[NewStepRecord], now: datetime
    ) -> dict[tuple[str, int], int]:
        """Insert the records not stored yet; the new rows' ids by (job id, seq)."""
        if s.get_bind().dialect.name != "postgresql":
            return SqlLedgerStore._insert_new_records_sqlite(s, recs, now)
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
            select(records.id, records.leaf, type_coerce(records.accepted_at, String()))
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
        for row_id, leaf, stored in rows:
            accepted = times.get(stored)
            if accepted is None:
                accepted = times[stored] = cast(datetime, to_time(stored) if to_time is not None else stored)
            leaves.append(PendingLeaf(row_id, leaf, accepted))
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

    # -- models -----------------------------------------------------------------------------------
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

    # -- event index --------------------------------------------------------------------------------
    def index_events(
        self, events: Sequence[NewChainEvent], blocks: Sequence[IndexedBlock], checkpoint: str
    ) -> None:
        if not blocks:
            raise ValueError("index_events needs at least the block the checkpoint moves to")
        last = max(blocks, key=lambda b: b.block_number)
        now = utcnow()
        with self._tx(write=True) as s:
            for block in blocks:
                s.merge(IndexedBlockOrm(**block.model_dump()))
            for event in events:
                s.add(ChainEventOrm(**event.model_dump()))
            values = {
                "name": checkpoint,
                "block_number": last.block_number,
                "block_hash": last.block_hash,
                "updated_at": now,
            }
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )

    def indexed_blocks(self, below_or_at: int, limit: int = 256) -> list[IndexedBlock]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(IndexedBlockOrm)
                .where(IndexedBlockOrm.block_number <= below_or_at)
                .order_by(IndexedBlockOrm.block_number.desc())
                .limit(limit)
            )
            return [_to(IndexedBlock, row) for row in rows]

    def rollback_events(self, after_block: int, checkpoint: str, fork_block: IndexedBlock) -> list[str]:
        now = utcnow()
        with self._tx(write=True) as s:
            batch_ids = list(
                s.scalars(
                    select(ChainEventOrm.batch_id).where(
                        ChainEventOrm.block_number > after_block,
                        ChainEventOrm.name == "BatchAnchored",
                    )
                )
            )
            s.execute(delete(ChainEventOrm).where(ChainEventOrm.block_number > after_block))
            s.execute(delete(IndexedBlockOrm).where(IndexedBlockOrm.block_number > after_block))
            values = {
                "name": checkpoint,
                "block_number": fork_block.block_number,
                "block_hash": fork_block.block_hash,
                "updated_at": now,
            }
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )
            return [b for b in batch_ids if b is not None]

    def events(
        self,
        *,
        name: str | None = None,
        batch_id: str | None = None,
        job_id: str | None = None,
        limit: int = 1000,
        after_id: int = 0,
    ) -> list[ChainEvent]:
        _uint(limit, "limit", 100_000)
        query = select(ChainEventOrm).where(ChainEventOrm.id > after_id)
        if name is not None:
            query = query.where(ChainEventOrm.name == name)
        if batch_id is not None:
            query = query.where(ChainEventOrm.batch_id == _hex32(batch_id))
        if job_id is not None:
            query = query.where(ChainEventOrm.job_id == _hex32(job_id))
        with self._tx(write=False) as s:
            rows = s.scalars(query.order_by(ChainEventOrm.id).limit(limit))
            return [_to(ChainEvent, row) for row in rows]

    # -- nonces ---------------------------------------------------------------------------------------
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

    # -- checkpoints ----------------------------------------------------------------------------------
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


def open_store(url: str | None = None, *, migrate: bool = True, must_exist: bool = False) -> SqlLedgerStore:
    """Open the ledger store at ``url``, else ``SECUREFLOW_DATABASE_URL``, else ``.secureflow/secureflow.db``.

    Migrates the schema to the newest revision unless ``migrate`` is false. With ``must_exist`` (every
    command that only reads a store), a SQLite file that does not exist, or a database without the
    ledger's schema, is a :class:`secureflow.ledger.errors.StoreMissingError` naming it: reading must
    never create an empty store and report on nothing.
    Raises :class:`secureflow.ledger.errors.StoreUnavailableError` (URL shown without its
    password) if the database cannot be reached.
    """
    resolved = resolve_url(url)
    if must_exist:
        _require_existing(resolved)
    store = SqlLedgerStore(resolved)
    if must_exist and store.schema_revision() is None:
        store.close()
        raise StoreMissingError(f"the database at {mask_url(resolved)} holds no ledger (no schema)")
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def _require_existing(url: str) -> None:
    """Refuse a SQLite file that does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        raise StoreMissingError(f"no ledger database at {path}")
