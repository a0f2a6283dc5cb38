"""The console's search looks each hash up by an index (ledger migration 0008), never by a scan.

SQLite's and PostgreSQL's query plans of `secureflow.ledger.store.search.search_hash`'s statements, on a
migrated store: a record hash, a model hash, a batch's and an event's transaction hash each use their
index (the test fails on a plan that scans ``step_records``, ``models``, ``batches`` or ``chain_events``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.models import BatchOrm, ChainEventOrm, ModelOrm, StepRecordOrm

VALUE = "0x" + "ab" * 32


def _plan(store: SqlLedgerStore, statement: Any) -> str:
    with store.engine.connect() as connection:
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            return "\n".join(str(row[-1]) for row in rows)
        connection.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: ask whether an index exists
        return "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {compiled}").all())


def test_each_hash_is_looked_up_by_its_index(store: SqlLedgerStore) -> None:
    for column, index in (
        (StepRecordOrm.record_hash, "ix_step_records_record_hash"),
        (ModelOrm.model_hash, "ix_models_model_hash"),
        (BatchOrm.tx_hash, "ix_batches_tx_hash"),
        (ChainEventOrm.tx_hash, "ix_chain_events_tx_hash"),
    ):
        plan = _plan(store, select(column.table).where(column == VALUE))
        assert index in plan, plan
