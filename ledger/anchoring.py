"""The anchoring worker: pending step records → Merkle batches → one ``anchorBatch`` transaction each.

Exactly-once rests on three things:

* **Write-ahead.** A batch is stored (``built``) before anything is signed, and
  its transaction hash and nonce are stored (``submitted``) before the
  transaction is broadcast. A crash at any point leaves a batch the next pass
  recognises and finishes.
* **Deterministic batch ids.** ``batchId = keccak("secureflow.batch.v1" || root)``
  and a batch keeps its records when it is re-sent, so a re-sent batch has the
  same id and root; the contract rejects a second anchor of either
  (``BatchAlreadyAnchored`` / ``RootAlreadyAnchored``). When a send finds the
  batch already anchored, the worker adopts the existing anchor (found through
  the indexed ``BatchAnchored`` event) instead of anchoring twice.
* **Checking before confirming.** A batch is ``confirmed`` only when its block
  is still canonical and has ``confirmations`` blocks on top. If the block was
  reorganised away, or the transaction vanished from the pool, the batch goes
  back to ``built`` (its records to ``pending``) and is sent again.

The same worker is the only account the AuditLedger lets record models and
close jobs: ``recordModel`` for every accepted model of an open job, and, once
a finished job's records and models are anchored, ``closeJob`` with its step
count, its last record's hash and the Merkle proof of that record's leaf in
its batch root. A model or close the contract refuses (simulated before
sending) is marked ``failed`` with the decoded reason and logged once; it is
never retried. A transaction mined with status 0 (Besu and GoQuorum mine a
failing transaction rather than refuse it) takes the path of a revert at
estimate: its decoded reason is kept and it is prepared again, and the
estimate then adopts, fails or stops on the contract's reason.

A **poison record cannot block the pipeline.** Each pending record is checked when a batch is
formed (`check_leaves`: a well-formed, non-zero 32-byte leaf equal to ``leaf_hash(job_id, seq,
record_hash)``); one that fails is *quarantined* (``failed``, with a reason starting ``quarantined:``
that names the check) and the others are batched as usual. A batch the contract refuses for its
content (any reason but already-anchored, adopted, and the global ones of `PAUSING_REFUSALS`, which
pause the worker as an outage does) is dissolved and the next batches are formed at half its size,
and so on, until the refused record is alone: it is quarantined with the contract's decoded reason,
and the batch size returns to normal. A finished job with a quarantined record is closed on chain as
failed, with its proven steps (seqs 0.. up to the first record that could not be anchored) and the
reason in ``close_reason``.

The worker runs in-process (`AnchoringWorker.start`) for the embedded default or
as its own process (``secureflow anchor-worker``) in production. Chain outages
are waited out: the records stay in the outbox and nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from eth_typing import HexStr
from eth_utils.abi import event_abi_to_log_topic
from eth_utils.crypto import keccak
from web3.exceptions import BadFunctionCallOutput, TransactionNotFound
from web3.types import TxReceipt

from secureflow.ledger.anchoring_metrics import AnchoringMetrics
from secureflow.ledger.chain import ChainClient, TransactionSender
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus, OnChainJob, hex32
from secureflow.ledger.errors import (
    ChainError,
    ContractNotDeployedError,
    ContractRevertedError,
    NonceTooLowError,
    StoreUnavailableError,
)
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.merkle import MerkleTree, MerkleTreeError, leaf_hash
from secureflow.ledger.store.base import PendingLeaf
from secureflow.ledger.store.protocols import AnchoringStore
from secureflow.ledger.store.schemas import Batch, Job
from secureflow.ledger.text import plural

log = logging.getLogger(__name__)

BATCH_ID_DOMAIN = b"secureflow.batch.v1"
ALREADY_ANCHORED = frozenset({"BatchAlreadyAnchored", "RootAlreadyAnchored"})
PAUSING_REFUSALS = frozenset({"NotAnchorService"})
"""Refusals of ``anchorBatch`` that are about the service, not the batch: every batch would be refused
alike until an operator acts (e.g. grants the anchoring role), so the worker pauses instead of
quarantining records. An undecoded revert (no error name) pauses too: nothing says it is the batch's."""
QUARANTINED = "quarantined: "
"""How the reason of a record the worker gave up on starts (the rest names the check or the refusal)."""
_ZERO32 = bytes(32)


def check_leaves(
    rows: list[PendingLeaf],
) -> tuple[list[tuple[PendingLeaf, bytes]], list[tuple[PendingLeaf, str]]]:
    """Split pending records into those that may be anchored (with their leaf as bytes) and those that
    must not (with the check that failed; never the record's content).

    A leaf must be ``0x`` and 32 bytes of hex, not zero, and equal to ``leaf_hash(job_id, seq,
    record_hash)`` of its own row: a row altered in the database (or written around the store's
    validation) would otherwise stop every batch (a malformed leaf) or be anchored as something its
    record does not hash to (never verifiable). Two keccak hashes a record.
    """
    good: list[tuple[PendingLeaf, bytes]] = []
    bad: list[tuple[PendingLeaf, str]] = []
    for row in rows:
        leaf = row.leaf
        try:
            raw = bytes.fromhex(leaf[2:]) if leaf[:2] == "0x" else b""
        except (TypeError, ValueError):
            raw = b""
        if len(raw) != 32 or len(leaf) != 66:
            bad.append((row, "the stored leaf is not 0x and 32 bytes of hex"))
            continue
        if raw == _ZERO32:
            bad.append((row, "the stored leaf is zero"))
            continue
        try:
            expected = leaf_hash(bytes.fromhex(row.job_id[2:]), row.seq, bytes.fromhex(row.record_hash[2:]))
        except (TypeError, ValueError, MerkleTreeError):
            bad.append((row, "the stored job id, seq or record hash is malformed"))
            continue
        if raw != expected:
            bad.append((row, "the stored leaf is not leaf_hash(job_id, seq, record_hash) of its record"))
            continue
        good.append((row, raw))
    return good, bad


def batch_id_for(root: bytes) -> bytes:
    """The deterministic batch id of a Merkle root."""
    return bytes(keccak(BATCH_ID_DOMAIN + root))


@dataclass(frozen=True)
class AnchoringConfig:
    """How records are grouped and when a batch counts as confirmed."""

    max_batch_size: int = 2_000
    max_batch_delay: float = 0.25
    """Seconds the oldest pending record may wait for a fuller batch."""
    confirmations: int = 1
    """Blocks including the anchor's own: 1 = confirmed once mined (instant-finality QBFT)."""
    max_in_flight_batches: int = 16
    poll_interval: float = 0.05
    resend_after: float = 30.0
    """Seconds a submitted transaction may stay unmined before its nonce is resynced and it is re-sent."""
    from_block: int = 0
    """Where to look for existing anchors (the ledger's deploy block)."""
    max_closes_per_pass: int = 100
    """Finished jobs looked at per pass for their on-chain close (oldest first)."""


@dataclass
class PassReport:
    """What one pass of the worker did."""

    batches_sent: int = 0
    records_batched: int = 0
    batches_mined: int = 0
    batches_confirmed: int = 0
    records_confirmed: int = 0
    batches_requeued: int = 0
    batches_adopted: int = 0
    models_sent: int = 0
    models_confirmed: int = 0
    models_failed: int = 0
    closes_sent: int = 0
    closes_confirmed: int = 0
    batches_refused: int = 0
    records_quarantined: int = 0

    @property
    def busy(self) -> bool:
        return bool(
            self.batches_sent
            or self.batches_refused
            or self.records_quarantined
            or self.batches_mined
            or self.batches_confirmed
            or self.batches_requeued
            or self.models_sent
            or self.closes_sent
        )


class Anchorer:
    """One pass at a time: advance the batches in flight, then batch what is pending."""

    def __init__(
        self,
        store: AnchoringStore,
        ledger: AuditLedgerClient,
        sender: TransactionSender,
        config: AnchoringConfig | None = None,
        metrics: AnchoringMetrics | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.sender = sender
        self.client: ChainClient = sender.client
        self.config = config or AnchoringConfig()
        self.metrics = metrics or AnchoringMetrics(confirmations=self.config.confirmations)
        self.last_head: int | None = None
        """The chain head seen by the last pass (for metrics)."""
        self._waiting_models: set[tuple[str, int]] = set()
        self._ledger_code_hash: bytes | None = None
        self._bisect_cap: int | None = None
        """While a refused batch is bisected: the size cap of the next batches (else max_batch_size)."""
        self._suspects: set[int] = set()
        """Ids of the records of refused batches not yet anchored or quarantined (kept in memory: after a
        restart the batch is refused again and bisected again)."""

    # -- the ledger's code ---------------------------------------------------------------------------
    def check_ledger_code(self) -> None:
        """Refuse to go on when the AuditLedger's code is gone (or changed) at its deployment address.

        A node that lost the chain state (a dev chain restarted fresh, a node reset) has no ledger
        there: a call to it would "succeed" without anchoring anything, and the worker would mark
        records anchored that the chain does not hold. Checked at start, before every batch is
        sent, and whenever a transaction is lost or a read of the ledger fails.
        """
        address = self.ledger.address
        code = bytes(self.client.call_rpc(self.client.w3.eth.get_code, address))
        code_hash = bytes(keccak(code)) if code else None
        if code_hash is not None and self._ledger_code_hash in (None, code_hash):
            self._ledger_code_hash = code_hash
            return
        what = "no AuditLedger code" if code_hash is None else "other code than the AuditLedger's"
        raise ContractNotDeployedError(
            f"{what} at {address} on chain {self.client.chain_id}: the node lost (or replaced) the chain "
            "state the ledger was deployed in; nothing is anchored and no record is marked anchored "
            "until it is back",
            hint="restore the node's chain state (e.g. anvil --load-state), or redeploy with `secureflow "
            "deploy` and start the worker on a fresh database with the new deployment file",
        )

    # -- one pass ----------------------------------------------------------------------------------
    def recover(self) -> None:
        """At start-up: nonces allocated by a crashed run but never sent would leave a gap; close it."""
        self.check_ledger_code()
        self.sender.nonces.resync(self.sender.address)

    def run_once(self) -> PassReport:
        try:
            return self._run_once()
        except BadFunctionCallOutput:
            self.check_ledger_code()  # a read of the ledger found no code: say so
            raise

    def _run_once(self) -> PassReport:
        report = PassReport()
        head = self.last_head = self.client.block_number()
        in_flight = self.store.batches_in_flight()
        for batch in in_flight:
            self._advance(batch, head, report)
        unconfirmed = len(self.store.batches_in_flight(self.config.max_in_flight_batches + 1))
        while unconfirmed < self.config.max_in_flight_batches and self._form_batch(report):
            unconfirmed += 1
        self._advance_models(head, report)
        self._advance_closes(head, report)
        return report

    # -- models --------------------------------------------------------------------------------------
    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            receipt: TxReceipt = self.client.call_rpc(
                self.client.w3.eth.get_transaction_receipt, HexStr(tx_hash)
            )
        except TransactionNotFound:
            return None
        return receipt

    def _log_status_0(self, tx_hash: str, receipt: TxReceipt, what: str) -> None:
        failure = self.sender.failure(tx_hash, receipt, self.ledger.contract, what)
        log.warning("%s transaction %s mined with status 0 (%s); preparing it again", what, tx_hash, failure)

    def _resync_once(self, done: list[bool]) -> None:
        # A model or close back from a reorg or a dropped tx frees its old nonce: without a resync the new
        # transaction would wait behind that gap forever (models and closes are rare: one RPC a pass).
        if not done:
            self.sender.nonces.resync(self.sender.address)
            done.append(True)

    def _advance_models(self, head: int, report: PassReport) -> None:
        """``recordModel`` for every accepted model, exactly once: the contract refuses a version twice.

        A model whose job is not on chain yet waits. A model the contract refuses (e.g. its job is not
        open, or the version is not the next) is marked ``failed`` with the reason and logged once; it is
        not retried.
        """
        functions = self.ledger.contract.functions
        for model in self.store.models(status="submitted"):
            assert model.tx_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
            receipt = self._receipt(model.tx_hash)
            if receipt is not None and receipt["status"] == 1:
                block = int(receipt["blockNumber"])
                if head - block + 1 >= self.config.confirmations:
                    self.store.mark_model(
                        model.model_id, model.version, "confirmed", tx_hash=model.tx_hash, block=block
                    )
                    report.models_confirmed += 1
            elif receipt is not None or not self._tx_known(model.tx_hash):
                self.metrics.tx_error("reverted" if receipt is not None else "not_known_to_node")
                if receipt is not None:  # status 0: prepared again below, where a refusal is failed
                    self._log_status_0(model.tx_hash, receipt, "recordModel")
                self.store.mark_model(model.model_id, model.version, "pending", tx_hash=None, block=None)
        resynced: list[bool] = []
        for model in self.store.models(status="pending"):
            model_key = keccak(text=model.model_id)
            on_chain = functions.modelHash(bytes.fromhex(model.job_id[2:]), model_key, model.version).call()
            if "0x" + bytes(on_chain).hex() == model.model_hash:  # anchored before a crash: adopt it
                self.store.mark_model(model.model_id, model.version, "confirmed", tx_hash=None, block=None)
                report.models_confirmed += 1
                continue
            if self.ledger.get_job(bytes.fromhex(model.job_id[2:])).status == JobStatus.NONE:
                # Not created on chain yet (its members create it): wait, without sending or failing.
                if (model.model_id, model.version) not in self._waiting_models:
                    self._waiting_models.add((model.model_id, model.version))
                    log.info(
                        "model %s v%s waits for its job %s on chain",
                        model.model_id,
                        model.version,
                        model.job_id,
                    )
                continue
            call = functions.recordModel(
                bytes.fromhex(model.job_id[2:]), model_key, model.version, bytes.fromhex(model.model_hash[2:])
            )
            self._resync_once(resynced)
            try:
                signed = self.sender.prepare(call)
            except ContractRevertedError as exc:
                self.metrics.tx_error("refused")
                reason = self._refusal(exc, model.job_id)
                log.warning(
                    "model %s v%s refused by the ledger, not retried: %s",
                    model.model_id,
                    model.version,
                    reason,
                )
                self.store.mark_model(
                    model.model_id, model.version, "failed", tx_hash=None, block=None, reason=reason
                )
                report.models_failed += 1
                continue
            try:
                self.store.mark_model(
                    model.model_id, model.version, "submitted", tx_hash=signed.tx_hash, block=None
                )
            except BaseException:
                self.sender.abandon(signed)
                raise
            try:
                self.sender.broadcast(signed)
            except NonceTooLowError:
                self.metrics.tx_error("nonce_too_low")
                self.sender.nonces.resync(self.sender.address)
                self.store.mark_model(model.model_id, model.version, "pending", tx_hash=None, block=None)
                continue
            report.models_sent += 1

    def _refusal(self, exc: ContractRevertedError, job_id: str) -> str:
        """The contract's reason, with the job's on-chain state when the job is what was refused."""
        reason = str(exc)
        if exc.error_name == "JobNotOpen":
            job = self.ledger.get_job(bytes.fromhex(job_id[2:]))
            if job.status == JobStatus.PROPOSED:
                missing = self.ledger.missing_consents(bytes.fromhex(job_id[2:]))
                reason += f" (the job is Proposed: {plural(missing, 'party consent')} missing)"
            else:
                reason += f" (the job is {job.status.name.capitalize()} on chain)"
        return reason

    # -- closes ------------------------------------------------------------------------------------
    def _advance_closes(self, head: int, report: PassReport) -> None:
        """``closeJob`` for every finished job created on chain, once its records and models are anchored."""
        for job in self.store.jobs_to_close("submitted"):
            assert job.close_tx_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
            receipt = self._receipt(job.close_tx_hash)
            if receipt is not None and receipt["status"] == 1:
                block = int(receipt["blockNumber"])
                if head - block + 1 >= self.config.confirmations:
                    self.store.mark_job_close(
                        job.job_id,
                        "confirmed",
                        tx_hash=job.close_tx_hash,
                        block=block,
                        reason=job.close_reason,
                    )
                    report.closes_confirmed += 1
            elif receipt is not None or not self._tx_known(job.close_tx_hash):
                # reverted (e.g. closed by a re-included earlier transaction: adopted next) or lost: again
                self.metrics.tx_error("reverted" if receipt is not None else "not_known_to_node")
                if receipt is not None:
                    self._log_status_0(job.close_tx_hash, receipt, "closeJob")
                self.store.mark_job_close(job.job_id, "pending")
        resynced: list[bool] = []
        for job in self.store.jobs_to_close("pending", limit=self.config.max_closes_per_pass):
            self._close(job, report, resynced)

    def _close(self, job: Job, report: PassReport, resynced: list[bool]) -> None:
        counts, highest = self.store.job_record_counts(job.job_id)
        if counts["pending"] or counts["submitted"]:
            return  # its records are still being anchored
        if any(m.status in ("pending", "submitted") for m in self.store.models(job_id=job.job_id)):
            return  # a model of an open job is recorded before the job closes
        succeeded = job.status == "completed"
        reason: str | None = None
        if counts["failed"]:
            # Closed on chain as failed with the steps it can prove: seqs 0.. up to the first record that
            # could not be anchored (quarantined), each confirmed; the reason stays with the close.
            rows = self.store.records_for_job(job.job_id)
            first = next(row for row in rows if row.status == "failed")  # rows are in seq order
            step_count = 0
            for row in rows:
                if row.seq != step_count or row.status != "confirmed":
                    break
                step_count += 1
            succeeded = False
            reason = (
                f"closed as failed: {counts['failed']} of the job's step records could not be anchored "
                f"(step {first.seq}: {first.failure_reason}); the chain holds steps 0..{step_count - 1}"
                if step_count
                else f"closed as failed: {counts['failed']} of the job's step records could not be "
                f"anchored (step {first.seq}: {first.failure_reason}); the chain holds no step"
            )
        else:
            step_count = counts["confirmed"]
        if not reason and step_count and highest != step_count - 1:
            self._close_failed(
                job, f"the job's records are not seqs 0..{step_count - 1} (highest seq {highest})"
            )
            return
        job_id = bytes.fromhex(job.job_id[2:])
        record_hash, root, proof = b"\0" * 32, b"\0" * 32, []
        if step_count:
            last = self.store.get_record(job.job_id, step_count - 1)
            assert last is not None and last.batch_id is not None  # noqa: S101 - invariant for the type checker, not input validation
            batch = self.store.get_batch(last.batch_id)
            assert batch is not None  # noqa: S101 - invariant for the type checker, not input validation
            tree = MerkleTree(bytes.fromhex(leaf[2:]) for leaf in self.store.batch_leaves(batch.batch_id))
            record_hash, root = bytes.fromhex(last.record_hash[2:]), bytes.fromhex(batch.root[2:])
            proof = tree.proof(bytes.fromhex(last.leaf[2:]))
        on_chain = self.ledger.get_job(job_id)
        if on_chain.status in (JobStatus.CLOSED, JobStatus.FAILED):
            self._adopt_close(job, on_chain, step_count, hex32(root), succeeded, report, reason)
            return
        call = self.ledger.close_job_call(
            job_id,
            step_count=step_count,
            final_record_hash=record_hash,
            final_root=root,
            proof=proof,
            succeeded=succeeded,
        )
        self._resync_once(resynced)
        try:
            signed = self.sender.prepare(call)
        except ContractRevertedError as exc:
            self.metrics.tx_error("refused")
            self._close_failed(job, self._refusal(exc, job.job_id))
            return
        try:
            self.store.mark_job_close(job.job_id, "submitted", tx_hash=signed.tx_hash, reason=reason)
        except BaseException:
            self.sender.abandon(signed)
            raise
        try:
            self.sender.broadcast(signed)
        except NonceTooLowError:
            self.metrics.tx_error("nonce_too_low")
            self.sender.nonces.resync(self.sender.address)
            self.store.mark_job_close(job.job_id, "pending")
            return
        report.closes_sent += 1

    def _close_failed(self, job: Job, reason: str) -> None:
        log.warning("job %s not closed on chain, not retried: %s", job.job_id, reason)
        self.store.mark_job_close(job.job_id, "failed", reason=reason)

    def _adopt_close(
        self,
        job: Job,
        on_chain: OnChainJob,
        step_count: int,
        root: str,
        succeeded: bool,
        report: PassReport,
        reason: str | None = None,
    ) -> None:
        """Closed on chain already (ours before a crash, or a re-included one): adopt it if it is ours."""
        if (on_chain.step_count, on_chain.final_root, on_chain.status == JobStatus.CLOSED) != (
            step_count,
            root,
            succeeded,
        ):
            self._close_failed(
                job,
                f"the job is {on_chain.status.name.capitalize()} on chain with {on_chain.step_count} steps "
                f"and root {on_chain.final_root}, not {step_count} steps and root {root}",
            )
            return
        events = self.ledger.contract.events.JobClosed().get_logs(
            from_block=self.config.from_block, argument_filters={"jobId": bytes.fromhex(job.job_id[2:])}
        )
        tx_hash = hex32(events[-1]["transactionHash"]) if events else None
        block = int(events[-1]["blockNumber"]) if events else None
        self.store.mark_job_close(job.job_id, "confirmed", tx_hash=tx_hash, block=block, reason=reason)
        report.closes_confirmed += 1

    def _tx_known(self, tx_hash: str) -> bool:
        return self.sender.tx_known(tx_hash)

    def _advance(self, batch: Batch, head: int, report: PassReport) -> None:
        if batch.status == "built":
            self._send(batch, report)
        elif batch.block_number is None:
            self._check_submitted(batch, head, report)
        else:
            self._check_mined(batch, head, report)

    def _form_batch(self, report: PassReport) -> bool:
        size = self._bisect_cap or self.config.max_batch_size
        # While a batch fills up, look only at the oldest record and a count; the leaves are read once,
        # when the batch is due (full, or its oldest record has waited max_batch_delay).
        oldest = self.store.pending_leaves(1)
        if not oldest:
            return False
        age = (datetime.now(timezone.utc) - oldest[0].accepted_at).total_seconds()
        if age < self.config.max_batch_delay and self.store.count_pending(size) < size:
            return False
        while True:
            pending = self.store.pending_leaves(size)
            if not pending:
                return False
            good, bad = check_leaves(pending)
            for row, why in bad:
                self._quarantine(row.id, QUARANTINED + why, report)
            if good:
                break
        tree = MerkleTree(raw for _row, raw in good)
        batch = self.store.create_batch(
            hex32(batch_id_for(tree.root)), hex32(tree.root), [row.id for row, _raw in good]
        )
        report.records_batched += len(good)
        self.metrics.batch_formed(batch.batch_id, len(good), good[0][0].accepted_at)
        self._send(batch, report)
        return True

    def _quarantine(self, record_id: int, reason: str, report: PassReport) -> None:
        """Give up on one record that can never be anchored; every other record keeps flowing."""
        row = self.store.mark_record_failed(record_id, reason)
        self._suspects.discard(record_id)
        report.records_quarantined += 1
        self.metrics.record_quarantined()
        log.warning("step record %s (job %s seq %s) %s", record_id, row.job_id, row.seq, reason)

    def _refused(self, batch: Batch, exc: ContractRevertedError, report: PassReport) -> None:
        """The contract refuses this batch for its content: dissolve it and bisect (or, alone, quarantine)."""
        report.batches_refused += 1
        reason = str(exc.args[0]) if exc.args else str(exc)  # the decoded reason, without the generic hint
        records = self.store.records_for_batch(batch.batch_id)
        if len(records) <= 1:
            self.store.mark_batch_failed(batch.batch_id, f"refused by the contract: {reason}")
            self.metrics.batch_refused(batch.batch_id)
            for row in records:
                self._quarantine(row.id, f"{QUARANTINED}the contract refused it alone: {reason}", report)
            # isolated: back to full batches (another poison among the rest starts a bisection of its own)
            self._suspects.clear()
            self._bisect_cap = None
            return
        cap = max(1, len(records) // 2)
        log.warning(
            "batch %s of %s records refused by the contract (%s): dissolved; next batches of at most %s",
            batch.batch_id,
            len(records),
            reason,
            cap,
        )
        self.store.mark_batch_failed(batch.batch_id, f"refused by the contract: {reason}; bisecting")
        self.metrics.batch_refused(batch.batch_id)
        self._suspects.update(row.id for row in records)
        self._bisect_cap = cap if self._bisect_cap is None else min(cap, self._bisect_cap)

    def _sent(self, batch_id: str) -> None:
        """A batch went to the chain: its records are no longer suspects of a bisection."""
        if self._suspects:
            self._suspects.difference_update(row.id for row in self.store.records_for_batch(batch_id))
            if not self._suspects:
                self._bisect_cap = None

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, batch: Batch, report: PassReport) -> None:
        batch_id, root = bytes.fromhex(batch.batch_id[2:]), bytes.fromhex(batch.root[2:])
        call = self.ledger.contract.functions.anchorBatch(batch_id, root, batch.record_count)
        self.check_ledger_code()
        if batch.failure_reason is not None:
            # A re-send: the nonce of the vanished transaction may be free again (reorg, dropped tx).
            self.sender.nonces.resync(self.sender.address)
        try:
            signed = self.sender.prepare(call)
        except ContractRevertedError as exc:
            if exc.error_name in ALREADY_ANCHORED:
                self._adopt(batch, report)
                self._sent(batch.batch_id)
                return
            if exc.error_name is None or exc.error_name in PAUSING_REFUSALS:
                raise
            self._refused(batch, exc, report)
            return
        try:
            self.store.mark_batch_submitted(batch.batch_id, signed.tx_hash, self.sender.address, signed.nonce)
        except BaseException:
            self.sender.abandon(signed)
            raise
        try:
            self.sender.broadcast(signed)
        except NonceTooLowError:
            self.metrics.tx_error("nonce_too_low")
            self.sender.nonces.resync(self.sender.address)
            self.store.requeue_batch(batch.batch_id, "nonce was taken by another transaction; re-signing")
            report.batches_requeued += 1
            return
        report.batches_sent += 1
        self._sent(batch.batch_id)

    def _adopt(self, batch: Batch, report: PassReport) -> None:
        """The batch is already on chain (a send before a crash, or a re-included tx): use that anchor."""
        events = self.ledger.contract.events.BatchAnchored().get_logs(
            from_block=self.config.from_block, argument_filters={"batchId": bytes.fromhex(batch.batch_id[2:])}
        )
        if not events:
            # Anchored under another batch id with the same root: cannot happen with deterministic ids.
            self.store.mark_batch_failed(batch.batch_id, "root already anchored under another batch id")
            self.metrics.batch_failed(batch.batch_id)
            return
        event = events[-1]
        tx_hash = hex32(event["transactionHash"])
        tx = self.client.w3.eth.get_transaction(HexStr(tx_hash))
        self.store.mark_batch_submitted(batch.batch_id, tx_hash, str(tx["from"]), int(tx["nonce"]))
        self.store.mark_batch_mined(batch.batch_id, int(event["blockNumber"]), hex32(event["blockHash"]))
        report.batches_adopted += 1
        report.batches_mined += 1

    # -- following what was sent -------------------------------------------------------------------
    def _check_submitted(self, batch: Batch, head: int, report: PassReport) -> None:
        assert batch.tx_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
        w3 = self.client.w3
        try:
            receipt = self.client.call_rpc(w3.eth.get_transaction_receipt, HexStr(batch.tx_hash))
        except TransactionNotFound:
            receipt = None
        if receipt is not None:
            if receipt["status"] == 1 and not self._anchored_by(receipt, batch):
                # "Succeeded" without the ledger's BatchAnchored event: no ledger code at the address.
                self.metrics.tx_error("no_anchor_event")
                self.check_ledger_code()
                self._adopt_or_requeue(batch, report, "anchor transaction succeeded without anchoring")
            elif receipt["status"] == 1:
                block, block_hash = int(receipt["blockNumber"]), hex32(receipt["blockHash"])
                report.batches_mined += 1
                if head - block + 1 >= self.config.confirmations:
                    # Deep enough already (at once with confirmations=1): the receipt is the node's view of
                    # its canonical chain now, the same check `_check_mined` makes, so confirm in this pass
                    # instead of storing "mined" and confirming one pass (and one get_block) later.
                    self.store.mark_batch_confirmed(batch.batch_id, block, block_hash)
                    self.metrics.batch_confirmed(batch.batch_id)
                    report.batches_confirmed += 1
                    report.records_confirmed += batch.record_count
                else:
                    self.store.mark_batch_mined(batch.batch_id, block, block_hash)
            else:
                # Mined with status 0 (Besu/GoQuorum mine a failing transaction, never refuse it): most
                # likely another transaction anchored it first (adopted). Else it is sent again, through
                # the estimate that stops on any reason the contract still gives, as for a fresh batch.
                self.metrics.tx_error("reverted")
                failure = self.sender.failure(batch.tx_hash, receipt, self.ledger.contract, "anchorBatch")
                self._adopt_or_requeue(batch, report, f"anchor transaction mined with status 0: {failure}")
            return
        age = (datetime.now(timezone.utc) - batch.updated_at).total_seconds()
        if not self._tx_known(batch.tx_hash):
            # Lost before reaching the node (crash between write-ahead and broadcast), dropped, or lost
            # with the node's pool (restart): re-signed on the next pass, in the order the batches were
            # first sent, from the chain's pending nonce, unless the ledger itself is gone.
            self.metrics.tx_error("not_known_to_node")
            self.check_ledger_code()
            self.sender.nonces.resync(self.sender.address)
            self._adopt_or_requeue(batch, report, "anchor transaction is not known to the node")
        elif age > self.config.resend_after:
            # Stuck behind a nonce gap or underpriced: re-sign with a fresh nonce. Should the old
            # transaction still be mined, the new one reverts with BatchAlreadyAnchored and is adopted.
            self.metrics.tx_error("unmined_timeout")
            self.sender.nonces.resync(self.sender.address)
            self.store.requeue_batch(
                batch.batch_id, f"anchor transaction unmined after {age:.0f}s; re-sending"
            )
            report.batches_requeued += 1

    def _anchored_by(self, receipt: TxReceipt, batch: Batch) -> bool:
        """Whether ``receipt`` holds the ledger's ``BatchAnchored`` event for ``batch``."""
        entry = next(e for e in self.ledger.contract.abi if e.get("name") == "BatchAnchored")
        topic = bytes(event_abi_to_log_topic(entry))  # type: ignore[arg-type]
        wanted = bytes.fromhex(batch.batch_id[2:])
        return any(
            str(entry["address"]).lower() == self.ledger.address.lower()
            and len(entry["topics"]) > 1
            and bytes(entry["topics"][0]) == topic
            and bytes(entry["topics"][1]) == wanted
            for entry in receipt["logs"]
        )

    def _adopt_or_requeue(self, batch: Batch, report: PassReport, reason: str) -> None:
        if self.ledger.contract.functions.batchRoot(bytes.fromhex(batch.batch_id[2:])).call() != b"\0" * 32:
            self._adopt(batch, report)
        else:
            self.store.requeue_batch(batch.batch_id, reason)
            report.batches_requeued += 1

    def _check_mined(self, batch: Batch, head: int, report: PassReport) -> None:
        assert batch.block_number is not None  # noqa: S101 - invariant for the type checker, not input validation
        block = self.client.call_rpc(self.client.w3.eth.get_block, batch.block_number)
        if hex32(block["hash"]) != batch.block_hash:
            log.warning("batch %s: block %s was reorganised away", batch.batch_id, batch.block_number)
            self.store.requeue_batch(batch.batch_id, f"block {batch.block_number} was reorganised away")
            report.batches_requeued += 1
            return
        if head - batch.block_number + 1 >= self.config.confirmations:
            assert batch.block_hash is not None  # noqa: S101 - invariant for the type checker, not input validation
            self.store.mark_batch_confirmed(batch.batch_id, batch.block_number, batch.block_hash)
            self.metrics.batch_confirmed(batch.batch_id)
            report.batches_confirmed += 1
            report.records_confirmed += batch.record_count


class AnchoringWorker:
    """Runs an `Anchorer` (and the `EventIndexer`) in one loop until stopped; outages are waited out.

    Both run in the same thread, so a reorg found by the indexer and a confirmation by the anchorer
    never race.
    """

    def __init__(
        self, anchorer: Anchorer, indexer: EventIndexer | None = None, *, max_backoff: float = 5.0
    ) -> None:
        self.anchorer = anchorer
        self.indexer = indexer
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.passes = 0
        self.last_pass_at: float | None = None
        """`time.monotonic` of the last pass that completed."""

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop in the calling thread until ``stop`` (or `stop()`) is set."""
        stop = stop or self._stop
        backoff = self.anchorer.config.poll_interval
        recovered = False
        while not stop.is_set():
            try:
                if not recovered:
                    self.anchorer.recover()
                    recovered = True
                if self.indexer is not None:
                    # first: a reorg sends batches back before they are confirmed
                    indexed = self.indexer.poll()
                    if indexed.reorg_depth is not None:
                        self.anchorer.metrics.reorg(indexed.reorg_depth)
                report = self.anchorer.run_once()
                self.passes += 1
                self.last_pass_at = time.monotonic()
                self.anchorer.metrics.pass_done(report, self.anchorer.last_head)
                self.last_error = None
                backoff = self.anchorer.config.poll_interval
                if report.busy:
                    continue
            except (ChainError, StoreUnavailableError) as exc:
                self.anchorer.metrics.pass_failed(exc)
                self._note(exc)
                backoff = min(max(backoff * 2, 0.1), self.max_backoff)
            stop.wait(backoff)

    def _note(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self.last_error:
            log.warning("anchoring paused: %s", message)
        self.last_error = message

    def readiness(self, max_pass_age: float = 120.0) -> tuple[bool, str]:
        """For ``/readyz``: ready once a pass completed, while no outage pauses the worker and passes keep
        completing (the reason names the error class only; the log has the message)."""
        error = self.last_error
        if error is not None:
            return False, f"anchoring paused by {error.split(':', 1)[0]} (see the worker's log); retrying"
        if self.last_pass_at is None:
            return False, "starting: checking the ledger's code and the sender's nonce"
        age = time.monotonic() - self.last_pass_at
        if age > max_pass_age:
            return False, f"no pass completed for {age:.0f}s"
        return True, f"{self.passes} passes, the last {age:.1f}s ago"

    def start(self) -> AnchoringWorker:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="secureflow-anchoring", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _models_waiting(self) -> bool:
        store = self.anchorer.store
        return bool(
            store.models(status="pending")
            or store.models(status="submitted")
            or store.jobs_to_close("pending", limit=1)
            or store.jobs_to_close("submitted", limit=1)
        )

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until no record, model or job close is pending or in flight (at shutdown and by tests)."""
        deadline = time.monotonic() + timeout
        store = self.anchorer.store
        while time.monotonic() < deadline:
            counts = store.count_records_by_status()
            if counts["pending"] == counts["submitted"] == 0 and not self._models_waiting():
                return True
            time.sleep(0.05)
        return False
