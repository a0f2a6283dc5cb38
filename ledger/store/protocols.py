"""Narrow views of the ledger store, one per consumer: what each one calls, and nothing else.

:class:`secureflow.ledger.store.base.LedgerStore` (and so ``SqlLedgerStore``) satisfies each of them
structurally. A consumer typed with its view shows what it depends on, and a test double for it needs
only these methods. (The compute side's view of the recorder is `secureflow.ledger.recorder.LedgerRecorder`,
the recorder's of the store `RecorderStore`; the transaction sender's is
`secureflow.ledger.nonces.NonceSource`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from secureflow.ledger.store.base import LedgerStore, PendingLeaf
from secureflow.ledger.store.schemas import (
    Batch,
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


class ModelAndCloseStore(Protocol):
    """What the anchoring service and the indexer both use: model anchoring state and job closes."""

    def models(self, *, status: ModelStatus | None = None, job_id: str | None = None) -> list[ModelRow]: ...

    def mark_model(
        self,
        model_id: str,
        version: int,
        status: ModelStatus,
        *,
        tx_hash: str | None,
        block: int | None,
        reason: str | None = None,
    ) -> ModelRow: ...

    def mark_job_close(
        self,
        job_id: str,
        status: CloseStatus,
        *,
        tx_hash: str | None = None,
        block: int | None = None,
        reason: str | None = None,
    ) -> Job: ...

    def get_batch(self, batch_id: str) -> Batch | None: ...

    def requeue_batch(self, batch_id: str, reason: str) -> Batch: ...


class AnchoringStore(ModelAndCloseStore, Protocol):
    """What `secureflow.ledger.anchoring.Anchorer` (and its worker) use of the store."""

    # pending records -> batches
    def pending_leaves(self, limit: int) -> list[PendingLeaf]: ...

    def count_pending(self, limit: int) -> int: ...

    def create_batch(self, batch_id: str, root: str, record_ids: list[int]) -> Batch: ...

    def batches_in_flight(self, limit: int = 1000) -> list[Batch]: ...

    def mark_batch_submitted(self, batch_id: str, tx_hash: str, sender: str, nonce: int) -> Batch: ...

    def mark_batch_mined(self, batch_id: str, block_number: int, block_hash: str) -> Batch: ...

    def mark_batch_confirmed(self, batch_id: str, block_number: int, block_hash: str) -> Batch: ...

    def mark_batch_failed(self, batch_id: str, reason: str) -> Batch: ...

    def batch_leaves(self, batch_id: str) -> list[str]: ...

    def records_for_batch(self, batch_id: str) -> list[StepRecordRow]: ...

    # records that cannot be anchored (quarantined)
    def mark_record_failed(self, record_id: int, reason: str) -> StepRecordRow: ...

    # job closes
    def jobs_to_close(self, status: CloseStatus = "pending", limit: int = 100) -> list[Job]: ...

    def job_record_counts(self, job_id: str) -> tuple[dict[str, int], int | None]: ...

    def get_record(self, job_id: str, seq: int) -> StepRecordRow | None: ...

    def records_for_job(self, job_id: str) -> list[StepRecordRow]: ...

    # health
    def count_records_by_status(self) -> dict[str, int]: ...


class IndexerStore(ModelAndCloseStore, Protocol):
    """What `secureflow.ledger.indexer.EventIndexer` uses of the store."""

    def get_checkpoint(self, name: str) -> Checkpoint | None: ...

    def index_events(
        self, events: Sequence[NewChainEvent], blocks: Sequence[IndexedBlock], checkpoint: str
    ) -> None: ...

    def indexed_blocks(self, below_or_at: int, limit: int = 256) -> list[IndexedBlock]: ...

    def rollback_events(self, after_block: int, checkpoint: str, fork_block: IndexedBlock) -> list[str]: ...

    def batches_anchored_after(self, block_number: int) -> list[Batch]: ...

    def jobs_closed_after(self, block_number: int) -> list[Job]: ...


class ReceiptStore(Protocol):
    """What receipts and audit bundles (`secureflow.ledger.receipts`) read of the store."""

    def get_job(self, job_id: str) -> Job | None: ...

    def get_record(self, job_id: str, seq: int) -> StepRecordRow | None: ...

    def records_for_job(self, job_id: str) -> list[StepRecordRow]: ...

    def get_batch(self, batch_id: str) -> Batch | None: ...

    def batch_leaves(self, batch_id: str) -> list[str]: ...


class ReconcileStore(ReceiptStore, Protocol):
    """What `secureflow.ledger.reconcile` (``secureflow audit reconcile``) reads: receipts' reads, every job
    and the confirmed batches."""

    def confirmed_batch_ids(self) -> list[str]: ...

    def list_jobs(self, limit: int = 100, offset: int = 0) -> list[Job]: ...


class RecorderStore(Protocol):
    """What `secureflow.ledger.recorder.OutboxRecorder` (the compute side's recorder) writes and reads."""

    def create_job(self, job: NewJob) -> Job: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def update_job(
        self,
        job_id: str,
        *,
        status: JobStatus | None = None,
        chain_status: ChainStatus | None = None,
        created_tx_hash: str | None = None,
        reason: str | None = None,
        hold_close: bool = False,
    ) -> Job: ...

    def accept_record(self, rec: NewStepRecord, *, after_close: bool = False) -> StepRecordRow: ...

    def accept_model(self, model: NewModel) -> ModelRow: ...


if TYPE_CHECKING:  # mypy checks here that the one store interface satisfies every view

    def _views_of(
        store: LedgerStore,
    ) -> tuple[AnchoringStore, IndexerStore, ReceiptStore, ReconcileStore, RecorderStore]:
        return store, store, store, store, store
