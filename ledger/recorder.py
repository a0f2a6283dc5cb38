"""The small interface through which `compute` reaches the ledger, and its outbox implementation.

`compute` depends only on the `LedgerRecorder` and `ModelAnchors` protocols and on `secureflow.ledger.records`
(pydantic models and hashing; no web3). `OutboxRecorder` writes into the
ledger store: a step accepted here is in the outbox (status ``pending``) when
``record_step`` returns, and the anchoring worker takes it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from secureflow.ledger.records import StepRecord
from secureflow.ledger.store.protocols import RecorderStore
from secureflow.ledger.store.schemas import NewJob, NewModel, NewStepRecord, StepRecordRow


class LedgerRecorder(Protocol):
    """What a compute engine needs from the ledger."""

    def open_job(
        self,
        job_id: str,
        manifest_hash: str,
        creator: str,
        parties: Sequence[str],
        *,
        salt: str | None = None,
    ) -> None:
        """Register a job before its first step (idempotent for the same manifest).

        ``salt`` is the creator's ``createJob`` salt (``job_id = job_id_for(creator, manifest_hash, salt)``).
        """

    def record_step(self, record: StepRecord) -> StepRecordRow:
        """Accept one step record into the outbox; it is never lost from here on."""

    def close_job(self, job_id: str, *, succeeded: bool, reason: str | None = None) -> None:
        """Mark a job finished (completed, or failed with ``reason``: which step failed and why, naming
        columns, parties and steps, never data values)."""

    def record_model(self, job_id: str, model_id: str, version: int, model_hash: str) -> None:
        """Accept a trained model's hash and version; the anchoring worker records it on chain."""


class ModelAnchors(Protocol):
    """What a compute engine needs to trust a stored model: the hash anchored on chain for a version.

    Implemented over the chain by `secureflow.ledger.model_anchors.ChainModelAnchors`; `compute` takes it
    as an argument and never reaches the chain itself.
    """

    def anchored_model_hash(self, job_id: str, model_id: str, version: int) -> str | None:
        """``0x`` + 64 hex of ``modelHash(job_id, model_key(model_id), version)``; None if not recorded."""


def to_outbox(record: StepRecord) -> NewStepRecord:
    """The outbox row for ``record``: its canonical JSON, record hash and Merkle leaf.

    Every field is derived from the validated ``record`` (lower-case hex, a JSON object), so the row
    is built without validating it again (which would parse the JSON back: ~15 µs a record).
    """
    canonical, record_hash, leaf = record.hashes()
    return NewStepRecord.model_construct(
        job_id=record.job_id,
        seq=record.seq,
        record_json=canonical.decode(),
        record_hash="0x" + record_hash.hex(),
        leaf="0x" + leaf.hex(),
    )


class OutboxRecorder:
    """`LedgerRecorder` over the store (its `RecorderStore` view): records go to the outbox in one DB
    transaction each."""

    def __init__(self, store: RecorderStore) -> None:
        self.store = store

    def open_job(
        self,
        job_id: str,
        manifest_hash: str,
        creator: str,
        parties: Sequence[str],
        *,
        salt: str | None = None,
    ) -> None:
        existing = self.store.get_job(job_id)
        if existing is not None and existing.manifest_hash == manifest_hash.lower():
            return
        self.store.create_job(
            NewJob(
                job_id=job_id, manifest_hash=manifest_hash, creator=creator, parties=list(parties), salt=salt
            )
        )

    def record_step(self, record: StepRecord) -> StepRecordRow:
        return self.store.accept_record(to_outbox(record))

    def close_job(self, job_id: str, *, succeeded: bool, reason: str | None = None) -> None:
        if succeeded:
            self.store.update_job(job_id, status="completed")
        else:
            self.store.update_job(job_id, status="failed", reason=reason)

    def record_model(self, job_id: str, model_id: str, version: int, model_hash: str) -> None:
        self.store.accept_model(
            NewModel(model_id=model_id, version=version, job_id=job_id, model_hash=model_hash)
        )
