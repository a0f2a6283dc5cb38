"""The ledger store: jobs, the step-record outbox, batches, models, the chain-event index, sender nonces
and chain checkpoints.

One interface (:class:`LedgerStore`, ``base.py``), one SQLAlchemy implementation over
SQLite (embedded default) and PostgreSQL (``SECUREFLOW_DATABASE_URL``). Open it
with :func:`open_store`, which also migrates the schema to the newest revision.

Where things live: the ORM tables in ``models.py`` (imported only inside this package), the boundary
rows in ``schemas.py``, engines and URLs in ``engine.py``, migrations in ``migrate.py`` and
``migrations/``; :class:`SqlLedgerStore` (``sql.py``) composes one mixin per area over ``sqlbase.py``:
``jobs.py``, ``records.py`` (the outbox), ``batches.py``, ``models_store.py``, ``events.py``,
``nonces.py``, ``checkpoints.py``. The API's reads of these tables are ``audit_reads.py``; the narrow
views of the store that the anchoring service and the indexer are typed with, ``protocols.py``.
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
