"""The auditors' console reads: the consortium overview and a job as a timeline.

Who sees what (the same rule as every job read):

- ``GET /v1/overview`` (admin, auditor, member): the registry's accounts and roles are public on chain, so
  everyone reading sees them (with the names this API knows them by for admins and auditors; a member sees
  its own name only); every figure about jobs and
  records (jobs by status, records anchored per minute and their latency, the anchoring backlog, the failed
  and stuck jobs) counts, for a member, only the jobs it is party to (or created); for the other roles, all.
  The counts and time buckets are computed in SQL by the ledger's read interface
  (`secureflow.ledger.store.audit_reads.AuditReads`).
- ``GET /v1/jobs/{job_id}/timeline`` (the same roles; a member only for its own jobs, else 404 as for any
  job read; a record is shown only if it hashes to the record hash and leaf it is stored under): the
  manifest, each party's consent on chain, every step with its record (algorithm, parameter hash, per-party
  salted digests) and whether each party's part is signed by that party's own key (recovered here through
  the verifier's cache), the models with their on-chain hash and version, and the close
  the chain recorded beside what this API holds. Digests and hashes only: no raw data, salts or keys.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from secureflow.api.client.models import (
    ActivityBucketOut,
    BacklogOut,
    CloseOut,
    ConsentOut,
    JobAttention,
    JobTimeline,
    LastBlockOut,
    Overview,
    OverviewAccount,
    PartyPartOut,
    TimelineModel,
    TimelineStep,
)
from secureflow.api.server.auth import allow, principal_of, scope_address, visible_job
from secureflow.api.server.context import INDEXER_CHECKPOINT, Services, services
from secureflow.api.server.schemas import ERROR_RESPONSES, job_out
from secureflow.ledger.contracts import RegistryAccount
from secureflow.ledger.records import PartyDigests, StepRecord, model_key
from secureflow.ledger.settlement.contribution import ALGORITHM as CONTRIBUTION_ALGORITHM
from secureflow.ledger.store.schemas import JOB_STATUSES, Batch, ChainEvent, Job, StepRecordRow
from secureflow.ledger.verify import cached_signer

router = APIRouter(prefix="/v1", tags=["console"], responses=ERROR_RESPONSES)

READ = allow("admin", "auditor", "member", scope="own_jobs")  # a service reads only its bound jobs' routes
JobId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$", description="the job id (0x + 64 hex digits)")]

BUCKET_SECONDS = 60
ATTENTION_LIMIT = 50
ACCOUNTS_TTL = 30.0
"""Seconds the overview keeps the registry's account list (see `_Accounts`)."""
TIMELINE_STEPS = 500
"""At most this many steps in a timeline (the steps page lists every step)."""


# -- the registry's accounts (a short cache: one chain call per account and role) -----------------------


class _Accounts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: dict[int, tuple[float, list[RegistryAccount]]] = {}

    def get(self, svc: Services) -> list[RegistryAccount]:
        now = time.monotonic()
        with self._lock:
            hit = self._cached.get(id(svc))
            if hit is not None and hit[0] > now:
                return hit[1]
        accounts = list(svc.client.call_rpc(svc.registry.accounts, svc.deployment.deploy_block))
        # the account list scans the registry's role events since deployment: kept at least ACCOUNTS_TTL
        # (a role change shows within that), unless membership answers are not cached at all
        ttl = svc.settings.registry_cache_seconds
        with self._lock:
            self._cached[id(svc)] = (now + (max(ACCOUNTS_TTL, ttl) if ttl > 0 else 0.0), accounts)
        return accounts


_ACCOUNTS = _Accounts()


def _idle_since(svc: Services) -> datetime:
    return datetime.now(timezone.utc) - timedelta(seconds=svc.settings.stuck_after_seconds)


def _sees(visible_to: str | None, job: Job) -> bool:
    if visible_to is None:
        return True
    mine = visible_to.lower()
    return mine == job.creator.lower() or mine in {p.lower() for p in job.parties}


@router.get("/overview", dependencies=[Depends(READ)], response_model=Overview)
def overview(
    request: Request,
    hours: Annotated[
        int, Query(ge=1, le=48, description="how many hours back the per-minute activity goes")
    ] = 6,
) -> Overview:
    """The consortium at a glance: registry accounts and roles, jobs by status, step records anchored per
    minute with their accept-to-confirmed latency, the anchoring backlog, the last block indexed, and the
    failed and stuck jobs with their reasons (members: figures of the jobs they are party to only)."""
    svc, principal = services(request), principal_of(request)
    visible_to = scope_address(principal)
    now = datetime.now(timezone.utc)
    start = now - timedelta(hours=hours)
    start = start.replace(second=0, microsecond=0)  # whole buckets
    by_status, buckets, backlog = svc.db.overview_counts(
        visible_to=visible_to, since=start, bucket_seconds=BUCKET_SECONDS
    )

    accounts: list[OverviewAccount] = []
    accounts_error: str | None = None
    try:
        registry_accounts = _ACCOUNTS.get(svc)
    except Exception as exc:  # the chain node is down: the rest of the overview still stands
        registry_accounts = []
        accounts_error = f"the registry could not be read: {type(exc).__name__}"
    if registry_accounts:
        # addresses and roles are the chain's (public); the names are this API's: for admins and auditors,
        # a member sees its own only (review: which address is whose is not every member's business)
        names = {m.address.lower(): m.name for m in svc.db.list_members(limit=10_000, after_id=0)}
        if principal.role not in ("admin", "auditor"):
            names = {a: n for a, n in names.items() if a == principal.address.lower()}
        accounts = [
            OverviewAccount(
                address=a.address,
                name=names.get(a.address.lower()),
                roles=list(a.roles),
                suspended=a.suspended,
            )
            for a in registry_accounts
        ]

    attention: dict[str, JobAttention] = {}
    failed_ids = svc.db.jobs_page(visible_to=visible_to, status="failed", limit=ATTENTION_LIMIT, offset=0)
    failed = [job for job in (svc.store.get_job(i) for i in failed_ids) if job is not None]
    stuck = [j for j in svc.store.stuck_jobs(_idle_since(svc), limit=10_000) if _sees(visible_to, j)]
    for job, is_stuck in [*((j, True) for j in stuck), *((j, False) for j in failed)]:
        attention.setdefault(
            job.job_id,
            JobAttention(
                job_id=job.job_id,
                status=job.status,
                stuck=is_stuck,
                reason=job.reason,
                close_reason=job.close_reason,
                updated_at=job.updated_at,
            ),
        )
    listed = sorted(attention.values(), key=lambda a: a.updated_at, reverse=True)[:ATTENTION_LIMIT]

    checkpoint = svc.store.get_checkpoint(INDEXER_CHECKPOINT)
    oldest = backlog.oldest_pending_at
    return Overview(
        generated_at=now,
        scope="own_jobs" if visible_to is not None else "all",
        accounts=accounts,
        accounts_error=accounts_error,
        jobs_by_status={status: by_status.get(status, 0) for status in JOB_STATUSES},
        jobs_total=sum(by_status.values()),
        window_start=start,
        window_end=now,
        bucket_seconds=BUCKET_SECONDS,
        activity=[
            ActivityBucketOut(
                start=b.start,
                anchored=b.anchored,
                latency_avg_seconds=round(b.latency_avg_seconds, 3),
                latency_max_seconds=round(b.latency_max_seconds, 3),
            )
            for b in buckets
        ],
        backlog=BacklogOut(
            pending=backlog.pending,
            submitted=backlog.submitted,
            failed=backlog.failed,
            oldest_pending_at=oldest,
            oldest_pending_age_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        ),
        last_block=None
        if checkpoint is None
        else LastBlockOut(
            number=checkpoint.block_number, hash=checkpoint.block_hash, seen_at=checkpoint.updated_at
        ),
        attention=listed,
    )


# -- a job as a timeline ---------------------------------------------------------------------------------


def _events(svc: Services, name: str, job_id: str) -> list[ChainEvent]:
    found: list[ChainEvent] = []
    after = 0
    while True:
        page = svc.store.events(name=name, job_id=job_id, limit=1000, after_id=after)
        found.extend(page)
        if len(page) < 1000:
            return found
        after = page[-1].id


def _part_problem(record: StepRecord, record_hash: str, part: PartyDigests) -> tuple[bool, str | None]:
    """(valid, problem) of one party's part (its signature recovered once, remembered by record hash)."""
    if part.signature is None:
        if record.algorithm == CONTRIBUTION_ALGORITHM:
            return False, "a contribution record: its parties approve its weights on the Settlement, unsigned"
        return False, "not signed"
    signer = cached_signer(record_hash, record, part)
    if signer is None:
        return False, "the signature is malformed"
    if signer.lower() != part.party.lower():
        return False, f"signed by {signer}, not by {part.party}"
    return True, None


def _unreadable(common: dict[str, Any], why: str) -> TimelineStep:
    return TimelineStep(
        **common,
        algorithm="",
        params_hash="",
        code_version="",
        status=f"unreadable: {why}",
        started_at_ms=0,
        finished_at_ms=0,
        duration_ms=0,
        parties=[],
        signatures_valid=False,
    )


def _timeline_step(row: StepRecordRow, batch: Batch | None, parties: list[str]) -> TimelineStep:
    anchored = row.status in ("submitted", "confirmed") and batch is not None
    common: dict[str, Any] = {
        "seq": row.seq,
        "record_hash": row.record_hash,
        "chain_status": row.status,
        "batch_id": row.batch_id,
        "tx_hash": batch.tx_hash if anchored and batch is not None else None,
        "block_number": batch.block_number if anchored and batch is not None else None,
        "failure_reason": row.failure_reason,
    }
    try:
        record = StepRecord.model_validate_json(row.record_json)
        _canonical, record_hash, leaf = record.hashes()
    except ValueError:
        return _unreadable(common, "the stored record is not a step record")
    if ("0x" + record_hash.hex(), "0x" + leaf.hex()) != (row.record_hash.lower(), row.leaf.lower()) or (
        record.job_id.lower(),
        record.seq,
    ) != (
        row.job_id.lower(),
        row.seq,
    ):  # what is shown and checked is the record that was hashed and anchored, or nothing
        return _unreadable(common, "the stored record is not the one its hash and leaf name")
    job_parties = {p.lower() for p in parties}
    parts, seen = [], []
    for part in record.parties:
        valid, problem = _part_problem(record, row.record_hash, part)
        if valid and part.party.lower() not in job_parties:
            valid, problem = False, "not a party of the job"
        seen.append(part.party.lower())
        parts.append(
            PartyPartOut(
                party=part.party,
                inputs=dict(part.inputs),
                outputs=dict(part.outputs),
                signed=part.signature is not None,
                signature_valid=valid,
                problem=problem,
            )
        )
    return TimelineStep(
        **common,
        algorithm=record.algorithm,
        params_hash=record.params_hash,
        code_version=record.code_version,
        status=record.status if record.error_class is None else f"{record.status} ({record.error_class})",
        started_at_ms=record.started_at_ms,
        finished_at_ms=record.finished_at_ms,
        duration_ms=record.finished_at_ms - record.started_at_ms,
        parties=parts,
        # every job party exactly once, each signed by its own key (`signature_problems`, from the parts)
        signatures_valid=sorted(seen) == sorted(job_parties) and all(p.signature_valid for p in parts),
    )


@router.get("/jobs/{job_id}/timeline", dependencies=[Depends(READ)], response_model=JobTimeline)
def job_timeline(request: Request, job_id: JobId) -> JobTimeline:
    """A job from manifest to close: the manifest, each party's consent on chain, every step's record with
    its signatures checked and its anchoring, the models with their on-chain hash, and the close the chain
    recorded compared with this API's."""
    svc = services(request)
    job = visible_job(principal_of(request), svc.store.get_job(job_id.lower()), job_id)
    bound = svc.db.job_services([job.job_id]).get(job.job_id)

    consented = {str(e.args.get("party", "")).lower(): e for e in _events(svc, "JobConsented", job.job_id)}
    consents = [
        ConsentOut(
            party=party,
            consented=party.lower() in consented,
            tx_hash=consented[party.lower()].tx_hash if party.lower() in consented else None,
            block_number=consented[party.lower()].block_number if party.lower() in consented else None,
        )
        for party in job.parties
    ]
    opened = _events(svc, "JobOpened", job.job_id)

    rows = svc.store.records_for_job(job.job_id)
    batches: dict[str, Batch | None] = {}
    for row in rows[:TIMELINE_STEPS]:
        if row.batch_id is not None and row.batch_id not in batches:
            batches[row.batch_id] = svc.store.get_batch(row.batch_id)
    steps = [
        _timeline_step(row, batches.get(row.batch_id) if row.batch_id else None, list(job.parties))
        for row in rows[:TIMELINE_STEPS]
    ]

    recorded = {
        (str(e.args.get("modelId", "")).lower(), int(e.args.get("version", 0))): e
        for e in _events(svc, "ModelRecorded", job.job_id)
    }
    models = []
    for model in svc.store.models(job_id=job.job_id):
        event = recorded.get(("0x" + model_key(model.model_id).hex(), model.version))
        models.append(
            TimelineModel(
                model_id=model.model_id,
                version=model.version,
                model_hash=model.model_hash,
                status=model.status,
                on_chain_hash=str(event.args.get("modelHash")) if event is not None else None,
                tx_hash=event.tx_hash if event is not None else model.tx_hash,
                block_number=event.block_number if event is not None else model.block_number,
            )
        )

    closed = _events(svc, "JobClosed", job.job_id)
    # the settlement's contribution records follow the close: the job's own steps are the others
    contribution = {step.seq for step in steps if step.algorithm == CONTRIBUTION_ALGORITHM}
    rows = [row for row in rows if row.seq not in contribution]
    last = rows[-1] if rows else None
    last_batch = None
    if last is not None and last.batch_id is not None:
        last_batch = batches.get(last.batch_id) or svc.store.get_batch(last.batch_id)
    api_root = last_batch.root if last_batch is not None else None
    event = closed[-1] if closed else None
    close = CloseOut(
        close_status=job.close_status,
        close_reason=job.close_reason,
        on_chain=event is not None,
        step_count=int(event.args.get("stepCount", 0)) if event is not None else None,
        final_root=str(event.args.get("finalRoot")) if event is not None else None,
        final_record_hash=str(event.args.get("finalRecordHash")) if event is not None else None,
        succeeded=bool(event.args.get("succeeded")) if event is not None else None,
        tx_hash=event.tx_hash if event is not None else job.close_tx_hash,
        block_number=event.block_number if event is not None else job.close_block,
        api_step_count=len(rows),
        api_final_root=api_root,
        api_final_record_hash=last.record_hash if last is not None else None,
        matches=None
        if event is None
        else (
            int(event.args.get("stepCount", -1)) == len(rows)
            and str(event.args.get("finalRoot", "")).lower() == (api_root or _ZERO).lower()
            and str(event.args.get("finalRecordHash", "")).lower()
            == (last.record_hash if last is not None else _ZERO).lower()
        ),
    )
    return JobTimeline(
        job=job_out(job, bound, _idle_since(svc)),
        manifest=svc.db.get_manifest(job.job_id),
        consents=consents,
        opened_tx_hash=opened[-1].tx_hash if opened else None,
        steps=steps,
        steps_truncated=len(rows) > TIMELINE_STEPS,
        models=models,
        close=close,
    )


_ZERO = "0x" + "00" * 32
