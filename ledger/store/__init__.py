"""The ledger store: jobs, the step-record outbox, batches, sender nonces and chain checkpoints.

One interface (:class:`LedgerStore`), one SQLAlchemy implementation over
SQLite (embedded default) and PostgreSQL (``SECUREFLOW_DATABASE_URL``). Open it
with :func:`open_store`, which also migrates the schema to the newest revision.
"""

from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import Batch, Checkpoint, Job, NewJob, NewStepRecord, StepRecordRow
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

__all__ = [
    "Batch",
    "Checkpoint",
    "Job",
    "LedgerStore",
    "NewJob",
    "NewStepRecord",
    "SqlLedgerStore",
    "StepRecordRow",
    "open_store",
]
