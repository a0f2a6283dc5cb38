"""The API's own tables (``api_*``): members, hashed API keys, job manifests, the audit record index,
settlement proposals and approvals. Only the API's database module (`secureflow.api.server.db`, whose
`ApiDb` holds every query) and its migrations import them (import-linter checks it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the API tables (separate metadata from the ledger store's)."""

    metadata = MetaData()


ROLE_CHECK = "role IN ('admin', 'member', 'service', 'auditor', 'metrics')"


class MemberOrm(Base):
    __tablename__ = "api_members"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="ck_api_members_role"),
        UniqueConstraint("name", name="uq_api_members_name"),
        UniqueConstraint("address", "role", name="uq_api_members_address_role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(42))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKeyOrm(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_member_id", "member_id"),)

    key_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    member_id: Mapped[int] = mapped_column(Integer, ForeignKey("api_members.id"))
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ManifestOrm(Base):
    __tablename__ = "api_manifests"

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    manifest_json: Mapped[str] = mapped_column(Text)
    submitted_by: Mapped[int] = mapped_column(Integer)
    service: Mapped[str | None] = mapped_column(String(42))  # api0005; the only service posting its steps
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    job_secret: Mapped[str | None] = mapped_column(String(66))  # api0004; parties and auditors only
    runner: Mapped[str | None] = mapped_column(String(64))  # api0006; the coordinator worker running it
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)  # api0006/7
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)  # api0007


class RecordIndexOrm(Base):
    __tablename__ = "api_record_index"
    __table_args__ = (
        Index("ix_api_record_index_algorithm", "algorithm", "record_id"),
        Index("ix_api_record_index_job", "job_id", "record_id"),
        Index("ix_api_record_index_started", "started_at_ms"),
    )

    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    job_id: Mapped[str] = mapped_column(String(66))
    seq: Mapped[int] = mapped_column(BigInteger)
    algorithm: Mapped[str] = mapped_column(String(64))
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    finished_at_ms: Mapped[int] = mapped_column(BigInteger)


class SettlementProposalOrm(Base):
    """A contribution proposal posted through the API (its record is in the ledger's outbox)."""

    __tablename__ = "api_settlement_proposals"

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    inputs_hash: Mapped[str] = mapped_column(String(66))
    proposal_json: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SettlementApprovalOrm(Base):
    """A party's EIP-712 approval signature of a proposal's weights (verified before it is stored)."""

    __tablename__ = "api_settlement_approvals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["job_id", "seq"],
            ["api_settlement_proposals.job_id", "api_settlement_proposals.seq"],
            name="fk_api_settlement_approvals_proposal",
        ),
    )

    job_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    party: Mapped[str] = mapped_column(String(42), primary_key=True)
    signature: Mapped[str] = mapped_column(String(132))
    member_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
