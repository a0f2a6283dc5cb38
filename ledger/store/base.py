"""The one ledger store interface: jobs, the step-record outbox, batches, sender nonces, chain checkpoints.

Every method is one short transaction. Record lifecycle::

    accept_record -> pending --create_batch--> submitted --mark_batch_confirmed--> confirmed
                        ^                          |                                    |
                        +-- mark_batch_reverted_to_pending / mark_batch_failed         |
                        +-- requeue_batch (same batch, re-sent: reorg or dropped tx) <--+

Errors are :class:`secureflow.ledger.errors.StoreError` subclasses: ``StoreNotFoundError``
(unknown job/record/batch, HTTP 404), ``StoreConflictError`` (duplicate job,
different record under the same key, invalid transition, HTTP 409) and
``StoreUnavailableError`` (database unreachable).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from typing_extensions import Self

from secureflow.ledger.store.schemas import (
    Batch,
    ChainEvent,
    ChainStatus,
    Checkpoint,
    CloseStatus,
    IndexedBlock,
    Job,
    JobStatus,
    ModelRow,
    ModelStatus,
    NewChainEvent,
    NewJob,
    NewModel,
    NewStepRecord,
    StepRecordRow,
)


@dataclass(frozen=True)
class PendingLeaf:
    """What the batcher needs of a pending record (a light row: batching reads thousands at a time).

    ``job_id``, ``seq`` and ``record_hash`` let the batcher check the leaf against its own record before
    anchoring it (`secureflow.ledger.anchoring.check_leaves`). Values are as stored, unvalidated: a row
    corrupted in the database comes back as it is.
    """

    id: int
    leaf: str
    accepted_at: datetime
    job_id: str
    seq: int
    record_hash: str


class LedgerStore(ABC):
    """Durable state of the ledger side; implementations must be safe to share between threads."""

    # -- jobs -----------------------------------------------------------------------------------------
    @abstractmethod
    def create_job(self, job: NewJob) -> Job:
        """Register a new job (``created``, chain status ``pending``); DuplicateJobError if it exists."""

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None:
        """The job, or None."""

    @abstractmethod
    def list_jobs(self, limit: int = 100, offset: int = 0) -> list[Job]:
        """Jobs, newest first."""

    @abstractmethod
    def update_job(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        chain_status: ChainStatus | None = None,
        created_tx_hash: str | None = None,
        reason: str | None = None,
        hold_close: bool = False,
    ) -> Job:
        """Change the given fields; a job that has finished (completed/failed/cancelled) keeps its status.

        A job that finishes gets close status ``pending``: the anchoring service closes it on chain;
        with ``hold_close`` (a job cancelled while its executor still runs a step) it gets none until
        `release_close`, so the close counts the step that was running. A rejected job is never closed.
        ``reason`` (only with status ``failed`` or ``cancelled``) says why it did not complete; it is kept
        as one line cut to ``MAX_JOB_REASON`` characters. Never put data values, keys or salts in it. A job
        already ended that way keeps the reason it has (it gets this one only if it had none).
        """

    @abstractmethod
    def release_close(self, job_id: str) -> None:
        """The job's executor is done with it: a finished job whose close was held gets close status
        ``pending`` (nothing for a job still running, rejected, or with a close status already)."""

    @abstractmethod
    def stuck_jobs(
        self, idle_since: datetime, *, job_ids: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Job]:
        """Running jobs with no status change and no new step record since ``idle_since`` (their
        ``updated_at`` is not later), longest idle first; only among ``job_ids`` when given."""

    @abstractmethod
    def count_stuck_jobs(self, idle_since: datetime) -> int:
        """How many jobs ``stuck_jobs(idle_since)`` would list without a limit."""

    @abstractmethod
    def count_jobs_by_status(self) -> dict[str, int]:
        """Number of jobs per status, every status present (0 if none): a metrics scrape reads it."""

    @abstractmethod
    def jobs_to_close(self, status: CloseStatus = "pending", limit: int = 100) -> list[Job]:
        """Jobs created on chain (chain status ``confirmed``) whose close is in ``status``, oldest first."""

    @abstractmethod
    def jobs_closed_after(self, block_number: int) -> list[Job]:
        """Jobs whose close was mined in a block above ``block_number`` (a reorg may have dropped it)."""

    @abstractmethod
    def mark_job_close(
        self,
        job_id: str,
        status: CloseStatus,
        *,
        tx_hash: str | None = None,
        block: int | None = None,
        reason: str | None = None,
    ) -> Job:
        """Move a job's on-chain close (``failed`` needs the reason; ``pending`` clears tx and block)."""

    # -- step records (outbox) ------------------------------------------------------------------------
    @abstractmethod
    def accept_record(self, rec: NewStepRecord, *, after_close: bool = False) -> StepRecordRow:
        """Store the record as ``pending`` (idempotent by job id and seq; a different hash is a conflict).

        A new record of a job whose close on chain is under way is refused (`InvalidStateError`): its close
        would not cover it. ``after_close``: a record that by design follows the job's end (a settlement's
        contribution record), anchored on its own and referenced by the settlement."""

    @abstractmethod
    def get_record(self, job_id: str, seq: int) -> StepRecordRow | None:
        """The job's record with this sequence number, or None."""

    @abstractmethod
    def get_record_by_id(self, record_id: int) -> StepRecordRow | None:
        """The record with this outbox id, or None."""

    @abstractmethod
    def records_for_job(self, job_id: str) -> list[StepRecordRow]:
        """All records of a job ordered by seq; UnknownJobError if there is no such job."""

    @abstractmethod
    def claim_pending(self, limit: int) -> list[StepRecordRow]:
        """Up to ``limit`` pending records, oldest first (``create_batch`` is what takes them atomically)."""

    @abstractmethod
    def mark_record_failed(self, record_id: int, reason: str) -> StepRecordRow:
        """Give up on a record that cannot be anchored (never on a confirmed one)."""

    @abstractmethod
    def count_records_by_status(self) -> dict[str, int]:
        """Number of records per status, every status present (0 if none)."""

    @abstractmethod
    def oldest_unconfirmed_accepted_at(self) -> datetime | None:
        """When the oldest record still waiting for its anchor (``pending`` or ``submitted``) was accepted;
        None if every record is confirmed or failed. Two index lookups: a metrics scrape reads it."""

    @abstractmethod
    def unanchored_running_jobs(self, accepted_before: datetime, limit: int = 1000) -> list[StepRecordRow]:
        """For each running job with a record still waiting for its anchor (``pending`` or ``submitted``)
        accepted at or before ``accepted_before``, its oldest such record; longest waiting first. What the
        API's watchdog fails a job on (``unanchored_fail_after``)."""

    def job_record_counts(self, job_id: str) -> tuple[dict[str, int], int | None]:
        """The job's records per status (every status present) and its highest seq (None without records).

        What the anchoring service checks before it closes a job; stores may answer with one query.
        """
        rows = self.records_for_job(job_id)
        counts = dict.fromkeys(("pending", "submitted", "confirmed", "failed"), 0)
        for row in rows:
            counts[row.status] += 1
        return counts, (max(row.seq for row in rows) if rows else None)

    # -- batches --------------------------------------------------------------------------------------
    @abstractmethod
    def create_batch(self, batch_id: str, root: str, record_ids: list[int]) -> Batch:
        """Insert the batch (``built``) and move its records pending -> submitted, all or nothing."""

    @abstractmethod
    def get_batch(self, batch_id: str) -> Batch | None:
        """The batch, or None."""

    @abstractmethod
    def records_for_batch(self, batch_id: str) -> list[StepRecordRow]:
        """The records currently in the batch, in outbox order."""

    def batch_leaves(self, batch_id: str) -> list[str]:
        """The leaves of the records currently in the batch, in outbox order (to rebuild its Merkle tree).

        A light read for receipts; stores may override it with a query that reads only the leaf column.
        """
        return [row.leaf for row in self.records_for_batch(batch_id)]

    def record_with_batch(self, job_id: str, seq: int) -> tuple[StepRecordRow, Batch | None] | None:
        """The job's record with this seq and the batch it is in (None if in none), or None if no record.

        What a receipt needs; stores may override it with a single query.
        """
        row = self.get_record(job_id, seq)
        if row is None:
            return None
        return row, (self.get_batch(row.batch_id) if row.batch_id is not None else None)

    @abstractmethod
    def mark_batch_submitted(self, batch_id: str, tx_hash: str, sender: str, nonce: int) -> Batch:
        """Record the anchoring transaction (again, for a replacement transaction)."""

    @abstractmethod
    def mark_batch_confirmed(self, batch_id: str, block_number: int, block_hash: str) -> Batch:
        """The root is final on chain: the batch and its records become ``confirmed``."""

    @abstractmethod
    def mark_batch_reverted_to_pending(self, batch_id: str, reason: str) -> Batch:
        """A reorg dropped the anchor: batch ``reorged``, its records back to ``pending`` for a new batch."""

    @abstractmethod
    def mark_batch_failed(self, batch_id: str, reason: str) -> Batch:
        """The anchoring transaction failed: batch ``failed``, its records back to ``pending``."""

    # -- nonces ---------------------------------------------------------------------------------------
    @abstractmethod
    def allocate_nonce(self, chain_id: int, address: str, chain_pending_nonce: int) -> int:
        """Atomically take the next nonce: n = max(stored next nonce, chain's pending nonce); store n + 1."""

    @abstractmethod
    def reset_nonce(self, chain_id: int, address: str, next_nonce: int) -> None:
        """Set the next nonce (resync after "nonce too low" or a dropped transaction)."""

    @abstractmethod
    def peek_nonce(self, chain_id: int, address: str) -> int | None:
        """The stored next nonce, or None if this sender never allocated one."""

    # -- checkpoints ----------------------------------------------------------------------------------
    @abstractmethod
    def get_checkpoint(self, name: str) -> Checkpoint | None:
        """The named follower's checkpoint, or None."""

    @abstractmethod
    def set_checkpoint(self, name: str, block_number: int, block_hash: str) -> Checkpoint:
        """Create or move the named checkpoint."""

    # -- lifecycle ------------------------------------------------------------------------------------
    # -- anchoring pipeline ---------------------------------------------------------------------------
    @abstractmethod
    def accept_records(self, recs: Sequence[NewStepRecord]) -> list[StepRecordRow]:
        """Accept many records in one transaction (same rules as `accept_record`, all or nothing)."""

    @abstractmethod
    def pending_leaves(self, limit: int) -> list[PendingLeaf]:
        """Like `claim_pending`, but only id, leaf, acceptance time, job id, seq and record hash (oldest
        first), in one query."""

    def count_pending(self, limit: int) -> int:
        """How many records `pending_leaves` would return (at most ``limit``); stores may count in the DB.

        The batcher asks this while it waits for a full batch, instead of reading thousands of leaves
        every pass.
        """
        return len(self.pending_leaves(limit))

    @abstractmethod
    def requeue_batch(self, batch_id: str, reason: str) -> Batch:
        """Put a batch whose anchor vanished (reorg, dropped tx) back to ``built`` with the same records.

        Its records return to ``pending`` but stay in the batch, so the batch is re-sent with the same
        root and batch id; the contract refuses a second anchor of it, which keeps anchoring exactly-once.
        """

    @abstractmethod
    def mark_batch_mined(self, batch_id: str, block_number: int, block_hash: str) -> Batch:
        """Record the block that includes the batch's anchor (not yet enough confirmations)."""

    @abstractmethod
    def batches_in_flight(self, limit: int = 1000) -> list[Batch]:
        """Batches built or submitted but not yet confirmed, oldest first."""

    @abstractmethod
    def batches_anchored_after(self, block_number: int) -> list[Batch]:
        """Submitted or confirmed batches whose anchor is in a block above ``block_number``."""

    @abstractmethod
    def confirmed_batch_ids(self) -> list[str]:
        """The ids of every confirmed batch (what reconcile compares with the records that point at one)."""

    # -- models -------------------------------------------------------------------------------------
    @abstractmethod
    def accept_model(self, model: NewModel) -> ModelRow:
        """Record a trained model for anchoring (idempotent; another hash for the same version: 409)."""

    @abstractmethod
    def models(self, *, status: ModelStatus | None = None, job_id: str | None = None) -> list[ModelRow]:
        """Models, oldest first, optionally by anchoring status or job."""

    @abstractmethod
    def mark_model(
        self,
        model_id: str,
        version: int,
        status: ModelStatus,
        *,
        tx_hash: str | None,
        block: int | None,
        reason: str | None = None,
    ) -> ModelRow:
        """Move a model's anchoring state (pending after a lost transaction, submitted, confirmed, or
        failed with the reason the contract refused it)."""

    # -- event index ----------------------------------------------------------------------------------
    @abstractmethod
    def index_events(
        self, events: Sequence[NewChainEvent], blocks: Sequence[IndexedBlock], checkpoint: str
    ) -> None:
        """Store events and their blocks' hashes; move checkpoint ``checkpoint`` to the last block."""

    @abstractmethod
    def indexed_blocks(self, below_or_at: int, limit: int = 256) -> list[IndexedBlock]:
        """Indexed blocks at or below a height, newest first."""

    @abstractmethod
    def rollback_events(self, after_block: int, checkpoint: str, fork_block: IndexedBlock) -> list[str]:
        """Drop events and block hashes above ``after_block``; return the batch ids whose anchors went."""

    @abstractmethod
    def events(
        self,
        *,
        name: str | None = None,
        batch_id: str | None = None,
        job_id: str | None = None,
        limit: int = 1000,
        after_id: int = 0,
    ) -> list[ChainEvent]:
        """Indexed events, oldest first, filtered by name, batch or job."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
