"""Jobs, their steps, receipts and audit bundles, live status, and anchoring of step records by services.

Roles: submit (member, must be a party and every party an active member on
chain); read (admin, auditor, service: all jobs; member: jobs it is party to);
cancel (admin; member party); anchor steps (service with the ANCHOR role on
chain, bound to the job at submission, posting records signed by every job
party, in seq order without gaps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from secureflow.api.server.auth import (
    allow,
    job_not_visible,
    principal_of,
    scope_address,
    still_allowed,
    visible_job,
)
from secureflow.api.server.context import Services, services
from secureflow.api.server.db import Principal
from secureflow.api.server.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    QueueUnavailableError,
    RefusedError,
    RegistryConflictError,
    TooManyRequestsError,
    UnavailableError,
)
from secureflow.api.server.manifests import new_job_id, validate_manifest
from secureflow.api.server.notify import StatusWaiter
from secureflow.api.server.reads import JsonBytes, hot_reads
from secureflow.api.server.schemas import (
    ERROR_RESPONSES,
    AcceptedStep,
    ErrorResponse,
    JobLogs,
    JobOut,
    JobStatusEvent,
    JobSubmission,
    JobSubmitted,
    OffsetPage,
    Page,
    PartyLog,
    RecordCounts,
    StepDetail,
    StepOut,
    job_out,
    step_out,
)
from secureflow.api.server.streams import SlotStreamingResponse, status_notifier, stream_slots
from secureflow.compute.joblogs import NodeLogsUnavailableError
from secureflow.ledger.errors import LedgerError, StoreConflictError
from secureflow.ledger.receipts import AuditBundle, Receipt, RecordNotAnchoredError, build_bundle
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import signature_problems
from secureflow.ledger.store.schemas import JOB_STATUSES, TERMINAL_JOB_STATUSES, Job, JobStatus, NewJob

log = logging.getLogger("api.jobs")
router = APIRouter(prefix="/v1", tags=["jobs"], responses=ERROR_RESPONSES)

READ = allow("admin", "auditor", "member", "service", scope="own_jobs")
JobId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the job id (0x + 64 hex digits)")]
Seq = Annotated[int, Path(ge=0, le=2**53 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Cursor = Annotated[
    str | None, Query(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page")
]


def _job(request: Request, job_id: str) -> Job:
    """The job if the caller may see it, else 404: a member only its jobs, a service only the jobs bound to
    it at submission (their manifests, bundles and job secrets are not another service's business)."""
    principal, svc = principal_of(request), services(request)
    job = visible_job(principal, svc.store.get_job(job_id.lower()), job_id)
    if principal.role == "service":
        bound = svc.db.job_services([job.job_id]).get(job.job_id)
        if bound is None or bound.lower() != principal.address.lower():
            raise job_not_visible(job_id)
    return job


def _idle_since(svc: Services) -> datetime:
    """A running job not updated since this time is stuck (the API's ``stuck_after_seconds``)."""
    return datetime.now(timezone.utc) - timedelta(seconds=svc.settings.stuck_after_seconds)


def _out(svc: Services, job: Job, service: str | None = None) -> JobOut:
    return job_out(job, service, _idle_since(svc))


def _bound_service(svc: Services, service: str | None) -> str | None:
    """The checksummed address of the anchoring service a submission binds its job to (checked first)."""
    if service is None:
        return None
    address = str(to_checksum_address(service))
    if not svc.is_anchor_service(address):
        raise RegistryConflictError(
            f"NotAnchorService({address}): the service named to post this job's steps has no ANCHOR role",
            hint="name an anchoring service an admin granted the ANCHOR role, or leave `service` out",
        )
    return address


def _refuse(reason: str, detail: str, *, by_registry: bool = False) -> RefusedError:
    """The AuditLedger's refusal of the job, answered first: 409 when the registry's current state refuses it
    (as the members routes do), 422 when no registry state would accept the manifest."""
    error = RegistryConflictError if by_registry else RefusedError
    return error(
        f"{reason}: {detail}; the AuditLedger contract would refuse this job",
        hint="register the account as an active member in the ConsortiumRegistry, or fix the parties",
    )


_SUBMIT_REFUSALS: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": "the registry on chain refuses the job as it stands (a party or the submitter is not "
        "an active member, the named service has no ANCHOR role: code refused_by_contract_rules; it passes "
        "once the registry changes), or the compute executor refused it (code conflict)",
    },
    422: {
        "model": ErrorResponse,
        "description": "an invalid manifest (code invalid_request), or one the contract refuses whatever the "
        "registry holds (a duplicate party, a submitter that is not a party: code refused_by_contract_rules)",
    },
}


@router.post(
    "/jobs",
    dependencies=[Depends(allow("member"))],
    status_code=201,
    response_model=JobSubmitted,
    responses=_SUBMIT_REFUSALS,
)
def submit_job(request: Request, body: JobSubmission) -> JobSubmitted:
    """Submit a job manifest: the job is stored (``created``) and handed to the compute executor, if any."""
    svc, principal = services(request), principal_of(request)
    valid = validate_manifest(body.manifest)
    parties = valid.parties
    if len({p.lower() for p in parties}) != len(parties):
        dup = next(p for p in parties if [q.lower() for q in parties].count(p.lower()) > 1)
        raise _refuse(f"DuplicateParty({dup})", "a party appears twice")
    if principal.address.lower() not in {p.lower() for p in parties}:
        raise _refuse(
            f"CallerNotParty({principal.address})", "the submitting member is not a party of the job"
        )
    for account in [principal.address, *parties]:
        if not svc.is_active_member(account):
            raise _refuse(
                f"NotActiveMember({account})", "not an active member in the registry", by_registry=True
            )
    service = _bound_service(svc, body.service)
    job_id, salt = new_job_id(principal.address, valid.manifest_hash)
    job = svc.store.create_job(
        NewJob(
            job_id=job_id,
            manifest_hash=valid.manifest_hash,
            creator=principal.address,
            parties=parties,
            salt=salt,
        )
    )
    svc.db.put_manifest(
        job.job_id, valid.manifest, principal.member_id, service=service, job_secret=valid.job_secret
    )
    if svc.executor is None:
        return JobSubmitted(
            job=_out(svc, job, service),
            execution="not_configured",
            message="job stored as created; no compute executor is configured in this API process, "
            "so it will not run until one is (services may still anchor its steps)",
        )
    try:
        svc.executor.submit(job, valid.manifest, valid.job_secret)
    except QueueUnavailableError as exc:
        # Accepted and stored: the queue sweeper sends it once the broker answers (nothing to resubmit).
        svc.db.wait_for_queue(job.job_id)
        log.warning("job stored, queue unreachable", extra={"job_id": job.job_id, "error": str(exc)})
        return JobSubmitted(
            job=_out(svc, job, service),
            execution="waiting_for_queue",
            message="job stored as created; the job queue (broker) is unreachable, so this API sends the job "
            "to it as soon as it answers: do not submit it again",
        )
    except Exception as exc:
        svc.store.update_job(
            job.job_id,
            status="failed",
            reason=f"the compute executor refused it: {type(exc).__name__}: {exc}",
        )
        log.warning("executor refused job", extra={"job_id": job.job_id, "error": type(exc).__name__})
        raise ConflictError(
            f"the compute executor refused job {job.job_id}: {exc}", hint="fix the manifest and submit again"
        ) from None
    refreshed = svc.store.get_job(job.job_id) or job
    return JobSubmitted(
        job=_out(svc, refreshed, service),
        execution="handed_to_executor",
        message="job handed to the executor",
    )


@router.get("/jobs", dependencies=[Depends(READ)], response_model=OffsetPage[JobOut])
def list_jobs(
    request: Request,
    status: Annotated[JobStatus | None, Query(description=f"one of {', '.join(JOB_STATUSES)}")] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    stuck: Annotated[
        bool,
        Query(
            description="only running jobs with no status change and no new step record for longer than "
            "the API's stuck_after_seconds, longest idle first"
        ),
    ] = False,
) -> OffsetPage[JobOut]:
    """Jobs newest first (members: only jobs they are party to); ``stuck=true``: the jobs that stopped
    moving."""
    svc = services(request)
    visible_to = scope_address(principal_of(request))
    if stuck:
        mine = None if visible_to is None else visible_to.lower()
        found = [
            job
            for job in svc.store.stuck_jobs(_idle_since(svc), limit=10_000)
            if status in (None, job.status) and (mine is None or mine in {p.lower() for p in job.parties})
        ]
        jobs, more = found[offset : offset + limit], len(found) > offset + limit
    else:
        ids = svc.db.jobs_page(visible_to=visible_to, status=status, limit=limit + 1, offset=offset)
        jobs = [job for job in (svc.store.get_job(i) for i in ids[:limit]) if job is not None]
        more = len(ids) > limit
    bound = svc.db.job_services([j.job_id for j in jobs])
    return OffsetPage[JobOut](
        items=[_out(svc, j, bound.get(j.job_id)) for j in jobs],
        next_offset=offset + limit if more else None,
    )


@router.get("/jobs/{job_id}", dependencies=[Depends(READ)], response_model=JobOut)
def get_job(request: Request, job_id: JobId) -> JobOut:
    """One job with its compute status, the status of its on-chain creation and close, its bound service."""
    svc, job = services(request), _job(request, job_id)
    return _out(svc, job, svc.db.job_services([job.job_id]).get(job.job_id))


@router.get("/jobs/{job_id}/manifest", dependencies=[Depends(READ)], response_model=dict[str, Any])
def get_manifest(request: Request, job_id: JobId) -> dict[str, Any]:
    """The manifest the job was submitted with (404 if it was not submitted through this API)."""
    job = _job(request, job_id)
    manifest = services(request).db.get_manifest(job.job_id)
    if manifest is None:
        from secureflow.api.server.errors import NotFoundError

        raise NotFoundError(f"job {job.job_id} was not submitted through the API: no manifest stored")
    return manifest


@router.get(
    "/jobs/{job_id}/logs",
    dependencies=[Depends(allow("admin", "auditor", "member", scope="own_jobs"))],
    response_model=JobLogs,
    responses={
        429: {"description": "job_log_concurrency log reads are under way in this process (Retry-After)"},
        503: {"description": "a party's node did not answer (the party is named)"},
    },
)
def get_job_logs(
    request: Request,
    job_id: JobId,
    party: Annotated[
        str | None,
        Query(max_length=128, description="one party, by its manifest name or member address (default: all)"),
    ] = None,
    after: Annotated[int, Query(ge=0, le=2**53 - 1, description="skip this many lines of each log")] = 0,
) -> JobLogs:
    """The job's log lines as each party keeps them (scrubbed with its own data when written).

    Each party's lines come from that party: in consortium mode its node answers a signed request (the API
    keeps no copy); a party whose node does not answer in time makes the answer a 503 naming it."""
    svc, job = services(request), _job(request, job_id)
    manifest = svc.db.get_manifest(job.job_id)
    if manifest is None:
        raise NotFoundError(f"job {job.job_id} was not submitted through the API: its parties are not named")
    named = [(str(p["name"]), str(p["address"]).lower()) for p in manifest.get("parties", [])]
    if party is not None:
        named = [(n, a) for n, a in named if party in (n, a) or party.lower() == a]
        if not named:
            raise NotFoundError(
                f"job {job.job_id} has no party {party[:80]!r}",
                hint="name a party of the job's manifest, or its member address",
            )
    source = svc.job_logs
    if source is None:
        raise UnavailableError(
            "this API reads no job logs",
            hint="set SECUREFLOW_COMPUTE_REDIS_URL and SECUREFLOW_LOG_READER_KEY_FILE (consortium mode)",
        )
    slots = _log_slots(request)
    if not slots.acquire(blocking=False):  # a read waits on the nodes: bounded, so the API keeps answering
        raise TooManyRequestsError(
            f"{svc.settings.job_log_concurrency} job log reads are under way in this API process",
            hint="retry after a few seconds",
            retry_after=max(1, round(svc.settings.node_log_timeout)),
        )
    try:
        return _read_job_logs(source, job.job_id, named, after)
    finally:
        slots.release()


_LOG_SLOTS_LOCK = threading.Lock()


def _log_slots(request: Request) -> threading.BoundedSemaphore:
    """The job log reads this app serves at once (``job_log_concurrency``), one semaphore per app."""
    state = request.app.state
    with _LOG_SLOTS_LOCK:
        slots: threading.BoundedSemaphore | None = getattr(state, "job_log_slots", None)
        if slots is None:
            slots = threading.BoundedSemaphore(services(request).settings.job_log_concurrency)
            state.job_log_slots = slots
    return slots


def _read_job_logs(source: Any, job_id: str, named: list[tuple[str, str]], after: int) -> JobLogs:
    """Ask every named party at once: a silent one costs one timeout, not one per party."""
    with ThreadPoolExecutor(max_workers=max(1, len(named)), thread_name_prefix="secureflow-joblogs") as pool:
        pages = [pool.submit(source.read, job_id, name, address, after) for name, address in named]
        out = []
        for (name, address), future in zip(named, pages, strict=True):
            try:
                page = future.result()
            except NodeLogsUnavailableError as exc:
                raise UnavailableError(str(exc.args[0]), hint=exc.hint) from None
            out.append(PartyLog(party=name, address=address, lines=page.lines, next=page.next))
    return JobLogs(job_id=job_id, parties=out)


@router.post("/jobs/{job_id}/cancel", dependencies=[Depends(allow("admin", "member", scope="own_jobs"))])
def cancel_job(request: Request, job_id: JobId) -> JobOut:
    """Cancel a job that has not finished; its accepted step records stay on the audit trail.

    A running job stops before its next step (the step running now finishes and is recorded); it is
    closed on chain once its executor is done with it."""
    svc, job = services(request), _job(request, job_id)
    if job.status in TERMINAL_JOB_STATUSES:
        raise ConflictError(
            f"job {job.job_id} is already {job.status}", hint="only unfinished jobs can be cancelled"
        )
    if svc.executor is not None:
        svc.executor.cancel(job.job_id)
    principal = principal_of(request)
    cancelled = svc.store.update_job(
        job.job_id,
        status="cancelled",
        reason=f"cancelled by {principal.name} ({principal.role} {principal.address})",
        # an executor may be running a step of it: the job closes on chain once that step is recorded
        hold_close=svc.executor is not None,
    )
    return _out(svc, cancelled, svc.db.job_services([job.job_id]).get(job.job_id))


def _cursor(value: str | None, default: int = 0) -> int:
    return int(value) if value is not None else default


@router.get("/jobs/{job_id}/steps", dependencies=[Depends(READ)], response_model=Page[StepOut])
async def list_steps(request: Request, job_id: JobId, limit: Limit = 100, cursor: Cursor = None) -> Response:
    """The job's step records in sequence order, each with its chain status (pages of ``limit``)."""
    body = await hot_reads(request).steps_page_json(
        principal_of(request), job_id.lower(), _cursor(cursor, -1), limit
    )
    return JsonBytes(body)


@router.post(
    "/jobs/{job_id}/steps",
    dependencies=[Depends(allow("service"))],
    status_code=201,
    response_model=AcceptedStep,
    responses={200: {"model": AcceptedStep, "description": "the same record was accepted before"}},
)
def anchor_step(request: Request, job_id: JobId, record: StepRecord) -> JSONResponse:
    """Accept a step record for anchoring (idempotent by job id and seq; a different record is a 409).

    The record is in the database (status ``pending``) when this returns; the anchoring worker batches
    it into a Merkle tree and anchors the root on chain.
    """
    svc, principal = services(request), principal_of(request)
    job = visible_job(principal, svc.store.get_job(job_id.lower()), job_id)  # the binding: 403 below
    if record.job_id != job.job_id:
        raise InvalidRequestError(
            f"the record's job_id {record.job_id} is not the job in the path {job.job_id}",
            hint="post the record to /v1/jobs/{its job_id}/steps",
        )
    if not svc.is_anchor_service(principal.address):
        raise ForbiddenError(
            f"NotAnchorService({principal.address}): this service's address has no ANCHOR role on chain",
            hint="an admin grants it with RegistryClient.grant_anchor_service",
        )
    bound = svc.db.job_services([job.job_id]).get(job.job_id)
    if bound is None or bound.lower() != principal.address.lower():
        raise ForbiddenError(
            f"NotJobService({principal.address}): job {job.job_id} is bound to "
            + (f"the service {bound}" if bound else "no external service (its own executor records it)"),
            hint="a service posts only the steps of jobs submitted with its address as `service`",
        )
    problems = signature_problems(record, job.parties)
    if problems:
        raise InvalidRequestError(
            f"step {record.seq} of job {job.job_id} is not signed by every job party: {'; '.join(problems)}",
            hint="each party's node signs its own part of the record (ledger.signing.sign_party) before "
            "the record is posted; the API accepts only records attributable to every party",
        )
    outbox = to_outbox(record)
    existing = svc.store.get_record(job.job_id, record.seq)
    if existing is None and job.status in TERMINAL_JOB_STATUSES:
        raise ConflictError(f"job {job.job_id} is {job.status}: no new steps are accepted")
    if existing is None:
        _, highest = svc.store.job_record_counts(job.job_id)
        expected = 0 if highest is None else highest + 1
        if record.seq != expected:
            raise ConflictError(
                f"job {job.job_id} takes step {expected} next, not step {record.seq}",
                hint="steps are numbered by the ledger: 0, 1, 2, … without gaps; post the record of step "
                f"{expected}",
            )
    if existing is not None and existing.record_hash != outbox.record_hash:
        raise ConflictError(
            f"step {record.seq} of job {job.job_id} was already accepted "
            f"with record hash {existing.record_hash}",
            hint="a step record is immutable once accepted: resend the identical record, or use the next seq",
        )
    try:
        row = existing or svc.store.accept_record(outbox)
    except StoreConflictError:
        raise
    if existing is None and job.status == "created":
        svc.store.update_job(job.job_id, status="running")
    body = AcceptedStep(
        job_id=row.job_id,
        seq=row.seq,
        record_hash=row.record_hash,
        leaf=row.leaf,
        chain_status=row.status,
        accepted_at=row.accepted_at,
        replayed=existing is not None,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if existing is not None else 201)


@router.get("/jobs/{job_id}/steps/{seq}", dependencies=[Depends(READ)], response_model=StepDetail)
def get_step(request: Request, job_id: JobId, seq: Seq) -> StepDetail:
    """A step's record, its chain status, and its receipt with Merkle proof once anchored."""
    svc, job = services(request), _job(request, job_id)
    items = svc.db.steps_page(job.job_id, seq - 1, 1)
    row = svc.store.get_record(job.job_id, seq)
    if row is None or not items or items[0].seq != seq:
        from secureflow.api.server.errors import NotFoundError

        raise NotFoundError(
            f"job {job.job_id} has no step {seq}", hint="list its steps: GET /v1/jobs/{job_id}/steps"
        )
    receipt: Receipt | None = None
    why: str | None = None
    try:
        receipt = svc.receipts.receipt(job.job_id, seq)
    except RecordNotAnchoredError as exc:
        why = str(exc)
    return StepDetail(
        step=step_out(items[0]),
        record=json.loads(row.record_json),
        receipt=receipt.model_dump(mode="json") if receipt else None,
        receipt_unavailable=why,
    )


@router.get(
    "/jobs/{job_id}/steps/{seq}/receipt",
    dependencies=[Depends(READ)],
    response_model=Receipt,
    responses={409: {"description": "the record is not anchored yet (code not_anchored)"}},
)
async def get_receipt(request: Request, job_id: JobId, seq: Seq) -> Response:
    """The step's receipt: record, leaf, Merkle proof, batch root, transaction, block (verify it anywhere)."""
    return JsonBytes(await hot_reads(request).receipt_json(principal_of(request), job_id.lower(), seq))


@router.get(
    "/jobs/{job_id}/bundle",
    dependencies=[Depends(READ)],
    response_class=Response,
    responses={200: {"model": AuditBundle, "description": "the audit bundle, as a JSON file (attachment)"}},
)
def get_bundle(request: Request, job_id: JobId) -> Response:
    """The job's audit bundle (manifest, job, all records, a receipt per anchored record) as a JSON file."""
    svc, job = services(request), _job(request, job_id)
    bundle = build_bundle(
        svc.store,
        svc.chain_id,
        svc.ledger_address,
        job.job_id,
        manifest=svc.db.get_manifest(job.job_id),
        job_secret=svc.db.get_job_secret(job.job_id),
    )
    return Response(
        bundle.model_dump_json(indent=1),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="audit_bundle_{job.job_id[2:14]}.json"'},
    )


def _snapshot(svc: Services, job_id: str) -> JobStatusEvent | None:
    job = svc.store.get_job(job_id)
    if job is None:
        return None
    counts = svc.db.job_record_counts(job_id)
    return JobStatusEvent(
        job_id=job.job_id,
        status=job.status,
        chain_status=job.chain_status,
        records=RecordCounts(**counts),
        updated_at=job.updated_at,
        reason=job.reason,
    )


def _poll(
    request: Request, principal: Principal, svc: Services, job_id: str
) -> tuple[JobStatusEvent | None, bool]:
    """A stream's poll: the job's state, and whether the caller may still see it (its key not revoked,
    its member not suspended: checked with the same caches as every request, so within their windows)."""
    try:
        allowed = still_allowed(request, principal)
    except LedgerError as exc:  # the chain node did not answer: ask again at the next poll
        log.warning("live status: access not re-checked", extra={"error": type(exc).__name__})
        allowed = True
    return _snapshot(svc, job_id), allowed


EVENT_ID = re.compile(r"^([0-9]{1,18})-([0-9a-f]{16})$")
"""A live-status event id: ``<n>-<digest>``, ``n`` counting up by one per event of the stream (and across
resumed streams), ``digest`` the first 16 hex digits of the SHA-256 of the event's data."""


def _event_digest(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def _resume_from(last_event_id: str | None) -> tuple[int, str | None]:
    """The number and state digest of the last event a reconnecting client saw (0, None: a new stream).

    A malformed id is not an error (browsers send back whatever id they got): the stream starts afresh."""
    match = EVENT_ID.match(last_event_id or "")
    return (int(match.group(1)), match.group(2)) if match else (0, None)


@router.get(
    "/jobs/{job_id}/events",
    dependencies=[Depends(READ)],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        429: {"description": "too many live-status streams open for this API key or this API process"},
    },
)
async def job_events(
    request: Request,
    job_id: JobId,
    once: Annotated[bool, Query(description="send the current state and end")] = False,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=128,
            description="resume: the id of the last event received; the state it carried is not sent again",
        ),
    ] = None,
) -> StreamingResponse:
    """Live job status as server-sent events (``event: status``), sent on every change of the job state or
    its records' chain status; the stream ends with ``event: end`` and its reason (``{"reason": "finished"}``:
    the job has finished and its records are settled; ``once``; ``time_limit``: after the API's
    ``sse_max_seconds``, connect again to go on; ``access_revoked``: the key was revoked or its role
    changed, or its member was suspended on chain, since the stream began). Each status event has an id
    (``<n>-<digest>``: ``n`` increases by one per event); reconnecting with ``Last-Event-ID`` continues the
    numbering and skips the current state if it is the one that event carried.

    A key may hold ``sse_max_streams_per_key`` streams at once and a process serves ``sse_max_streams``:
    the next one is a 429 (``too_many_requests``, with ``Retry-After``) until a stream ends or its client
    disconnects. A stream holds no worker thread: it waits on the event loop, and each read of the job's
    state is a short read in the worker threads of the database reads (`HotReads.run`).

    The stream reads the job's state from the database when it connects and whenever a change notice for
    the job wakes it (Redis pub/sub from every writer, or in-process: `secureflow.api.server.notify`), and at
    least every ``sse_poll_interval`` seconds: a notice lost (Redis restarted or unreachable) delays a status
    until that slow poll, it never loses it; the database is the source of truth, a notice is only a cue."""
    svc, principal, reads = services(request), principal_of(request), hot_reads(request)
    job = await reads.run(_job, request, job_id)
    interval, limit = svc.settings.sse_poll_interval, svc.settings.sse_max_seconds
    number, seen_digest = _resume_from(last_event_id)
    slot = stream_slots(request).acquire(principal.key_id)
    notifier = status_notifier(request)

    async def stream() -> AsyncIterator[str]:
        with notifier.subscribe(job.job_id) as waiter:  # before the first read: no change slips between
            async for chunk in _stream(waiter):
                yield chunk

    async def _stream(waiter: StatusWaiter) -> AsyncIterator[str]:
        sent = number
        last: str | None = None
        started = last_sent = time.monotonic()
        while True:
            event, allowed = await reads.run(_poll, request, principal, svc, job.job_id)
            if not allowed:
                yield 'event: end\ndata: {"reason": "access_revoked"}\n\n'
                return
            if event is None:
                return
            data = event.model_dump_json()
            if data != last:
                digest = _event_digest(data)
                if last is None and digest == seen_digest:
                    last = data  # the client has this state (Last-Event-ID): do not repeat it
                else:
                    last, last_sent, sent = data, time.monotonic(), sent + 1
                    yield f"id: {sent}-{digest}\nevent: status\ndata: {data}\n\n"
            if time.monotonic() - last_sent > 15:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            settled = event.records.pending == 0 and event.records.submitted == 0
            if event.status in TERMINAL_JOB_STATUSES and settled:
                reason = "finished"
            elif once:
                reason = "once"
            elif time.monotonic() - started > limit:
                reason = "time_limit"
            else:
                await waiter.wait(interval)  # a change notice, or the slow poll
                continue
            yield f'event: end\ndata: {{"reason": "{reason}"}}\n\n'
            return

    return SlotStreamingResponse(
        stream(), slot=slot, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )
