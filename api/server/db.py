"""The API's database: the queries over its own tables (members, hashed API keys, job manifests, the audit
record index, settlement proposals and approvals; declared in `secureflow.api.server.tables`).

The API shares the ledger's database (one URL, one engine) but owns only the
``api_*`` tables, migrated by Alembic from ``api/server/migrations`` with their own
version table ``api_alembic_version`` (:func:`upgrade_engine`, run on
startup; safe from several processes at once). The ledger's tables are never
written here, and read only through the ledger's read interface
(`secureflow.ledger.store.audit_reads.AuditReads`, which joins our audit record index).

API keys: ``sfk_<key id>_<secret>``, 32 random bytes of secret. Only the
SHA-256 of the whole key is stored; a key is looked up by its id and compared
in constant time. A revoked key never authenticates again.

The audit record index holds, per outbox record id, the fields audit queries
filter on (algorithm, step times); it is filled from the ledger's outbox in
id order (:meth:`ApiDb.sync_record_index`), so records written by any
process (compute engine, API) are found.

For settlement, these tables are what the ledger's settlement service asks
for through its protocols (`secureflow.ledger.settlement.service`): the
proposals and approvals are its `ProposalBook` (:meth:`ApiDb.proposal_book`,
bound to the calling member), and the stored manifests its `StepPlans`
(:meth:`ApiDb.planned_steps`: a job submitted here is run by the compute
engine, so its contribution record waits for the job and goes after its last
planned step). The ``secureflow settle`` CLI reads the same manifests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, cast

from alembic.runtime.migration import MigrationContext
from sqlalchemy import CursorResult, Engine, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from secureflow.api.client.models import Role as Role  # re-exported: the roles of the API database
from secureflow.api.server.errors import ConflictError, NotFoundError, UnavailableError
from secureflow.api.server.tables import (
    ApiKeyOrm,
    ManifestOrm,
    MemberOrm,
    RecordIndexOrm,
    SettlementApprovalOrm,
    SettlementProposalOrm,
)
from secureflow.ledger.settlement.approval import Approval
from secureflow.ledger.settlement.book import ProposalBook, StoredApproval, StoredProposal
from secureflow.ledger.settlement.contribution import ContributionProposal
from secureflow.ledger.settlement.errors import ProposalConflictError
from secureflow.ledger.store import migrate
from secureflow.ledger.store.audit_reads import ActivityBucket, AuditReads, Backlog
from secureflow.ledger.store.audit_reads import RecordFilter as RecordFilter  # re-exported: audit queries
from secureflow.ledger.store.audit_reads import RecordItem as RecordItem  # re-exported: audit rows
from secureflow.ledger.store.engine import WRITE_OPTION, mask_url
from secureflow.ledger.store.search import SearchHit, SearchScope, search_hash, search_member, search_time

ROLES: tuple[Role, ...] = ("admin", "member", "service", "auditor", "metrics")
VERSION_TABLE = "api_alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
KEY_PREFIX = "sfk_"
_PG_LOCK = 0x5EC0_A91  # pg_advisory_xact_lock key for API schema upgrades
_ANALYZE_AFTER_ROWS = 1_000
_INDEX_CHUNK = 5_000


ClaimResult = Literal["claimed", "taken_over", "busy", "unknown"]
"""What `ApiDb.claim_job` found (see there)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def db_now(s: Session) -> datetime:
    """The database server's clock (PostgreSQL), else this host's: job leases are compared with it, so that
    coordinators on hosts whose clocks differ still agree when a lease lapsed (SQLite is one host's)."""
    if s.get_bind().dialect.name == "postgresql":
        value = s.scalar(select(func.now()))
        if isinstance(value, datetime):
            return value.astimezone(timezone.utc)
    return utcnow()


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


# -- migrations ------------------------------------------------------------------------------------------


def head_revision() -> str:
    return migrate.head_revision(MIGRATIONS_DIR)


def upgrade_engine(engine: Engine, revision: str = "head") -> None:
    """Migrate the API tables to ``revision`` in one locked transaction (advisory lock on PostgreSQL)."""
    migrate.upgrade_engine(engine, revision, migrations_dir=MIGRATIONS_DIR, lock_key=_PG_LOCK)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


# -- values ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    address: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    member_id: int
    label: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the member behind the API key, its role and on-chain address."""

    member_id: int
    name: str
    role: Role
    address: str
    key_id: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _member(row: MemberOrm) -> Member:
    created = _aware(row.created_at)
    assert created is not None  # noqa: S101 - invariant for the type checker, not input validation
    return Member(row.id, row.name, row.address, row.role, created)  # type: ignore[arg-type]


def _key(row: ApiKeyOrm) -> KeyInfo:
    created = _aware(row.created_at)
    assert created is not None  # noqa: S101 - invariant for the type checker, not input validation
    return KeyInfo(row.key_id, row.member_id, row.label, created, _aware(row.revoked_at))


def _proposal(row: SettlementProposalOrm) -> StoredProposal:
    created = _aware(row.created_at)
    assert created is not None  # noqa: S101 - invariant for the type checker, not input validation
    proposal = ContributionProposal.model_validate_json(row.proposal_json)
    return StoredProposal(proposal, row.inputs_hash, created, proposed_by=row.proposed_by)


def _approval(row: SettlementApprovalOrm) -> StoredApproval:
    created = _aware(row.created_at)
    assert created is not None  # noqa: S101 - invariant for the type checker, not input validation
    approval = Approval(job_id=row.job_id, party=row.party, signature=row.signature)
    return StoredApproval(row.seq, approval, created)


AUTH_CACHE_SECONDS = 2.0


class ApiDb:
    """The API's tables on the ledger's engine; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)
        self._index_lock = threading.Lock()
        self._indexed_upto = 0  # every outbox record with an id up to this is in the record index
        self.audit = AuditReads(RecordIndexOrm.__table__)  # the ledger's reads of its tables, with our index
        # key hash -> (principal, monotonic expiry): spares the DB on every request. Any key or role
        # change in this process clears it; other processes see a change within AUTH_CACHE_SECONDS.
        self._auth_cache: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def if_present(cls, engine: Engine) -> ApiDb | None:
        """The API's tables on ``engine`` if the API has created them there (it ran on this database), else
        None: for tools that share the database and read what the API stored (``secureflow settle``)."""
        if not inspect(engine).has_table(ManifestOrm.__tablename__):
            return None
        return cls(engine)

    def migrate(self) -> None:
        upgrade_engine(self.engine)

    def check(self) -> None:
        """Raise unless the database answers and the API tables are at the newest revision."""
        revision = current_revision(self.engine)
        if revision != head_revision():
            raise UnavailableError(
                f"the API tables are at revision {revision}, expected {head_revision()}",
                hint="restart the API (it migrates its tables on startup)",
            )

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Session]:
        factory = self._write if write else self._read
        try:
            with factory.begin() as session:
                yield session
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise UnavailableError(
                f"the database at {mask_url(self.engine.url)} failed: {type(exc.orig).__name__}",
                hint="check the database is reachable, then retry",
            ) from exc

    # -- members and keys ---------------------------------------------------------------------------------
    def create_member(self, name: str, address: str, role: Role) -> Member:
        try:
            with self._tx(write=True) as s:
                row = MemberOrm(name=name, address=address, role=role, created_at=utcnow())
                s.add(row)
                s.flush()
                return _member(row)
        except IntegrityError:
            raise ConflictError(
                f"a member named {name!r} or with address {address} and role {role} already exists",
                hint="list members with GET /v1/members and pick another name, or reuse the existing one",
            ) from None

    def get_member(self, member_id: int) -> Member:
        with self._tx(write=False) as s:
            row = s.get(MemberOrm, member_id)
            if row is None:
                raise NotFoundError(f"no member {member_id}", hint="list members with GET /v1/members")
            return _member(row)

    def list_members(self, limit: int, after_id: int) -> list[Member]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(MemberOrm).where(MemberOrm.id > after_id).order_by(MemberOrm.id).limit(limit)
            )
            return [_member(r) for r in rows]

    def set_role(self, member_id: int, role: Role) -> Member:
        with self._tx(write=True) as s:
            row = s.get(MemberOrm, member_id)
            if row is None:
                raise NotFoundError(f"no member {member_id}", hint="list members with GET /v1/members")
            row.role = role
            s.flush()
            member = _member(row)
        self._auth_cache.clear()  # after the commit: no request can cache the old role again
        return member

    def count_members(self, role: Role | None = None) -> int:
        with self._tx(write=False) as s:
            query = select(func.count()).select_from(MemberOrm)
            if role is not None:
                query = query.where(MemberOrm.role == role)
            return int(s.scalar(query) or 0)

    def create_key(self, member_id: int, label: str) -> tuple[KeyInfo, str]:
        """A new key for the member: its info and the plaintext key (returned once, never stored)."""
        key_id = secrets.token_hex(6)
        plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self._tx(write=True) as s:
            if s.get(MemberOrm, member_id) is None:
                raise NotFoundError(
                    f"no member {member_id}", hint="create the member first: POST /v1/members"
                )
            row = ApiKeyOrm(
                key_id=key_id,
                member_id=member_id,
                secret_hash=hash_key(plaintext),
                label=label,
                created_at=utcnow(),
                revoked_at=None,
            )
            s.add(row)
            s.flush()
            return _key(row), plaintext

    def list_keys(self, member_id: int) -> list[KeyInfo]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(ApiKeyOrm).where(ApiKeyOrm.member_id == member_id).order_by(ApiKeyOrm.created_at)
            )
            return [_key(r) for r in rows]

    def revoke_key(self, key_id: str) -> KeyInfo:
        with self._tx(write=True) as s:
            row = s.get(ApiKeyOrm, key_id)
            if row is None:
                raise NotFoundError(
                    f"no API key {key_id}", hint="list a member's keys: GET /v1/members/{id}/keys"
                )
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.flush()
            info = _key(row)
        self._auth_cache.clear()  # after the commit
        return info

    def cached_principal(self, key: str) -> Principal | None:
        """The principal of ``key`` if this process authenticated it in the last AUTH_CACHE_SECONDS, else
        None (then call `authenticate`). No database access: safe on the event loop."""
        cached = self._auth_cache.get(hash_key(key))
        return cached[0] if cached is not None and cached[1] > time.monotonic() else None

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None (constant-time comparison of the hash)."""
        if not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        key_id, sep, _secret = key[len(KEY_PREFIX) :].partition("_")
        if not sep or not key_id:
            return None
        digest = hash_key(key)
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self._tx(write=False) as s:
            found = s.execute(
                select(ApiKeyOrm, MemberOrm)
                .join(MemberOrm, MemberOrm.id == ApiKeyOrm.member_id)
                .where(ApiKeyOrm.key_id == key_id)
            ).first()
        expected = found[0].secret_hash if found is not None else hash_key("no such key")
        matches = hmac.compare_digest(digest, expected)
        if found is None or not matches or found[0].revoked_at is not None:
            return None
        key_row, member = found
        principal = Principal(member.id, member.name, member.role, member.address, key_row.key_id)
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (principal, time.monotonic() + AUTH_CACHE_SECONDS)
        return principal

    # -- manifests ---------------------------------------------------------------------------------------
    def put_manifest(
        self,
        job_id: str,
        manifest: dict[str, Any],
        submitted_by: int,
        service: str | None = None,
        job_secret: str | None = None,
    ) -> None:
        """Keep a submitted job's manifest, its submitter, the anchoring service bound to it (if any) and its
        job secret (the salt of its manifest and parameter commitments: shown only to the job's parties and
        auditors, in the audit bundle)."""
        with self._tx(write=True) as s:
            s.merge(
                ManifestOrm(
                    job_id=job_id,
                    manifest_json=json.dumps(manifest, sort_keys=True),
                    submitted_by=submitted_by,
                    service=service,
                    created_at=utcnow(),
                    job_secret=job_secret,
                    queued_at=utcnow(),  # handed over (or nothing to hand) at submission, unless set back
                )
            )

    def wait_for_queue(self, job_id: str) -> None:
        """The job queue did not take the job: leave it to the sweepers (`claim_unqueued`)."""
        with self._tx(write=True) as s:
            row = s.get(ManifestOrm, job_id, with_for_update=True)
            if row is not None:
                row.queued_at = None

    def unqueued_jobs(self, limit: int = 100) -> list[str]:
        """Jobs the job queue did not take at submission (the broker was unreachable), oldest first."""
        with self._tx(write=False) as s:
            return list(
                s.scalars(
                    select(ManifestOrm.job_id)
                    .where(ManifestOrm.queued_at.is_(None))
                    .order_by(ManifestOrm.created_at, ManifestOrm.job_id)
                    .limit(limit)
                )
            )

    def claim_unqueued(self, job_id: str) -> bool:
        """Take a waiting job for sending (one sweeper of several API processes wins); a failed send gives
        it back with `wait_for_queue`."""
        with self._tx(write=True) as s:
            result = s.execute(
                update(ManifestOrm)
                .where(ManifestOrm.job_id == job_id, ManifestOrm.queued_at.is_(None))
                .values(queued_at=db_now(s))
            )
            return bool(cast(CursorResult[Any], result).rowcount == 1)

    def job_services(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The anchoring service bound to each of ``job_ids`` at submission (unbound jobs are absent)."""
        if not job_ids:
            return {}
        with self._tx(write=False) as s:
            rows = s.execute(
                select(ManifestOrm.job_id, ManifestOrm.service).where(ManifestOrm.job_id.in_(list(job_ids)))
            )
            return {job_id: service for job_id, service in rows if service is not None}

    def get_manifest(self, job_id: str) -> dict[str, Any] | None:
        with self._tx(write=False) as s:
            row = s.get(ManifestOrm, job_id)
            return None if row is None else dict(json.loads(row.manifest_json))

    def get_job_secret(self, job_id: str) -> str | None:
        """The job secret a job was submitted with (None: not submitted here, or before api0004)."""
        with self._tx(write=False) as s:
            row = s.get(ManifestOrm, job_id)
            return None if row is None else row.job_secret

    # -- coordinator claims ----------------------------------------------------------------------------------
    def claim_job(self, job_id: str, runner: str, lease_seconds: float) -> ClaimResult:
        """Claim a submitted job for the coordinator worker ``runner`` (one transaction, row locked).

        ``claimed``: nobody ran it before; ``taken_over``: a runner claimed it before and its lease lapsed
        (it died mid-job); ``busy``: another runner holds a live lease (a duplicate delivery); ``unknown``:
        no manifest was submitted for it here. ``claimed`` and ``taken_over`` set the lease to now +
        ``lease_seconds``."""
        with self._tx(write=True) as s:
            now = db_now(s)
            row = s.get(ManifestOrm, job_id, with_for_update=True)
            if row is None:
                return "unknown"
            lease = _aware(row.lease_until)
            if row.runner is not None and row.runner != runner and lease is not None and lease > now:
                return "busy"
            result: ClaimResult = "claimed" if row.runner is None else "taken_over"
            row.runner = runner
            row.lease_until = now + timedelta(seconds=lease_seconds)
            return result

    def renew_lease(self, job_id: str, runner: str, lease_seconds: float) -> bool:
        """Extend ``runner``'s lease on a job; False if another runner took it over meanwhile."""
        with self._tx(write=True) as s:
            row = s.get(ManifestOrm, job_id, with_for_update=True)
            if row is None or row.runner != runner:
                return False
            row.lease_until = db_now(s) + timedelta(seconds=lease_seconds)
            return True

    def lapsed_leases(self, limit: int = 1000) -> list[tuple[str, str, datetime]]:
        """Claimed jobs whose lease has ended by the database's clock: (job id, runner, lease end), oldest
        first. Released leases (`release_job`) are not listed."""
        with self._tx(write=False) as s:
            now = db_now(s)
            rows = s.execute(
                select(ManifestOrm.job_id, ManifestOrm.runner, ManifestOrm.lease_until)
                .where(ManifestOrm.runner.is_not(None), ManifestOrm.lease_until < now)
                .order_by(ManifestOrm.lease_until)
                .limit(limit)
            )
            return [(job_id, str(runner), _aware(until) or now) for job_id, runner, until in rows]

    def take_lapsed(self, job_id: str, runner: str, lease_until: datetime) -> bool:
        """End a lapsed lease, only if it is still exactly the one listed (no renewal, no takeover since):
        the caller (one of several API processes' watchdogs) then has the job to itself."""
        with self._tx(write=True) as s:
            row = s.get(ManifestOrm, job_id, with_for_update=True)
            if row is None or row.runner != runner or _aware(row.lease_until) != lease_until:
                return False
            row.lease_until = None
            return True

    def release_job(self, job_id: str, runner: str) -> None:
        """``runner`` is done with the job (it holds no lease any more; the job stays claimed by it)."""
        with self._tx(write=True) as s:
            row = s.get(ManifestOrm, job_id, with_for_update=True)
            if row is not None and row.runner == runner:
                row.lease_until = None

    # -- settlement proposals and approvals (the ledger's ProposalBook, bound to a member) ----------------
    def proposal_book(self, member_id: int) -> ProposalBook:
        """The settlement service's `ProposalBook` over these tables; what it keeps is ``member_id``'s."""
        return _MemberProposalBook(self, member_id)

    def planned_steps(self, job_id: str) -> int | None:
        """`StepPlans` of the settlement service: the step count of a job submitted here (None: not)."""
        manifest = self.get_manifest(job_id)
        return None if manifest is None else len(manifest.get("steps", ()))

    def add_proposal(
        self, proposal: ContributionProposal, inputs_hash: str, member_id: int
    ) -> StoredProposal:
        """Store a proposal; `ProposalConflictError` if the job has one with this seq already."""
        try:
            with self._tx(write=True) as s:
                row = SettlementProposalOrm(
                    job_id=proposal.job_id,
                    seq=proposal.seq,
                    inputs_hash=inputs_hash,
                    proposal_json=proposal.model_dump_json(),
                    proposed_by=member_id,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                return _proposal(row)
        except IntegrityError:
            raise ProposalConflictError(
                f"job {proposal.job_id} has a proposal at step {proposal.seq} already",
                hint="read it with GET /v1/settlements/{job_id}/proposal, or propose again",
            ) from None

    def delete_proposal(self, job_id: str, seq: int) -> None:
        """Remove a proposal without approvals (its record could not be accepted into the outbox)."""
        with self._tx(write=True) as s:
            row = s.get(SettlementProposalOrm, (job_id, seq))
            if row is not None:
                s.delete(row)

    def latest_proposal(self, job_id: str) -> StoredProposal | None:
        """The job's newest proposal (highest seq): the one parties approve."""
        with self._tx(write=False) as s:
            row = s.scalars(
                select(SettlementProposalOrm)
                .where(SettlementProposalOrm.job_id == job_id)
                .order_by(SettlementProposalOrm.seq.desc())
                .limit(1)
            ).first()
            return None if row is None else _proposal(row)

    def add_approval(self, seq: int, approval: Approval, member_id: int) -> tuple[StoredApproval, bool]:
        """Store a party's approval of proposal (``approval.job_id``, seq); an existing one is kept.
        Returns (it, created)."""
        job_id, party = approval.job_id or "", approval.party or ""
        try:
            with self._tx(write=True) as s:
                existing = s.get(SettlementApprovalOrm, (job_id, seq, party))
                if existing is not None:
                    return _approval(existing), False
                row = SettlementApprovalOrm(
                    job_id=job_id,
                    seq=seq,
                    party=party,
                    signature=approval.signature,
                    member_id=member_id,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                return _approval(row), True
        except IntegrityError:  # a concurrent request stored it first, or the proposal is gone
            with self._tx(write=False) as s:
                found = s.get(SettlementApprovalOrm, (job_id, seq, party))
                if found is None:
                    raise ProposalConflictError(
                        f"no proposal {seq} of job {job_id} to approve",
                        hint="read the current one: GET /v1/settlements/{job_id}/proposal",
                    ) from None
                return _approval(found), False

    def approvals(self, job_id: str, seq: int) -> list[StoredApproval]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(SettlementApprovalOrm)
                .where(SettlementApprovalOrm.job_id == job_id, SettlementApprovalOrm.seq == seq)
                .order_by(SettlementApprovalOrm.party)
            )
            return [_approval(r) for r in rows]

    def settlement_counts(self) -> tuple[int, int]:
        """(proposals, approvals) stored: what a refused write must leave unchanged."""
        with self._tx(write=False) as s:
            proposals = s.scalar(select(func.count()).select_from(SettlementProposalOrm)) or 0
            approvals = s.scalar(select(func.count()).select_from(SettlementApprovalOrm)) or 0
            return int(proposals), int(approvals)

    # -- reads of the ledger's tables -------------------------------------------------------------------
    def jobs_page(self, *, visible_to: str | None, status: str | None, limit: int, offset: int) -> list[str]:
        """Job ids, newest first, optionally only those an address is party to."""
        with self._tx(write=False) as s:
            return self.audit.jobs_page(s, visible_to=visible_to, status=status, limit=limit, offset=offset)

    def overview_counts(
        self, *, visible_to: str | None, since: datetime, bucket_seconds: int
    ) -> tuple[dict[str, int], list[ActivityBucket], Backlog]:
        """For the consortium overview, in one read transaction: jobs per status, records confirmed per
        time bucket since ``since`` (with their latency) and the anchoring backlog (optionally only the
        jobs an address is party to)."""
        with self._tx(write=False) as s:
            return (
                self.audit.jobs_by_status(s, visible_to=visible_to),
                self.audit.anchored_per_bucket(
                    s, since=since, bucket_seconds=bucket_seconds, visible_to=visible_to
                ),
                self.audit.backlog(s, visible_to=visible_to),
            )

    def search(
        self,
        *,
        hash_value: str | None,
        member: str | None,
        scope: SearchScope,
        limit: int,
        service: str | None = None,
    ) -> list[SearchHit]:
        """The console's search (`secureflow.ledger.store.search`), in one read transaction: a lower-case
        32-byte hash, else a member's checksummed address, else the jobs created in the scope's range;
        with ``service`` (checksummed), only the jobs bound to that anchoring service at submission."""
        if service is not None:
            scope = replace(scope, within=select(ManifestOrm.job_id).where(ManifestOrm.service == service))
        with self._tx(write=False) as s:
            if hash_value is not None:
                return search_hash(s, hash_value, scope, limit)
            if member is not None:
                return search_member(s, member, scope, limit)
            return search_time(s, scope, limit)

    def job_record_counts(self, job_id: str) -> dict[str, int]:
        """Number of the job's records per anchoring status (every status present)."""
        with self._tx(write=False) as s:
            return self.audit.job_record_counts(s, job_id)

    def steps_page(self, job_id: str, after_seq: int, limit: int) -> list[RecordItem]:
        """One page of a job's records ordered by seq (seq greater than ``after_seq``)."""
        self.sync_record_index()
        with self._tx(write=False) as s:
            return self.audit.steps(s, job_id, after_seq, limit)

    def query_records(self, flt: RecordFilter, after_id: int, limit: int) -> list[RecordItem]:
        """Audit query: records matching the filter, in outbox (acceptance) order after ``after_id``."""
        self.sync_record_index()
        with self._tx(write=False) as s:
            return self.audit.records(s, flt, after_id, limit)

    def sync_record_index(self) -> int:
        """Index the outbox records accepted since the last sync (any process); returns how many.

        After a bulk of new rows on PostgreSQL the two tables are analysed: with the statistics of the
        empty tables the planner sorts a whole job to serve a page of it (measured: 4.6 ms instead of
        0.15 ms for 10,000 steps) until autovacuum gets to them, a minute or more later.
        """
        added = self._index_new_records()
        if added >= _ANALYZE_AFTER_ROWS and self.engine.dialect.name == "postgresql":
            with self.engine.begin() as connection:
                self.audit.analyze(connection)
        return added

    def _index_new_records(self) -> int:
        with self._tx(write=False) as s:
            newest = self.audit.newest_record_id(s)
        if newest <= self._indexed_upto:
            return 0  # the common case under load: one cheap primary-key query, no lock
        added = 0
        with self._index_lock:
            while True:
                with self._tx(write=False) as s:
                    last = s.scalar(select(func.max(RecordIndexOrm.record_id))) or 0
                    rows = self.audit.records_after(s, last, _INDEX_CHUNK)
                if not rows:
                    self._indexed_upto = max(self._indexed_upto, last)
                    return added
                values = []
                for row in rows:
                    try:
                        record = json.loads(row.record_json)
                    except ValueError:
                        record = {}
                    values.append(
                        {
                            "record_id": row.id,
                            "job_id": row.job_id,
                            "seq": row.seq,
                            "algorithm": str(record.get("algorithm", ""))[:64],
                            "started_at_ms": int(record.get("started_at_ms", 0) or 0),
                            "finished_at_ms": int(record.get("finished_at_ms", 0) or 0),
                        }
                    )
                try:
                    with self._tx(write=True) as s:
                        s.execute(insert(RecordIndexOrm), values)
                except IntegrityError:
                    continue  # another process indexed the same records first: read again from its max
                added += len(values)
                if len(rows) < _INDEX_CHUNK:
                    self._indexed_upto = max(self._indexed_upto, rows[-1].id)
                    return added


class _MemberProposalBook:
    """`ProposalBook` over the API's tables for one member: what it keeps is stored as that member's."""

    def __init__(self, db: ApiDb, member_id: int) -> None:
        self.db = db
        self.member_id = member_id

    def latest_proposal(self, job_id: str) -> StoredProposal | None:
        return self.db.latest_proposal(job_id)

    def add_proposal(self, proposal: ContributionProposal, inputs_hash: str) -> StoredProposal:
        return self.db.add_proposal(proposal, inputs_hash, self.member_id)

    def delete_proposal(self, job_id: str, seq: int) -> None:
        self.db.delete_proposal(job_id, seq)

    def approvals(self, job_id: str, seq: int) -> list[StoredApproval]:
        return self.db.approvals(job_id, seq)

    def add_approval(self, seq: int, approval: Approval) -> tuple[StoredApproval, bool]:
        return self.db.add_approval(seq, approval, self.member_id)
