"""SQLAlchemy ORM tables of the ledger store (jobs, the step-record outbox, batches, nonces, checkpoints).

Types are portable (SQLite and PostgreSQL). Timestamps are stored as UTC and
always come back timezone-aware. Status columns are short strings guarded by
CHECK constraints; the allowed values live in :mod:`secureflow.ledger.store.schemas`.
Constraint names follow one naming convention so migrations stay stable.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from secureflow.ledger.store.schemas import (
    BATCH_STATUSES,
    CHAIN_STATUSES,
    CLOSE_STATUSES,
    JOB_STATUSES,
    MODEL_STATUSES,
    RECORD_STATUSES,
)

HEX32_LEN = 66  # "0x" + 64 hex digits
ADDRESS_LEN = 42  # "0x" + 40 hex digits

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC (``timestamptz`` on PostgreSQL, naive UTC on SQLite), read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger store: pass a timezone-aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - invariant for the type checker, not input validation
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


# BIGINT on PostgreSQL; INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements (it is 64-bit there).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with the ledger store's metadata and naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobOrm(Base):
    """A job: manifest hash anchored at start, parties, compute status and on-chain status."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_close_status_chain_status", "close_status", "chain_status"),
        Index("ix_jobs_status_updated_at", "status", "updated_at"),
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status"),
        CheckConstraint(_one_of("chain_status", CHAIN_STATUSES), name="chain_status"),
        CheckConstraint(_one_of("close_status", CLOSE_STATUSES), name="close_status"),
    )

    job_id: Mapped[str] = mapped_column(String(HEX32_LEN), primary_key=True)
    manifest_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    creator: Mapped[str] = mapped_column(String(ADDRESS_LEN))
    parties: Mapped[list[str]] = mapped_column(JSON)
    salt: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    status: Mapped[str] = mapped_column(String(16))
    chain_status: Mapped[str] = mapped_column(String(16))
    created_tx_hash: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    close_status: Mapped[str | None] = mapped_column(String(16))
    close_tx_hash: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    close_block: Mapped[int | None] = mapped_column(BigInteger)
    close_reason: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BatchOrm(Base):
    """A Merkle batch of step records and the transaction anchoring its root."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_tx_hash", "tx_hash"),
        CheckConstraint(_one_of("status", BATCH_STATUSES), name="status"),
    )

    batch_id: Mapped[str] = mapped_column(String(HEX32_LEN), primary_key=True)
    root: Mapped[str] = mapped_column(String(HEX32_LEN), unique=True)
    record_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    tx_hash: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    sender: Mapped[str | None] = mapped_column(String(ADDRESS_LEN))
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StepRecordOrm(Base):
    """The outbox: one canonical-JSON step record per (job, seq), waiting for or carrying its anchor."""

    __tablename__ = "step_records"
    __table_args__ = (
        UniqueConstraint("job_id", "seq"),
        Index("ix_step_records_status_id", "status", "id"),
        Index("ix_step_records_batch_id", "batch_id"),
        Index("ix_step_records_record_hash", "record_hash"),
        CheckConstraint(_one_of("status", RECORD_STATUSES), name="status"),
        CheckConstraint("seq >= 0", name="seq_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(HEX32_LEN), ForeignKey("jobs.job_id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    record_json: Mapped[str] = mapped_column(Text)
    record_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    leaf: Mapped[str] = mapped_column(String(HEX32_LEN))
    status: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(HEX32_LEN), ForeignKey("batches.batch_id"))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class NonceOrm(Base):
    """The next nonce this service will use for a sender on a chain."""

    __tablename__ = "nonces"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CheckpointOrm(Base):
    """How far a chain follower has processed: block number and the hash seen there (to detect reorgs)."""

    __tablename__ = "chain_checkpoints"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChainEventOrm(Base):
    """A ledger-contract event seen by the indexer on the canonical chain (rolled back on a reorg)."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("block_hash", "log_index"),
        Index("ix_chain_events_block_number", "block_number"),
        Index("ix_chain_events_batch_id", "batch_id"),
        Index("ix_chain_events_job_id", "job_id"),
        Index("ix_chain_events_tx_hash", "tx_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    tx_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    log_index: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    root: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    job_id: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)


class IndexedBlockOrm(Base):
    """The hash of each recent block the indexer processed, to find the fork point of a reorg."""

    __tablename__ = "indexed_blocks"

    block_number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    block_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    parent_hash: Mapped[str] = mapped_column(String(HEX32_LEN))


class ModelOrm(Base):
    """A trained model's hash and version waiting for, or carrying, its ``recordModel`` anchor."""

    __tablename__ = "models"
    __table_args__ = (
        Index("ix_models_status", "status"),
        Index("ix_models_model_hash", "model_hash"),
        CheckConstraint(_one_of("status", MODEL_STATUSES), name="status"),
    )

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    job_id: Mapped[str] = mapped_column(String(HEX32_LEN), ForeignKey("jobs.job_id"))
    model_hash: Mapped[str] = mapped_column(String(HEX32_LEN))
    status: Mapped[str] = mapped_column(String(16))
    tx_hash: Mapped[str | None] = mapped_column(String(HEX32_LEN))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
