"""Audit reconciliation: re-derive every stored record's hash and leaf, check the batches against the chain.

Findings are of three kinds:

``tampered``
    a stored record no longer hashes to its stored record hash or leaf (or is
    no longer a valid step record of its job and seq), or a batch's stored
    leaves no longer rebuild the root anchored on chain (a leaf was altered);
``missing``
    the chain and the store disagree about what a batch holds: the on-chain
    root or record count differs from the stored batch, a confirmed batch's
    root is not anchored at all, a confirmed batch has no stored records, or a
    finished job lacks steps (gaps in seq, fewer than the step count closed on chain);
``unanchored``
    records that should be on chain and are not: pending or submitted for
    longer than ``stale_after``, failed, or confirmed in the database while
    the chain does not hold their batch (or holds it in another block).

Findings carry ids and hashes only, never record contents. Chain calls are per
batch (``getBatch`` and the block header) and per finished job (``getJob``),
never per record; hashing is local.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, ValidationError
from web3 import Web3

from secureflow.ledger.contracts import AuditLedgerClient
from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.records import StepRecord, canonical_json
from secureflow.ledger.text import plural
from secureflow.ledger.verify import NodeView

if TYPE_CHECKING:
    from secureflow.ledger.store.protocols import ReconcileStore
    from secureflow.ledger.store.schemas import Batch, Job, StepRecordRow

FindingKind = Literal["tampered", "missing", "unanchored"]
FINDING_KINDS: tuple[FindingKind, ...] = ("tampered", "missing", "unanchored")
_ZERO32 = "0x" + "00" * 32
_FINISHED_JOBS = ("completed", "failed", "cancelled", "rejected")
_JOBS_PAGE = 1000


class Finding(BaseModel):
    """One discrepancy: which record (or batch), what kind, and why (ids and hashes only)."""

    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    job_id: str | None
    seq: int | None
    batch_id: str | None
    detail: str


class ReconciliationReport(BaseModel):
    """What `reconcile` found: counts per kind and the findings, record ones in (job_id, seq) order."""

    model_config = ConfigDict(frozen=True)

    checked_at: datetime
    chain_id: int
    contract: str
    jobs_checked: int
    records_checked: int
    batches_checked: int
    counts: dict[FindingKind, int]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not self.findings

    def of_kind(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def lines(self) -> list[str]:
        """Plain-text report: a summary line, then one line per finding."""
        head = (
            f"{plural(self.records_checked, 'record')} in {plural(self.batches_checked, 'batch')} of "
            f"{plural(self.jobs_checked, 'job')} "
            f"checked against {self.contract} on chain {self.chain_id}: "
            + (
                "nothing to check (no records)"
                if self.ok and self.records_checked == 0
                else "clean"
                if self.ok
                else ", ".join(f"{self.counts[k]} {k}" for k in FINDING_KINDS if self.counts[k])
            )
        )
        out = [head]
        for f in self.findings:
            where = f"job {f.job_id} step {f.seq}" if f.job_id is not None else f"batch {f.batch_id}"
            out.append(f"{f.kind:<10} {where}: {f.detail}")
        return out


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _all_jobs(store: ReconcileStore) -> Iterator[Job]:
    offset = 0
    while True:
        page = store.list_jobs(limit=_JOBS_PAGE, offset=offset)
        yield from page
        if len(page) < _JOBS_PAGE:
            return
        offset += len(page)


def _rederive(row: StepRecordRow) -> str | None:
    """Why the stored record no longer matches its stored hash and leaf, or None if it does."""
    try:
        parsed = json.loads(row.record_json)
        canonical = canonical_json(parsed)
    except Exception:
        return "the stored record is no longer canonicalisable JSON"
    record_hash = _hex(keccak(canonical))
    if record_hash != row.record_hash:
        return f"the stored record hashes to {record_hash}, its stored record_hash is {row.record_hash}"
    try:
        record = StepRecord.model_validate(parsed)
    except ValidationError:
        return "the stored record is no longer a valid step record"
    if record.job_id != row.job_id or record.seq != row.seq:
        return f"the stored record says job {record.job_id} step {record.seq}"
    leaf = _hex(leaf_hash(bytes.fromhex(row.job_id[2:]), row.seq, bytes.fromhex(record_hash[2:])))
    if leaf != row.leaf:
        return f"(job_id, seq, record_hash) gives leaf {leaf}, the stored leaf is {row.leaf}"
    return None


class _Reconciler:
    def __init__(
        self, store: ReconcileStore, node: NodeView, contract: str, stale_after: timedelta, now: datetime
    ) -> None:
        self.store = store
        self.node = node
        self.contract = contract
        self.ledger = node.ledger(contract)
        self.stale_after = stale_after
        self.now = now
        self.findings: list[Finding] = []
        self.jobs = self.records = self.batches = 0

    def add(self, kind: FindingKind, detail: str, row: StepRecordRow | None = None, **ids: Any) -> None:
        if row is not None:
            ids = {"job_id": row.job_id, "seq": row.seq, "batch_id": row.batch_id, **ids}
        self.findings.append(
            Finding(
                kind=kind,
                job_id=ids.get("job_id"),
                seq=ids.get("seq"),
                batch_id=ids.get("batch_id"),
                detail=detail,
            )
        )

    def run(self) -> None:
        by_batch: dict[str, list[StepRecordRow]] = defaultdict(list)
        for job in _all_jobs(self.store):
            self.jobs += 1
            rows = self.store.records_for_job(job.job_id)
            for row in rows:
                self.records += 1
                self.check_record(row)
                if row.batch_id is not None:
                    by_batch[row.batch_id].append(row)
            if job.status in _FINISHED_JOBS:
                self.check_finished_job(job, rows)
        for batch_id, rows in by_batch.items():
            self.batches += 1
            self.check_batch(batch_id, rows)
        for batch_id in self.confirmed_batches_without_records(set(by_batch)):
            self.batches += 1
            self.check_empty_batch(batch_id)

    # -- per record (local) --------------------------------------------------------------------------
    def check_record(self, row: StepRecordRow) -> None:
        problem = _rederive(row)
        if problem is not None:
            self.add("tampered", problem, row)
        if row.status == "failed":
            self.add("unanchored", "the record failed to anchor (see its failure reason)", row)
        elif row.status in ("pending", "submitted"):
            age = self.now - row.accepted_at
            if age > self.stale_after:
                self.add(
                    "unanchored",
                    f"{row.status} for {_age(age)} "
                    f"(accepted {row.accepted_at.isoformat(timespec='seconds')}), "
                    f"longer than {_age(self.stale_after)}",
                    row,
                )

    # -- per finished job (one getJob) ---------------------------------------------------------------
    def check_finished_job(self, job: Job, rows: list[StepRecordRow]) -> None:
        seqs = {row.seq for row in rows}
        expected = max(seqs) + 1 if seqs else 0
        on_chain = self.node.rpc(self.ledger.functions.getJob(bytes.fromhex(job.job_id[2:])).call)
        status, step_count = int(on_chain[2]), int(on_chain[4])
        if status in (2, 3):  # closed or failed on chain: the step count is final
            expected = max(expected, step_count)
            if step_count != len(rows):
                self.add(
                    "missing",
                    f"the job closed on chain with {step_count} steps, the store holds {len(rows)}",
                    job_id=job.job_id,
                )
        gaps = [seq for seq in range(expected) if seq not in seqs]
        for seq in gaps[:100]:
            self.add(
                "missing", "no stored record for this step of a finished job", job_id=job.job_id, seq=seq
            )
        if len(gaps) > 100:
            self.add("missing", f"{len(gaps) - 100} more steps have no stored record", job_id=job.job_id)

    # -- per batch (getBatch + block header) ---------------------------------------------------------
    def check_batch(self, batch_id: str, rows: list[StepRecordRow]) -> None:
        batch = self.store.get_batch(batch_id)
        confirmed = [row for row in rows if row.status == "confirmed"]
        if batch is None:
            self.add(
                "missing",
                f"{len(rows)} records name batch {batch_id}, which is not stored",
                batch_id=batch_id,
            )
            return
        root, count, block = self.on_chain_batch(batch_id)
        if root == _ZERO32:
            if batch.status == "confirmed" or confirmed:
                where = self.root_elsewhere(batch.root)
                self.add(
                    "missing",
                    f"confirmed batch's root {batch.root} is not anchored{where}",
                    batch_id=batch_id,
                )
                for row in confirmed:
                    self.add(
                        "unanchored", "confirmed in the store, but the chain does not hold its batch", row
                    )
            return  # not anchored yet: only the per-record age check applies
        if root != batch.root:
            self.add(
                "missing",
                f"the chain anchored root {root} under this batch id, the store says {batch.root}",
                batch_id=batch_id,
            )
            for row in confirmed:
                self.add("unanchored", "confirmed in the store, but its batch root is not on chain", row)
            return
        if count != len(rows):
            self.add(
                "missing",
                f"the chain says {count} records in this batch, the store holds {len(rows)}",
                batch_id=batch_id,
            )
        else:
            tree = MerkleTree(bytes.fromhex(row.leaf[2:]) for row in rows)
            if _hex(tree.root) != root:
                self.add(
                    "tampered",
                    f"the {len(rows)} stored leaves give root {_hex(tree.root)}, "
                    f"the anchored root is {root}: "
                    "a stored leaf was altered",
                    batch_id=batch_id,
                )
        if batch.status == "confirmed" and batch.block_number is not None:
            self.check_block(batch, block)

    def check_block(self, batch: Batch, anchored_at: int) -> None:
        assert batch.block_number is not None  # noqa: S101 - invariant for the type checker, not input validation
        if anchored_at != batch.block_number:
            self.add(
                "unanchored",
                f"the chain anchored the batch at block {anchored_at}, the store says block "
                f"{batch.block_number} (reorg?): receipts naming block {batch.block_number} will fail",
                batch_id=batch.batch_id,
            )
            return
        header = self.node.block(batch.block_number)
        canonical = str(header.get("hash", "")).lower() if header else None
        if canonical != batch.block_hash:
            self.add(
                "unanchored",
                f"block {batch.block_number} is now {canonical}, the store says {batch.block_hash} (reorg?)",
                batch_id=batch.batch_id,
            )

    def on_chain_batch(self, batch_id: str) -> tuple[str, int, int]:
        root, count, block, _anchorer = self.node.rpc(
            self.ledger.functions.getBatch(bytes.fromhex(batch_id[2:])).call
        )
        return _hex(root), int(count), int(block)

    def root_elsewhere(self, root: str) -> str:
        count, block, _ = self.node.root_record(self.contract, root)
        return (
            f" under this batch id (it is anchored under another one, block {block})"
            if count
            else " on chain"
        )

    def confirmed_batches_without_records(self, seen: set[str]) -> list[str]:
        """Confirmed batches no stored record points at."""
        return [batch_id for batch_id in self.store.confirmed_batch_ids() if batch_id not in seen]

    def check_empty_batch(self, batch_id: str) -> None:
        root, count, _ = self.on_chain_batch(batch_id)
        on_chain = (
            f"the chain holds {count} records under root {root}" if root != _ZERO32 else "nor does the chain"
        )
        self.add("missing", f"confirmed batch has no stored records; {on_chain}", batch_id=batch_id)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds} s"


def reconcile(
    store: ReconcileStore,
    ledger: AuditLedgerClient | Web3 | str,
    contract_address: str | None = None,
    *,
    stale_after: timedelta = timedelta(minutes=10),
    now: datetime | None = None,
    timeout: float = 30.0,
) -> ReconciliationReport:
    """Check every stored record and batch against the audit ledger; see the module docstring.

    ``ledger`` is an `AuditLedgerClient`, or a `Web3` / RPC URL together with
    ``contract_address``. Raises `secureflow.ledger.errors.NodeUnreachableError` if the
    node does not answer, and `ValueError` if no contract address is given.
    """
    if isinstance(ledger, AuditLedgerClient):
        w3, address = ledger.contract.w3, ledger.address
    else:
        if contract_address is None:
            raise ValueError("reconcile needs the audit ledger's address with a Web3 or an RPC URL")
        w3 = (
            ledger
            if isinstance(ledger, Web3)
            else Web3(Web3.HTTPProvider(ledger, request_kwargs={"timeout": timeout}))
        )
        address = contract_address
    node = NodeView(w3)
    address = to_checksum_address(address)
    run = _Reconciler(store, node, address, stale_after, now or datetime.now(timezone.utc))
    chain_id = node.chain_id()
    run.run()
    findings = sorted(
        run.findings,
        key=lambda f: (
            f.job_id is None,
            f.job_id or "",
            f.seq if f.seq is not None else -1,
            f.batch_id or "",
        ),
    )
    counts: dict[FindingKind, int] = dict.fromkeys(FINDING_KINDS, 0)
    for finding in findings:
        counts[finding.kind] += 1
    return ReconciliationReport(
        checked_at=run.now,
        chain_id=chain_id,
        contract=address,
        jobs_checked=run.jobs,
        records_checked=run.records,
        batches_checked=run.batches,
        counts=counts,
        findings=findings,
    )
