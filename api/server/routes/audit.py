"""Audit queries (served from the indexed DB, each item with its chain status, ``?verify=true`` re-checks
on chain), receipt verification, and models (from the indexed ``ModelRecorded`` chain events).

Roles: audit queries and models (admin, auditor: everything; member: jobs it is
party to); verify (any role: it reads only the chain, against this API's configured
deployment, and the posted receipt).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from secureflow.api.server.auth import allow, principal_of, scope_address
from secureflow.api.server.context import Services, services
from secureflow.api.server.db import RecordFilter
from secureflow.api.server.errors import InvalidRequestError
from secureflow.api.server.schemas import (
    ERROR_RESPONSES,
    AuditItem,
    ModelOut,
    Page,
    VerdictOut,
    step_out,
    verdict_out,
)
from secureflow.ledger.receipts import Receipt, RecordNotAnchoredError
from secureflow.ledger.records import model_key
from secureflow.ledger.store.schemas import RECORD_STATUSES, RecordStatus
from secureflow.ledger.verify import verify_receipt, verify_receipts

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)

AUDIT = allow("admin", "auditor", "member", scope="own_jobs")
Hex32Query = Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{64}$")]
Cursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")
]


_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _date_time_text(value: object) -> object:
    """A query time is an RFC 3339 date-time with its zone, as the schema's ``date-time`` says: not a number
    (which pydantic would read as a Unix time), not a bare date, not a time without a zone."""
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise ValueError("expected an RFC 3339 date-time with its zone, e.g. 2026-01-31T12:00:00Z")
    return value


QueryTime = Annotated[datetime, BeforeValidator(_date_time_text)]


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidRequestError("give times with a timezone, e.g. 2026-01-31T12:00:00Z")
    return int(value.timestamp() * 1000)


def _jobs_with_model(request: Request, model_hash: str) -> list[str]:
    events = services(request).store.events(name="ModelRecorded", limit=100_000)
    return sorted(
        {e.job_id for e in events if e.job_id and str(e.args.get("modelHash", "")).lower() == model_hash}
    )


_VERIFYING: RunVar[CapacityLimiter] = RunVar("secureflow-verify-threads")


def _verify_limiter(request: Request) -> CapacityLimiter:
    """The worker threads ``?verify=true`` pages may hold at once (``verify_concurrency``, per process)."""
    try:
        return _VERIFYING.get()
    except LookupError:  # first use in this event loop
        limiter = CapacityLimiter(services(request).settings.verify_concurrency)
        _VERIFYING.set(limiter)
        return limiter


@router.get("/audit/records", dependencies=[Depends(AUDIT)], response_model=Page[AuditItem])
async def audit_records(
    request: Request,
    job_id: Hex32Query = None,
    member: Annotated[
        str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="a party's address")
    ] = None,
    algorithm: Annotated[str | None, Query(max_length=64)] = None,
    model_hash: Annotated[str | None, Hex32Query] = None,
    since: Annotated[
        QueryTime | None, Query(description="steps started at or after (ISO 8601 with zone)")
    ] = None,
    until: Annotated[QueryTime | None, Query(description="steps started before (ISO 8601 with zone)")] = None,
    status: Annotated[RecordStatus | None, Query(description=f"one of {', '.join(RECORD_STATUSES)}")] = None,
    verify: Annotated[bool, Query(description="re-check each anchored item against the chain")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> Page[AuditItem]:
    """Step records by job, member, algorithm, model hash, time range and status, in acceptance order.

    With ``verify=true`` (pages of at most ``max_verify_items`` items, whatever ``limit`` asks: follow
    ``next_cursor`` for the rest) each anchored item is re-checked on chain:
    the node is asked once per page for what receipts share (deployment, blocks, transactions, roots,
    jobs, roles) and in JSON-RPC batches for each item's ``verify(leaf, proof, root)``; at most
    ``verify_concurrency`` such pages are worked on at once per process, the others wait their turn
    without taking the worker threads other routes need."""
    svc = services(request)
    if verify:
        # a page size is an upper bound: with verify=true a page holds at most max_verify_items (the rest
        # follows with next_cursor), so every limit the schema allows is answered
        limit = min(limit, svc.settings.max_verify_items)
    filters = (job_id, member, algorithm, model_hash, since, until, status)
    after = int(cursor) if cursor else 0
    if not verify:
        return await run_in_threadpool(_audit_page, request, filters, after, limit, False)
    return await to_thread.run_sync(
        _audit_page, request, filters, after, limit, True, limiter=_verify_limiter(request)
    )


def _record_filter(
    request: Request,
    job_id: str | None,
    member: str | None,
    algorithm: str | None,
    model_hash: str | None,
    since: datetime | None,
    until: datetime | None,
    status: RecordStatus | None,
) -> RecordFilter:
    from eth_utils.address import to_checksum_address

    return RecordFilter(
        job_id=job_id.lower() if job_id else None,
        member=to_checksum_address(member) if member else None,
        algorithm=algorithm,
        job_ids=_jobs_with_model(request, model_hash.lower()) if model_hash else None,
        since_ms=_ms(since),
        until_ms=_ms(until),
        status=status,
        visible_to=scope_address(principal_of(request)),
    )


_Filters = tuple[
    str | None, str | None, str | None, str | None, datetime | None, datetime | None, RecordStatus | None
]


def _audit_page(request: Request, filters: _Filters, after: int, limit: int, verify: bool) -> Page[AuditItem]:
    svc = services(request)
    flt = _record_filter(request, *filters)
    rows = svc.db.query_records(flt, after, limit + 1)
    page = rows[:limit]
    receipts: dict[int, Receipt] = {}
    if verify:
        for row in page:
            if row.status in ("submitted", "confirmed"):
                with contextlib.suppress(RecordNotAnchoredError):  # anchored in the index, not yet here
                    receipts[row.record_id] = svc.receipts.receipt(row.job_id, row.seq)
    # One verification context for the page: the pinned deployment, blocks, roots and jobs are read once.
    verdicts = dict(zip(receipts, verify_receipts(list(receipts.values()), svc.w3, svc.pin), strict=True))
    items: list[AuditItem] = []
    for row in page:
        verdict = verdicts.get(row.record_id)
        verification = verdict_out(verdict, svc.pin) if verdict is not None else None
        items.append(AuditItem(**step_out(row).model_dump(), verification=verification))
    next_cursor = str(page[-1].record_id) if len(rows) > limit else None
    return Page[AuditItem](items=items, next_cursor=next_cursor)


@router.post(
    "/verify",
    dependencies=[Depends(allow("admin", "auditor", "member", "service"))],
    response_model=VerdictOut,
)
def verify(
    request: Request,
    receipt: Annotated[
        dict[str, Any], Body(description="a receipt (format version 2, or 1) as issued by this API")
    ],
) -> VerdictOut:
    """Verify a receipt against this API's own configured deployment (the audit ledger and registry it
    anchors to, pinned with their code hashes) on the chain node this API uses: the verdict, each check
    with its detail, and ``pinned``, the deployment it was verified against.

    A receipt naming another contract fails ``contract_pinned``; a malformed receipt is not an error: its
    ``receipt_format`` check fails. The check does not use the database, but it trusts this API's choice
    of deployment and node: an auditor runs ``secureflow verify --deployment FILE`` against its own node.
    """
    svc = services(request)
    return verdict_out(verify_receipt(receipt, svc.w3, svc.pin), svc.pin)


@dataclass(frozen=True)
class HeldModel:
    """What this API holds for a model: its name, hash and anchoring status."""

    name: str
    model_hash: str
    status: str


def _held(
    svc: Services, held: dict[str, dict[tuple[str, int], HeldModel]], job_id: str | None
) -> dict[tuple[str, int], HeldModel]:
    """The job's models this API holds, by their on-chain key (keccak256 of the name) and version."""
    if job_id is None:
        return {}
    if job_id not in held:
        held[job_id] = {
            ("0x" + model_key(m.model_id).hex(), m.version): HeldModel(m.model_id, m.model_hash, m.status)
            for m in svc.store.models(job_id=job_id)
        }
    return held[job_id]


@router.get("/models", dependencies=[Depends(AUDIT)], response_model=Page[ModelOut])
def list_models(
    request: Request,
    job_id: Hex32Query = None,
    model_hash: Hex32Query = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> Page[ModelOut]:
    """Models recorded on chain (id, version, hash: the indexed ModelRecorded events) and the job that
    produced them, each beside what this API holds for it (name, hash, status) and whether the hashes
    match."""
    svc, principal = services(request), principal_of(request)
    after = int(cursor) if cursor else 0
    items: list[ModelOut] = []
    next_cursor: str | None = None
    visible: dict[str, bool] = {}
    held: dict[str, dict[tuple[str, int], HeldModel]] = {}
    while len(items) < limit:
        events = svc.store.events(
            name="ModelRecorded", job_id=job_id.lower() if job_id else None, limit=1000, after_id=after
        )
        if not events:
            break
        for event in events:
            after = event.id
            args = event.args
            if model_hash and str(args.get("modelHash", "")).lower() != model_hash.lower():
                continue
            if principal.role == "member" and event.job_id is not None:
                if event.job_id not in visible:
                    job = svc.store.get_job(event.job_id)
                    visible[event.job_id] = job is not None and principal.address in (
                        job.creator,
                        *job.parties,
                    )
                if not visible[event.job_id]:
                    continue
            model_id, version = str(args.get("modelId", "")), int(args.get("version", 0))
            on_chain = str(args.get("modelHash", ""))
            here = _held(svc, held, event.job_id).get((model_id.lower(), version))
            items.append(
                ModelOut(
                    job_id=event.job_id,
                    model_id=model_id,
                    version=version,
                    model_hash=on_chain,
                    block_number=event.block_number,
                    tx_hash=event.tx_hash,
                    name=here.name if here else None,
                    api_model_hash=here.model_hash if here else None,
                    api_status=here.status if here else None,
                    hash_matches=None if here is None else here.model_hash.lower() == on_chain.lower(),
                )
            )
            if len(items) == limit:
                next_cursor = str(event.id)
                break
    return Page[ModelOut](items=items, next_cursor=next_cursor)
