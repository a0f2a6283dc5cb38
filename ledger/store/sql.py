"""The SQLAlchemy implementation of :class:`LedgerStore` (SQLite and PostgreSQL), and :func:`open_store`.

:class:`SqlLedgerStore` composes one mixin per area, each in its own module over the shared engine and
sessions of :mod:`secureflow.ledger.store.sqlbase`: jobs (``jobs``), the step-record outbox
(``records``), Merkle batches (``batches``), model rows (``models_store``), the chain-event index
(``events``), sender nonces (``nonces``) and follower checkpoints (``checkpoints``). Here: the
composition, its lifecycle (schema check, migration, close) and :func:`open_store`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from secureflow.ledger.errors import StoreError, StoreMissingError
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.batches import BatchesMixin
from secureflow.ledger.store.checkpoints import CheckpointsMixin
from secureflow.ledger.store.engine import mask_url, resolve_url
from secureflow.ledger.store.events import EventsMixin
from secureflow.ledger.store.jobs import JobsMixin
from secureflow.ledger.store.models_store import ModelsMixin
from secureflow.ledger.store.nonces import NoncesMixin
from secureflow.ledger.store.records import RecordsMixin


class SqlLedgerStore(
    JobsMixin,
    RecordsMixin,
    BatchesMixin,
    ModelsMixin,
    EventsMixin,
    NoncesMixin,
    CheckpointsMixin,
    LedgerStore,
):
    """The ledger store on a SQLAlchemy engine; thread-safe (one session per call)."""

    def __repr__(self) -> str:
        return f"SqlLedgerStore({self.masked_url!r})"

    def schema_revision(self) -> str | None:
        """The migration revision the database is at (None if never migrated)."""
        from secureflow.ledger.store.migrate import revision_of_engine  # alembic is imported only when needed

        return revision_of_engine(self._engine)

    def check(self) -> None:
        """Raise unless the database answers and its schema is at the newest revision (for readiness)."""
        from secureflow.ledger.store.migrate import head_revision

        revision, head = self.schema_revision(), head_revision()
        if revision != head:
            raise StoreError(
                f"the ledger database at {self.masked_url} is at schema revision {revision}, expected {head}",
                hint="run `secureflow db upgrade` (or open the store with open_store, which migrates)",
            )

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent, safe from several processes at once)."""
        from secureflow.ledger.store.migrate import upgrade_engine

        upgrade_engine(self._engine)

    def close(self) -> None:
        self._engine.dispose()


def open_store(url: str | None = None, *, migrate: bool = True, must_exist: bool = False) -> SqlLedgerStore:
    """Open the ledger store at ``url``, else ``SECUREFLOW_DATABASE_URL``, else ``.secureflow/secureflow.db``.

    Migrates the schema to the newest revision unless ``migrate`` is false. With ``must_exist`` (every
    command that only reads a store), a SQLite file that does not exist, or a database without the
    ledger's schema, is a :class:`secureflow.ledger.errors.StoreMissingError` naming it: reading must
    never create an empty store and report on nothing.
    Raises :class:`secureflow.ledger.errors.StoreUnavailableError` (URL shown without its
    password) if the database cannot be reached.
    """
    resolved = resolve_url(url)
    if must_exist:
        _require_existing(resolved)
    store = SqlLedgerStore(resolved)
    if must_exist and store.schema_revision() is None:
        store.close()
        raise StoreMissingError(f"the database at {mask_url(resolved)} holds no ledger (no schema)")
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


def _require_existing(url: str) -> None:
    """Refuse a SQLite file that does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database).expanduser()
    if not path.is_file():
        raise StoreMissingError(f"no ledger database at {path}")
