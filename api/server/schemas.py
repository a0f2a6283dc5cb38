"""Pydantic v2 models at the API's boundary: request bodies and responses (the OpenAPI contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from secureflow.api.server.db import KeyInfo, Member, RecordItem, Role
from secureflow.ledger.records import Address as RawAddress
from secureflow.ledger.store.schemas import Job
from secureflow.ledger.verify import PinnedDeployment, Verdict

T = TypeVar("T")

Hex32 = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorDetail(_Out):
    code: str = Field(description="machine-readable error code, e.g. not_found, invalid_request")
    message: str = Field(description="what went wrong and what to do")
    request_id: str = Field(description="the request id (X-Request-ID) to quote in a support request")


class ErrorResponse(_Out):
    """The one error shape of every error response."""

    error: ErrorDetail


class Page(_Out, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next page (null: last page)."""

    items: list[T]
    next_cursor: str | None = None


class OffsetPage(_Out, Generic[T]):
    """One page of a list ordered newest first; ``next_offset`` is null on the last page."""

    items: list[T]
    next_offset: int | None = None


# -- jobs ------------------------------------------------------------------------------------------------


class JobSubmission(BaseModel):
    """A job manifest to run (parties, datasets by reference, ordered steps)."""

    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any] = Field(
        description="the job manifest (secureflow.compute.manifest.JobManifest format)"
    )


class RecordCounts(_Out):
    pending: int = 0
    submitted: int = 0
    confirmed: int = 0
    failed: int = 0


class JobOut(_Out):
    job_id: str
    manifest_hash: str
    creator: str
    parties: list[str]
    status: str
    chain_status: str = Field(description="status of the job's on-chain createJob")
    created_tx_hash: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**job.model_dump())


class JobSubmitted(_Out):
    job: JobOut
    execution: Literal["handed_to_executor", "not_configured"]
    message: str


class JobStatusEvent(_Out):
    """One live-status event of a job (sent whenever it changes)."""

    job_id: str
    status: str
    chain_status: str
    records: RecordCounts
    updated_at: datetime


class StepOut(_Out):
    """A step record's anchoring state (the record itself: GET .../steps/{seq})."""

    job_id: str
    seq: int
    algorithm: str
    started_at_ms: int
    finished_at_ms: int
    record_hash: str
    leaf: str
    chain_status: str = Field(description="pending, submitted, confirmed or failed")
    batch_id: str | None
    tx_hash: str | None
    block_number: int | None
    accepted_at: datetime
    confirmed_at: datetime | None

    @classmethod
    def of(cls, item: RecordItem) -> StepOut:
        return cls(
            job_id=item.job_id,
            seq=item.seq,
            algorithm=item.algorithm,
            started_at_ms=item.started_at_ms,
            finished_at_ms=item.finished_at_ms,
            record_hash=item.record_hash,
            leaf=item.leaf,
            chain_status=item.status,
            batch_id=item.batch_id,
            tx_hash=item.tx_hash,
            block_number=item.block_number,
            accepted_at=item.accepted_at,
            confirmed_at=item.confirmed_at,
        )


class CheckOut(_Out):
    name: str
    status: str
    detail: str


class PinOut(_Out):
    source: str = Field(description="where the pin comes from (for the API: its configured deployment)")
    chain_id: int | None
    ledger: str
    ledger_code_hash: str | None = Field(description="keccak256 of the ledger's runtime code")
    registry: str | None
    registry_code_hash: str | None

    @classmethod
    def of(cls, pin: PinnedDeployment) -> PinOut:
        return cls(
            source=pin.source,
            chain_id=pin.chain_id,
            ledger=pin.ledger.address,
            ledger_code_hash=pin.ledger.code_hash,
            registry=pin.registry.address if pin.registry else None,
            registry_code_hash=pin.registry.code_hash if pin.registry else None,
        )


class VerdictOut(_Out):
    ok: bool
    job_id: str | None
    seq: int | None
    checks: list[CheckOut]
    summary: str
    warnings: list[str] = Field(description="what could not be checked although the receipt is valid")
    pinned: PinOut = Field(description="the deployment the receipt was verified against")

    @classmethod
    def of(cls, verdict: Verdict, pin: PinnedDeployment) -> VerdictOut:
        return cls(
            ok=verdict.ok,
            job_id=verdict.job_id,
            seq=verdict.seq,
            checks=[CheckOut(name=c.name, status=c.status, detail=c.detail) for c in verdict.checks],
            summary=verdict.summary(),
            warnings=list(verdict.warnings),
            pinned=PinOut.of(pin),
        )


class AuditItem(StepOut):
    verification: VerdictOut | None = Field(default=None, description="with ?verify=true: checked on chain")


class StepDetail(_Out):
    step: StepOut
    record: dict[str, Any]
    receipt: dict[str, Any] | None = Field(
        description="the receipt with Merkle proof once anchored, else null"
    )
    receipt_unavailable: str | None = Field(description="why there is no receipt yet")


class AcceptedStep(_Out):
    job_id: str
    seq: int
    record_hash: str
    leaf: str
    chain_status: str
    accepted_at: datetime
    replayed: bool = Field(description="true if this exact record had been accepted before (nothing changed)")


# -- models ----------------------------------------------------------------------------------------------


class ModelOut(_Out):
    job_id: str | None
    model_id: str
    version: int
    model_hash: str
    block_number: int
    tx_hash: str


# -- members, roles, keys --------------------------------------------------------------------------------


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    address: RawAddress = Field(description="the member's on-chain address")
    role: Role


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class MemberOut(_Out):
    id: int
    name: str
    address: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        return cls(
            id=member.id,
            name=member.name,
            address=member.address,
            role=member.role,
            created_at=member.created_at,
        )


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Name = "default"


class KeyOut(_Out):
    key_id: str
    member_id: int
    label: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: KeyInfo) -> KeyOut:
        return cls(
            key_id=key.key_id,
            member_id=key.member_id,
            label=key.label,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyOut):
    key: str = Field(description="the API key: shown only now, store it safely (only its hash is kept)")


class RoleOut(_Out):
    role: str
    routes: list[str]


class Me(_Out):
    member_id: int
    name: str
    role: str
    address: str
    key_id: str


class Health(_Out):
    status: Literal["ok"]


class ReadinessCheck(_Out):
    name: str
    ok: bool
    detail: str


class Readiness(_Out):
    ready: bool
    checks: list[ReadinessCheck]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "no API key, or an unknown or revoked one"),
        (403, "the key's role may not call this route"),
        (404, "not found (or not visible to this member)"),
        (413, "request body too large"),
        (422, "invalid request (the message names the fields)"),
        (503, "the database or the chain node is unavailable"),
    )
}
"""The error responses every route may give, all in the one error shape."""
