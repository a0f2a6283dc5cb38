"""The API's boundary models: request bodies and responses (the OpenAPI contract).

The models themselves live in `secureflow.api.client.models` (the client parses answers into the same
classes the server declares its OpenAPI with); this module re-exports them for the routes and adds what only
the server needs: building them from the ledger's and the API database's objects, and the error responses
every route documents.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from secureflow.api.client.models import (
    AcceptedStep,
    AuditItem,
    CheckOut,
    ErrorDetail,
    ErrorResponse,
    Health,
    Hex32,
    JobLogs,
    JobOut,
    JobStatusEvent,
    JobSubmission,
    JobSubmitted,
    KeyCreated,
    KeyIn,
    KeyOut,
    Me,
    MemberIn,
    MemberOut,
    ModelOut,
    Name,
    OffsetPage,
    Page,
    PartyLog,
    PinOut,
    Readiness,
    ReadinessCheck,
    RecordCounts,
    RoleIn,
    RoleOut,
    StepDetail,
    StepOut,
    VerdictOut,
)
from secureflow.api.server.db import KeyInfo, Member, RecordItem
from secureflow.ledger.store.schemas import Job, job_is_stuck
from secureflow.ledger.verify import PinnedDeployment, Verdict

__all__ = [
    "ERROR_RESPONSES",
    "AcceptedStep",
    "AuditItem",
    "CheckOut",
    "ErrorDetail",
    "ErrorResponse",
    "Health",
    "Hex32",
    "JobLogs",
    "JobOut",
    "JobStatusEvent",
    "JobSubmission",
    "JobSubmitted",
    "KeyCreated",
    "KeyIn",
    "KeyOut",
    "Me",
    "MemberIn",
    "MemberOut",
    "ModelOut",
    "Name",
    "OffsetPage",
    "Page",
    "PartyLog",
    "PinOut",
    "Readiness",
    "ReadinessCheck",
    "RecordCounts",
    "RoleIn",
    "RoleOut",
    "StepDetail",
    "StepOut",
    "VerdictOut",
    "job_out",
    "key_out",
    "member_out",
    "pin_out",
    "step_out",
    "verdict_out",
]


def job_out(job: Job, service: str | None = None, idle_since: datetime | None = None) -> JobOut:
    """The API's view of a stored job; ``service``: the anchoring service bound to it at submission;
    ``idle_since``: a running job not updated since then is ``stuck`` (the API's stuck_after_seconds)."""
    stuck = idle_since is not None and job_is_stuck(job, idle_since)
    return JobOut(**job.model_dump(), service=service, stuck=stuck)


def step_out(item: RecordItem) -> StepOut:
    return StepOut(
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
        failure_reason=item.failure_reason,
    )


def pin_out(pin: PinnedDeployment) -> PinOut:
    return PinOut(
        source=pin.source,
        chain_id=pin.chain_id,
        ledger=pin.ledger.address,
        ledger_code_hash=pin.ledger.code_hash,
        registry=pin.registry.address if pin.registry else None,
        registry_code_hash=pin.registry.code_hash if pin.registry else None,
    )


def verdict_out(verdict: Verdict, pin: PinnedDeployment) -> VerdictOut:
    return VerdictOut(
        ok=verdict.ok,
        job_id=verdict.job_id,
        seq=verdict.seq,
        checks=[CheckOut(name=c.name, status=c.status, detail=c.detail) for c in verdict.checks],
        summary=verdict.summary(),
        warnings=list(verdict.warnings),
        pinned=pin_out(pin),
    )


def member_out(member: Member) -> MemberOut:
    return MemberOut(
        id=member.id,
        name=member.name,
        address=member.address,
        role=member.role,
        created_at=member.created_at,
    )


def key_out(key: KeyInfo) -> KeyOut:
    return KeyOut(
        key_id=key.key_id,
        member_id=key.member_id,
        label=key.label,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


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
