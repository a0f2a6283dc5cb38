"""What every area of the SQL ledger store shares: the engine, one transaction per call, and small helpers.

:class:`SqlStoreBase` holds the SQLAlchemy engine and its two session factories
(reads, and writes that take the write lock first); the area mixins beside it
(``jobs``, ``records``, ``batches``, ``models_store``, ``events``, ``nonces``,
``checkpoints``) build on it, and :class:`secureflow.ledger.store.sql.SqlLedgerStore`
composes them. Each method is one transaction. Writers lock what they change first
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), so
concurrent threads and processes see a consistent outbox.

Job change listeners (`SqlStoreBase.add_job_listener`): after a write transaction that changed a job
or its step records COMMITTED, every listener is called with the ids of those jobs (and the job's status
where the transaction wrote the job's row); nothing is announced for a transaction rolled back. The jobs
are collected from the ORM rows a flush wrote (``jobs``, ``step_records``) and from the bulk statements
that name them (`SqlStoreBase._touch`). A listener must be quick and must not raise (an exception is
logged and swallowed: the write has happened). The API uses this to wake live-status streams
(`secureflow.api.server.notify`); the database stays the source of truth.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import BigInteger, Engine, any_, bindparam, event, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from secureflow.ledger.errors import StoreError, UnknownJobError
from secureflow.ledger.store.engine import WRITE_OPTION, make_engine, mask_url, scrub_password, unavailable
from secureflow.ledger.store.models import JobOrm, StepRecordOrm
from secureflow.ledger.store.schemas import MAX_UINT64, Address, Hex32, Reason

log = logging.getLogger("secureflow.ledger.store")

_M = TypeVar("_M", bound=BaseModel)

JobChangeListener = Callable[[Mapping[str, "str | None"]], None]
"""Called after a commit with the jobs it changed: job id -> the job's status where the commit wrote the
job's row, else None (only its records changed)."""
_TOUCHED = "secureflow.touched_jobs"
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


def _ids_match(column: ColumnElement[int], ids: list[int], dialect: str) -> ColumnElement[bool]:
    """``column`` is one of ``ids``, with the whole list as ONE bound parameter (an array on PostgreSQL,
    a JSON array read by ``json_each`` on SQLite): thousands of ids cost no query text to build or parse."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", ids, type_=postgresql.ARRAY(BigInteger())))
    return column.in_(
        select(literal_column("value")).select_from(func.json_each(bindparam("ids", json.dumps(ids))))
    )


class SqlStoreBase:
    """The engine, its session factories and the locking helpers the store's areas share."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self._engine = make_engine(url, **engine_options)
        self._read = sessionmaker(self._engine, expire_on_commit=False)
        self._write = sessionmaker(
            self._engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._job_listeners: list[JobChangeListener] = []
        event.listen(self._write, "after_flush", self._collect_touched)
        event.listen(self._write, "after_commit", self._notify_touched)
        event.listen(self._write, "after_rollback", self._forget_touched)

    # -- job change listeners ---------------------------------------------------------------------------
    def add_job_listener(self, listener: JobChangeListener) -> Callable[[], None]:
        """Call ``listener`` after each commit that changed jobs or their records; returns its remover."""
        self._job_listeners.append(listener)

        def remove() -> None:
            if listener in self._job_listeners:
                self._job_listeners.remove(listener)

        return remove

    def _touch(self, s: Session, job_ids: Iterable[str], status: str | None = None) -> None:
        """Count ``job_ids`` as changed by this transaction (bulk statements the flush does not see)."""
        if not self._job_listeners:
            return
        touched: dict[str, str | None] = s.info.setdefault(_TOUCHED, {})
        for job_id in job_ids:
            touched[job_id] = status or touched.get(job_id)

    def _touch_batch(self, s: Session, batch_id: str) -> None:
        """Count the jobs of the records in batch ``batch_id`` as changed (before a bulk update of them)."""
        if self._job_listeners:
            self._touch(
                s,
                s.scalars(select(StepRecordOrm.job_id).where(StepRecordOrm.batch_id == batch_id).distinct()),
            )

    def _collect_touched(self, s: Session, _context: object) -> None:
        if not self._job_listeners:
            return
        for row in (*s.new, *s.dirty):
            if isinstance(row, JobOrm):
                self._touch(s, [row.job_id], row.status)
            elif isinstance(row, StepRecordOrm):
                self._touch(s, [row.job_id])

    def _notify_touched(self, s: Session) -> None:
        touched = s.info.pop(_TOUCHED, None)
        if not touched:
            return
        for listener in list(self._job_listeners):
            try:
                listener(touched)
            except Exception:  # the write is committed: a listener's failure must not fail it
                log.exception("a job change listener failed")

    @staticmethod
    def _forget_touched(s: Session) -> None:
        s.info.pop(_TOUCHED, None)

    # -- plumbing -------------------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def masked_url(self) -> str:
        """The database URL without its password."""
        return mask_url(self.url)

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

    def _upsert(
        self, session: Session, table: type[Any], values: dict[str, Any], set_: dict[str, Any]
    ) -> Any:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        keys = [column.name for column in table.__table__.primary_key.columns]
        stmt = insert(table).values(**values)
        return stmt.on_conflict_do_update(index_elements=keys, set_=set_)

    def _locked_job(self, s: Session, job_id: str) -> JobOrm:
        row = s.scalars(select(JobOrm).where(JobOrm.job_id == job_id).with_for_update()).one_or_none()
        if row is None:
            raise UnknownJobError(f"no job {job_id} in the ledger store")
        return row
