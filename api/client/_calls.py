"""One builder per route of the table: the request (path, query, body) and how to read the answer. The sync
and the async resources send the same `Call`; nothing here does I/O."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from secureflow.api.client._http import (
    Call,
    as_bytes,
    as_json_object,
    as_model,
    as_text,
    body_of,
    call,
)
from secureflow.api.client.formats import (
    AuditBundle,
    PreparedTransaction,
    Receipt,
    SettlementHistory,
    SettlementOut,
    SubmittedTransaction,
)
from secureflow.api.client.models import (
    ETH,
    AcceptedStep,
    ApprovalAccepted,
    ApprovalIn,
    AuditItem,
    Health,
    JobLogs,
    JobOut,
    JobSubmitted,
    JobTimeline,
    KeyCreated,
    KeyOut,
    Me,
    MemberOut,
    ModelOut,
    OffsetPage,
    Overview,
    Page,
    ProposalCreated,
    ProposalState,
    Readiness,
    Role,
    RoleOut,
    SearchResults,
    SettlementAction,
    StepDetail,
    StepOut,
    VerdictOut,
)

JsonObject = dict[str, Any]
Body = Mapping[str, Any] | BaseModel

# -- operations -------------------------------------------------------------------------------------------


def health() -> Call[Health]:
    return call("GET", "/healthz", as_model(Health))


def ready() -> Call[Readiness]:
    return call("GET", "/readyz", as_model(Readiness), answers=frozenset({503}))


def metrics() -> Call[str]:
    return call("GET", "/metrics", as_text)


# -- jobs -------------------------------------------------------------------------------------------------


def job_submit(manifest: Body, service: str | None) -> Call[JobSubmitted]:
    body: dict[str, Any] = {"manifest": body_of(manifest)}
    if service is not None:
        body["service"] = service
    return call("POST", "/v1/jobs", as_model(JobSubmitted), json=body)


def job_list(status: str | None, limit: int, offset: int, stuck: bool = False) -> Call[OffsetPage[JobOut]]:
    params = {"status": status, "limit": limit, "offset": offset, "stuck": True if stuck else None}
    return call("GET", "/v1/jobs", as_model(OffsetPage[JobOut]), params=params)


def job_get(job_id: str) -> Call[JobOut]:
    return call("GET", "/v1/jobs/{job_id}", as_model(JobOut), job_id=job_id)


def job_manifest(job_id: str) -> Call[JsonObject]:
    return call("GET", "/v1/jobs/{job_id}/manifest", as_json_object, job_id=job_id)


def job_timeline(job_id: str) -> Call[JobTimeline]:
    return call("GET", "/v1/jobs/{job_id}/timeline", as_model(JobTimeline), job_id=job_id)


def overview(hours: int = 6) -> Call[Overview]:
    return call("GET", "/v1/overview", as_model(Overview), params={"hours": hours})


def search(q: str, since: str | None, until: str | None, limit: int) -> Call[SearchResults]:
    params = {"q": q or None, "since": since, "until": until, "limit": limit}
    return call("GET", "/v1/search", as_model(SearchResults), params=params)


def job_logs(job_id: str, party: str | None, after: int) -> Call[JobLogs]:
    params = {"party": party, "after": after or None}
    return call("GET", "/v1/jobs/{job_id}/logs", as_model(JobLogs), params=params, job_id=job_id)


def job_cancel(job_id: str) -> Call[JobOut]:
    return call("POST", "/v1/jobs/{job_id}/cancel", as_model(JobOut), job_id=job_id)


def job_events(job_id: str, once: bool, last_event_id: str | None) -> Call[bytes]:
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = {"once": True} if once else None
    return call("GET", "/v1/jobs/{job_id}/events", as_bytes, params=params, headers=headers, job_id=job_id)


# -- steps and receipts -----------------------------------------------------------------------------------


def step_list(job_id: str, limit: int, cursor: str | None) -> Call[Page[StepOut]]:
    params = {"limit": limit, "cursor": cursor}
    return call("GET", "/v1/jobs/{job_id}/steps", as_model(Page[StepOut]), params=params, job_id=job_id)


def step_anchor(job_id: str, record: Body) -> Call[AcceptedStep]:
    return call(
        "POST", "/v1/jobs/{job_id}/steps", as_model(AcceptedStep), json=body_of(record), job_id=job_id
    )


def step_get(job_id: str, seq: int) -> Call[StepDetail]:
    return call("GET", "/v1/jobs/{job_id}/steps/{seq}", as_model(StepDetail), job_id=job_id, seq=seq)


def step_receipt(job_id: str, seq: int) -> Call[Receipt]:
    return call("GET", "/v1/jobs/{job_id}/steps/{seq}/receipt", as_model(Receipt), job_id=job_id, seq=seq)


# -- audit bundles ----------------------------------------------------------------------------------------


def bundle_get(job_id: str) -> Call[AuditBundle]:
    return call("GET", "/v1/jobs/{job_id}/bundle", as_model(AuditBundle), job_id=job_id)


def bundle_download(job_id: str) -> Call[bytes]:
    return call("GET", "/v1/jobs/{job_id}/bundle", as_bytes, job_id=job_id)


# -- audit queries, verification, models ------------------------------------------------------------------


def audit_records(
    *,
    job_id: str | None,
    member: str | None,
    algorithm: str | None,
    model_hash: str | None,
    since: datetime | None,
    until: datetime | None,
    status: str | None,
    verify: bool,
    limit: int,
    cursor: str | None,
) -> Call[Page[AuditItem]]:
    params = {
        "job_id": job_id,
        "member": member,
        "algorithm": algorithm,
        "model_hash": model_hash,
        "since": since,
        "until": until,
        "status": status,
        "verify": verify or None,
        "limit": limit,
        "cursor": cursor,
    }
    return call("GET", "/v1/audit/records", as_model(Page[AuditItem]), params=params)


def verify(receipt: Body) -> Call[VerdictOut]:
    return call("POST", "/v1/verify", as_model(VerdictOut), json=body_of(receipt))


def model_list(
    job_id: str | None, model_hash: str | None, limit: int, cursor: str | None
) -> Call[Page[ModelOut]]:
    params = {"job_id": job_id, "model_hash": model_hash, "limit": limit, "cursor": cursor}
    return call("GET", "/v1/models", as_model(Page[ModelOut]), params=params)


# -- members, keys, roles ---------------------------------------------------------------------------------


def me() -> Call[Me]:
    return call("GET", "/v1/me", as_model(Me))


def member_list(limit: int, cursor: str | None) -> Call[Page[MemberOut]]:
    return call("GET", "/v1/members", as_model(Page[MemberOut]), params={"limit": limit, "cursor": cursor})


def member_create(name: str, address: str, role: Role) -> Call[MemberOut]:
    body = {"name": name, "address": address, "role": role}
    return call("POST", "/v1/members", as_model(MemberOut), json=body)


def member_get(member_id: int) -> Call[MemberOut]:
    return call("GET", "/v1/members/{member_id}", as_model(MemberOut), member_id=member_id)


def member_set_role(member_id: int, role: Role) -> Call[MemberOut]:
    return call(
        "PUT", "/v1/members/{member_id}/role", as_model(MemberOut), json={"role": role}, member_id=member_id
    )


def key_list(member_id: int) -> Call[Page[KeyOut]]:
    return call("GET", "/v1/members/{member_id}/keys", as_model(Page[KeyOut]), member_id=member_id)


def key_create(member_id: int, label: str) -> Call[KeyCreated]:
    return call(
        "POST",
        "/v1/members/{member_id}/keys",
        as_model(KeyCreated),
        json={"label": label},
        member_id=member_id,
    )


def key_revoke(key_id: str) -> Call[KeyOut]:
    return call("POST", "/v1/keys/{key_id}/revoke", as_model(KeyOut), key_id=key_id)


def role_list() -> Call[Page[RoleOut]]:
    return call("GET", "/v1/roles", as_model(Page[RoleOut]))


# -- settlement -------------------------------------------------------------------------------------------


def settlement_get(job_id: str, asset: str) -> Call[SettlementOut]:
    params = {"asset": asset} if asset != ETH else None
    return call("GET", "/v1/settlements/{job_id}", as_model(SettlementOut), params=params, job_id=job_id)


def settlement_history(job_id: str) -> Call[SettlementHistory]:
    return call("GET", "/v1/settlements/{job_id}/history", as_model(SettlementHistory), job_id=job_id)


def settlement_propose(job_id: str, inputs: Body) -> Call[ProposalCreated]:
    return call(
        "POST",
        "/v1/settlements/{job_id}/proposals",
        as_model(ProposalCreated),
        json=body_of(inputs),
        job_id=job_id,
    )


def settlement_proposal(job_id: str) -> Call[ProposalState]:
    return call("GET", "/v1/settlements/{job_id}/proposal", as_model(ProposalState), job_id=job_id)


def settlement_approve(job_id: str, approval: ApprovalIn | Mapping[str, Any]) -> Call[ApprovalAccepted]:
    return call(
        "POST",
        "/v1/settlements/{job_id}/approvals",
        as_model(ApprovalAccepted),
        json=body_of(approval),
        job_id=job_id,
    )


def settlement_prepare(
    job_id: str, action: SettlementAction, asset: str, amount: int | None
) -> Call[PreparedTransaction]:
    body: dict[str, Any] = {"action": action, "asset": asset}
    if amount is not None:
        body["amount"] = amount
    return call(
        "POST",
        "/v1/settlements/{job_id}/transactions/prepare",
        as_model(PreparedTransaction),
        json=body,
        job_id=job_id,
    )


def settlement_submit(job_id: str, raw_transaction: str | bytes) -> Call[SubmittedTransaction]:
    raw = "0x" + raw_transaction.hex() if isinstance(raw_transaction, bytes) else raw_transaction
    return call(
        "POST",
        "/v1/settlements/{job_id}/transactions",
        as_model(SubmittedTransaction),
        json={"raw_transaction": raw},
        job_id=job_id,
    )
