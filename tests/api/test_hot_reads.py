"""The API's hot reads (steps page, receipt) give exactly what the response models give, on SQLite and
PostgreSQL: same JSON, same errors, records not yet in the audit index still listed, a tampered leaf still
refused, members still scoped, and the work that may wait (index sync, tree build) kept off the loop."""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import update
from stack import ALICE, BOB, accept

from secureflow.api.server.db import ApiDb, Principal
from secureflow.api.server.errors import NotFoundError
from secureflow.api.server.reads import HotReads, _NeedsThread, dumps
from secureflow.api.server.schemas import Page, StepOut, step_out
from secureflow.ledger.errors import UnknownRecordError
from secureflow.ledger.merkle import MerkleTree
from secureflow.ledger.receipts import InconsistentBatchError, RecordNotAnchoredError, build_receipt
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.store.schemas import NewJob

JOB = "0x" + "42" * 32
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ADMIN = Principal(1, "admin", "admin", ALICE, "k1")
STRANGER = Principal(2, "carol", "member", "0x" + "ab" * 20, "k2")
PARTY = Principal(3, "bob", "member", BOB, "k3")


def anchored_job(store: SqlLedgerStore, batches: int = 2, per_batch: int = 100, pending: int = 50) -> None:
    store.create_job(NewJob(job_id=JOB, manifest_hash="0x" + "11" * 32, creator=ALICE, parties=[ALICE, BOB]))
    accept(store, JOB, batches * per_batch + pending)
    rows = store.records_for_job(JOB)
    for b in range(batches):
        chunk = rows[b * per_batch : (b + 1) * per_batch]
        root = "0x" + MerkleTree(bytes.fromhex(r.leaf[2:]) for r in chunk).root.hex()
        store.create_batch(root, root, [r.id for r in chunk])
        store.mark_batch_submitted(root, "0x" + f"{b + 1:064x}", ALICE, b)
        if b == 0:  # the second batch stays submitted (mined, not yet confirmed)
            store.mark_batch_confirmed(root, 100 + b, "0x" + f"{b + 7:064x}")
        else:
            store.mark_batch_mined(root, 100 + b, "0x" + f"{b + 7:064x}")


def reads(store: SqlLedgerStore) -> tuple[HotReads, ApiDb]:
    db = ApiDb(store.engine)
    db.migrate()
    return HotReads(store, db, 1337, CONTRACT), db


def model_page(db: ApiDb, after: int, limit: int) -> dict[str, Any]:
    """The page as the route built it before: StepOut models, Page model, JSON mode."""
    items = db.steps_page(JOB, after, limit + 1)
    page = items[:limit]
    model = Page[StepOut](
        items=[step_out(i) for i in page], next_cursor=str(page[-1].seq) if len(items) > limit else None
    )
    return model.model_dump(mode="json")


def test_page_and_receipt_equal_what_the_models_give(store: SqlLedgerStore) -> None:
    anchored_job(store)
    hot, db = reads(store)
    db.sync_record_index()
    for after, limit in ((-1, 100), (0, 100), (99, 100), (150, 100), (240, 100), (249, 100), (10, 1)):
        assert json.loads(hot.steps_page(ADMIN, JOB, after, limit)) == model_page(db, after, limit), after
    statuses = {item["chain_status"] for item in json.loads(hot.steps_page(ADMIN, JOB, 90, 150))["items"]}
    assert statuses == {"confirmed", "submitted", "pending"}
    for seq in (0, 99, 100, 199):
        with pytest.raises(_NeedsThread) if seq in (0, 100) else nullcontext():  # first use of each batch
            hot.receipt(ADMIN, JOB, seq, blocking=False)
        expected = build_receipt(store, 1337, CONTRACT, JOB, seq).model_dump(mode="json")
        assert json.loads(hot.receipt(ADMIN, JOB, seq)) == expected
        assert json.loads(hot.receipt(ADMIN, JOB, seq, blocking=False)) == expected
    with pytest.raises(RecordNotAnchoredError, match="pending"):
        hot.receipt(ADMIN, JOB, 220)
    with pytest.raises(UnknownRecordError):
        hot.receipt(ADMIN, JOB, 10_000)


def test_a_failed_record_is_listed_with_its_reason(store: SqlLedgerStore) -> None:
    anchored_job(store, batches=1, per_batch=3, pending=2)
    hot, db = reads(store)
    db.sync_record_index()
    pending = store.get_record(JOB, 4)
    assert pending is not None
    store.mark_record_failed(pending.id, "quarantined: the stored leaf is zero")
    page = json.loads(hot.steps_page(ADMIN, JOB, -1, 10))
    assert page == model_page(db, -1, 10)
    assert [(i["chain_status"], i["failure_reason"]) for i in page["items"][3:]] == [
        ("pending", None),
        ("failed", "quarantined: the stored leaf is zero"),
    ]


def test_records_not_yet_in_the_audit_index_are_listed(store: SqlLedgerStore) -> None:
    anchored_job(store, batches=1, per_batch=10, pending=0)
    hot, db = reads(store)
    db.sync_record_index()
    accept(store, JOB, 5, start=10)  # after the sync, as if from another process
    with pytest.raises(_NeedsThread):  # indexing writes: not on the event loop
        hot.steps_page(ADMIN, JOB, -1, 100, blocking=False)
    page = json.loads(hot.steps_page(ADMIN, JOB, -1, 100))
    assert [i["seq"] for i in page["items"]] == list(range(15)) and page["next_cursor"] is None
    assert page == model_page(db, -1, 100)
    assert hot.steps_page(ADMIN, JOB, -1, 100, blocking=False)  # indexed now
    # a record accepted between the sync and the page query is listed from its stored record
    assert hot._index_fields(JOB, 3) == ("psi", 1, 2)


def test_a_tampered_leaf_gets_no_receipt(store: SqlLedgerStore) -> None:
    anchored_job(store, batches=1, per_batch=10, pending=0)
    hot, _ = reads(store)
    hot.receipt(ADMIN, JOB, 1)  # the batch's tree is cached now
    with store.engine.begin() as connection:
        connection.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == JOB, StepRecordOrm.seq == 2)
            .values(leaf="0x" + "ee" * 32)
        )
    with pytest.raises(InconsistentBatchError, match="not in batch"):
        hot.receipt(ADMIN, JOB, 2)
    fresh, _ = reads(store)  # no cached tree: the rebuild no longer gives the stored root
    with pytest.raises(InconsistentBatchError, match="give root"):
        fresh.receipt(ADMIN, JOB, 1)


def test_members_see_only_their_jobs_and_new_jobs_are_found(store: SqlLedgerStore) -> None:
    hot, _ = reads(store)
    with pytest.raises(NotFoundError, match="visible to you"):
        hot.steps_page(ADMIN, JOB, -1, 10)  # no such job yet: not cached as missing
    anchored_job(store, batches=1, per_batch=3, pending=0)
    assert json.loads(hot.steps_page(PARTY, JOB, -1, 10))["items"]
    for call in (lambda: hot.steps_page(STRANGER, JOB, -1, 10), lambda: hot.receipt(STRANGER, JOB, 0)):
        with pytest.raises(NotFoundError, match="visible to you"):
            call()


def test_dumps_writes_what_pydantic_writes() -> None:
    class M(BaseModel):
        at: datetime
        whole: datetime
        n: int

    value = M(
        at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc),
        whole=datetime(2026, 1, 2, tzinfo=timezone.utc),
        n=2**70,  # beyond orjson's 64-bit integers: the json module writes it
    )
    assert dumps(value.model_dump()) == value.model_dump_json().encode()
    assert dumps({"at": value.at, "n": 1}) == b'{"at":"2026-01-02T03:04:05.000006Z","n":1}'


def test_api_processes_default_to_one_per_cpu_unless_hosting_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from secureflow.api.server.serve import MAX_DEFAULT_PROCESSES, api_processes
    from secureflow.api.server.settings import ApiSettings

    monkeypatch.delenv("SECUREFLOW_API_WORKERS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    unset = ApiSettings(_env_file=None)  # type: ignore[call-arg]
    assert api_processes(unset, hosts_worker=False) == 2
    assert api_processes(unset, hosts_worker=True) == 1
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert api_processes(unset, hosts_worker=False) == MAX_DEFAULT_PROCESSES
    assert api_processes(ApiSettings(_env_file=None, api_workers=1), hosts_worker=False) == 1  # type: ignore[call-arg]
    monkeypatch.setenv("SECUREFLOW_API_WORKERS", "3")
    assert api_processes(ApiSettings(_env_file=None), hosts_worker=True) == 3  # type: ignore[call-arg]


def test_a_bulk_of_new_records_is_analysed_for_the_planner(store: SqlLedgerStore) -> None:
    """On PostgreSQL, indexing ≥1,000 new records refreshes the planner's statistics: with those of the empty
    tables it sorted a whole job to serve one page (4.6 ms instead of 0.15 ms at 10,000 steps)."""
    store.create_job(NewJob(job_id=JOB, manifest_hash="0x" + "11" * 32, creator=ALICE, parties=[ALICE, BOB]))
    accept(store, JOB, 1_500)
    hot, db = reads(store)
    assert db.sync_record_index() == 1_500
    page = json.loads(hot.steps_page(ADMIN, JOB, 700, 100))
    assert [item["seq"] for item in page["items"]] == list(range(701, 801))
    if store.engine.dialect.name != "postgresql":
        return
    with store.engine.connect() as connection:
        rows = dict(
            connection.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                "AND relname IN ('step_records', 'api_record_index')"
            ).all()
        )
    assert rows["step_records"] >= 1_000 and rows["api_record_index"] >= 1_000, rows
