"""Pydantic v2 models at the ledger store's boundary: what goes in and what comes out.

Rows come back as frozen models, never as ORM objects, so callers cannot
change the database by accident and nothing leaks a session. Hex values are
normalised to lower case, addresses to their EIP-55 checksum form, and
timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from secureflow.ledger.records import job_id_for

JobStatus = Literal["created", "running", "completed", "failed", "cancelled", "rejected"]
ChainStatus = Literal["pending", "submitted", "confirmed"]
RecordStatus = Literal["pending", "submitted", "confirmed", "failed"]
BatchStatus = Literal["built", "submitted", "confirmed", "failed", "reorged"]
ModelStatus = Literal["pending", "submitted", "confirmed", "failed"]
CloseStatus = Literal["pending", "submitted", "confirmed", "failed"]

JOB_STATUSES: tuple[JobStatus, ...] = ("created", "running", "completed", "failed", "cancelled", "rejected")
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "rejected"})
CHAIN_STATUSES: tuple[ChainStatus, ...] = ("pending", "submitted", "confirmed")
RECORD_STATUSES: tuple[RecordStatus, ...] = ("pending", "submitted", "confirmed", "failed")
BATCH_STATUSES: tuple[BatchStatus, ...] = ("built", "submitted", "confirmed", "failed", "reorged")
MODEL_STATUSES: tuple[ModelStatus, ...] = ("pending", "submitted", "confirmed", "failed")
CLOSE_STATUSES: tuple[CloseStatus, ...] = ("pending", "submitted", "confirmed", "failed")

MAX_UINT64 = 2**64 - 1


def _lower(value: str) -> str:
    return value.lower()


def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"{value!r} is not an Ethereum address (0x + 40 hex digits, valid EIP-55 checksum)")
    return str(to_checksum_address(value))


Hex32 = Annotated[
    str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$", strip_whitespace=True), AfterValidator(_lower)
]
"""A 32-byte value as ``0x`` + 64 hex digits (job ids, hashes, leaves, roots)."""

Address = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_checksum)]
"""An Ethereum address, stored in its EIP-55 checksum form."""

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
"""A short human-readable reason (never raw data)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)


class NewJob(_Frozen):
    """A job to register: its id, the hash of its manifest, who created it and who takes part.

    ``salt`` is what the creator passes to the AuditLedger's ``createJob``; with it the id must be
    ``job_id_for(creator, manifest_hash, salt)`` (a job that will never be created on chain may have none).
    """

    job_id: Hex32
    manifest_hash: Hex32
    creator: Address
    parties: list[Address] = Field(min_length=1)
    salt: Hex32 | None = None

    @field_validator("parties")
    @classmethod
    def _unique_parties(cls, parties: list[str]) -> list[str]:
        if len(set(parties)) != len(parties):
            raise ValueError("parties must not repeat an address")
        return parties

    @model_validator(mode="after")
    def _id_from_salt(self) -> NewJob:
        if self.salt is not None and self.job_id != job_id_for(self.creator, self.manifest_hash, self.salt):
            raise ValueError("job_id is not job_id_for(creator, manifest_hash, salt)")
        return self


class Job(_Frozen):
    """A job as stored: its compute status, the status of its on-chain ``createJob`` and of its ``closeJob``.

    ``close_status`` is None until the job finishes, then ``pending`` (the anchoring service closes a job
    created on chain once its records and models are anchored), ``submitted``, ``confirmed``, or
    ``failed`` with ``close_reason`` (the contract refused the close; it is not retried). A job with a step
    record that could not be anchored (quarantined) is closed on chain as failed: ``submitted`` and then
    ``confirmed`` with a ``close_reason`` saying so.

    ``reason`` says why a job ended other than ``completed``: the failed step (its error class and
    message, which name columns, parties and steps, never values), the parties' consent refusals, the
    executor's failure, or who cancelled it; None for a job that is running or completed.
    ``updated_at`` moves on every status change and every accepted step record: a ``running`` job
    whose ``updated_at`` is old has stopped moving (see `job_is_stuck`).
    """

    job_id: Hex32
    manifest_hash: Hex32
    creator: Address
    parties: list[Address]
    salt: Hex32 | None
    status: JobStatus
    chain_status: ChainStatus
    created_tx_hash: Hex32 | None
    close_status: CloseStatus | None = None
    close_tx_hash: Hex32 | None = None
    close_block: int | None = None
    close_reason: str | None = None
    reason: str | None = None
    created_at: datetime
    updated_at: datetime


MAX_JOB_REASON = 2000
"""Characters of a job's ``reason`` kept (a longer one is cut, ending in an ellipsis)."""


def job_reason(text: str) -> str:
    """``text`` as a job's reason: one line of stripped text of at most `MAX_JOB_REASON` characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_JOB_REASON else line[: MAX_JOB_REASON - 1] + "…"


def job_is_stuck(job: Job, idle_since: datetime) -> bool:
    """Whether ``job`` is running but has had no status change and no new step record since ``idle_since``.

    The store answers the same for many jobs with ``stuck_jobs``/``count_stuck_jobs``."""
    return job.status == "running" and job.updated_at <= idle_since


class NewStepRecord(_Frozen):
    """One step record handed to the outbox: canonical JSON of digests/metadata, its hash and Merkle leaf."""

    job_id: Hex32
    seq: int = Field(ge=0, le=MAX_UINT64)
    record_json: str = Field(min_length=2)
    record_hash: Hex32
    leaf: Hex32

    @field_validator("record_json")
    @classmethod
    def _is_json_object(cls, value: str) -> str:
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"record_json is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise ValueError("record_json must be a JSON object")
        return value


class StepRecordRow(_Frozen):
    """A step record in the outbox with its anchoring status."""

    id: int
    job_id: Hex32
    seq: int
    record_json: str
    record_hash: Hex32
    leaf: Hex32
    status: RecordStatus
    batch_id: Hex32 | None
    failure_reason: str | None
    accepted_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None


class Batch(_Frozen):
    """A Merkle batch of step records and the transaction that anchors its root."""

    batch_id: Hex32
    root: Hex32
    record_count: int
    status: BatchStatus
    tx_hash: Hex32 | None
    sender: Address | None
    nonce: int | None
    block_number: int | None
    block_hash: Hex32 | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


class Checkpoint(_Frozen):
    """How far a chain follower (e.g. the event indexer) has processed, and the block hash it saw there."""

    name: str
    block_number: int
    block_hash: Hex32
    updated_at: datetime


class NewChainEvent(_Frozen):
    """A ledger-contract event as the indexer found it (decoded arguments as JSON-safe values)."""

    name: str = Field(min_length=1, max_length=64)
    block_number: int = Field(ge=0)
    block_hash: Hex32
    tx_hash: Hex32
    log_index: int = Field(ge=0)
    batch_id: Hex32 | None = None
    root: Hex32 | None = None
    job_id: Hex32 | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class ChainEvent(NewChainEvent):
    """An indexed event with its row id."""

    id: int


class IndexedBlock(_Frozen):
    """A block the indexer processed and the hashes it saw (for reorg detection)."""

    block_number: int
    block_hash: Hex32
    parent_hash: Hex32


class NewModel(_Frozen):
    """A trained model to record on chain: its id, version (1, 2, … per id), job and hash."""

    model_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    version: int = Field(ge=1, le=2**32 - 1)
    job_id: Hex32
    model_hash: Hex32


class ModelRow(NewModel):
    """A model and the state of its ``recordModel`` transaction (``failed``: the contract refused it, with
    the reason; it is not retried)."""

    status: ModelStatus
    tx_hash: Hex32 | None
    block_number: int | None
    failure_reason: str | None = None
    accepted_at: datetime
    updated_at: datetime
