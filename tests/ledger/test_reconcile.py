"""Audit reconciliation on SQLite and PostgreSQL against a real anvil: clean stays clean, tampering shows.

Records are altered the way an intruder with database access would: SQL
UPDATE/DELETE on ``step_records`` after the batch is anchored.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from eth_utils.crypto import keccak
from sqlalchemy import delete, update
from test_receipts import LedgerEnv, anchor_pending, build_pending_batch, deploy_env, new_job, pin_of

from secureflow.ledger.contracts import hex32
from secureflow.ledger.devchain import DevChain
from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.receipts import build_receipt
from secureflow.ledger.reconcile import reconcile
from secureflow.ledger.records import StepRecord
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.models import StepRecordOrm
from secureflow.ledger.verify import verify_receipt


@pytest.fixture(scope="module")
def env(devchain: DevChain) -> LedgerEnv:
    return deploy_env(devchain)


def _update_record(store: SqlLedgerStore, job_id: str, seq: int, **values: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(StepRecordOrm)
            .where(StepRecordOrm.job_id == job_id, StepRecordOrm.seq == seq)
            .values(**values)
        )


def test_an_untouched_store_reconciles_clean(store: SqlLedgerStore, env: LedgerEnv) -> None:
    new_job(store, env, 4)
    anchor_pending(store, env)
    job_id, _, _ = new_job(store, env, 3)
    anchor_pending(store, env)
    new_job(store, env, 2, on_chain=False)  # fresh pending records are not (yet) a finding
    store.update_job(job_id, status="completed")

    report = reconcile(store, env.reader)
    assert report.ok, report.lines()
    assert (report.jobs_checked, report.records_checked, report.batches_checked) == (3, 9, 2)
    assert report.counts == {"tampered": 0, "missing": 0, "unanchored": 0}
    assert report.lines()[0].endswith("clean")
    assert (report.chain_id, report.contract) == (env.chain_id, env.contract)

    by_url = reconcile(store, env.rpc_url, env.contract)
    assert by_url.ok and by_url.records_checked == 9


def test_a_record_modified_after_anchoring_is_tampered(store: SqlLedgerStore, env: LedgerEnv) -> None:
    job_id, _, records = new_job(store, env, 5)
    anchor_pending(store, env)
    forged = records[2].model_copy(update={"algorithm": "ss_xgb"})
    _update_record(store, job_id, 2, record_json=forged.canonical_json().decode())

    report = reconcile(store, env.reader)
    assert report.counts == {"tampered": 1, "missing": 0, "unanchored": 0}, report.lines()
    (finding,) = report.findings
    assert (finding.kind, finding.job_id, finding.seq) == ("tampered", job_id, 2)
    assert hex32(forged.record_hash()) in finding.detail and "ss_xgb" not in finding.detail
    assert "ss_xgb" not in report.model_dump_json()  # ids and hashes only, never record contents

    # The receipt issued from the altered store fails verification on its record hash.
    receipt = build_receipt(store, env.chain_id, env.contract, job_id, 2)
    verdict = verify_receipt(receipt, env.rpc_url, pin_of(env))
    assert verdict.failed == ["record_hash"]


def test_a_consistently_rewritten_leaf_is_caught_by_the_anchored_root(
    store: SqlLedgerStore, env: LedgerEnv
) -> None:
    job_id, _, records = new_job(store, env, 4)
    batch = anchor_pending(store, env)
    forged = records[1].model_copy(update={"finished_at_ms": records[1].finished_at_ms + 5})
    _update_record(
        store,
        job_id,
        1,
        record_json=forged.canonical_json().decode(),
        record_hash=hex32(forged.record_hash()),
        leaf=hex32(forged.leaf()),
    )
    report = reconcile(store, env.reader)
    assert report.counts == {"tampered": 1, "missing": 0, "unanchored": 0}, report.lines()
    (finding,) = report.findings
    assert finding.batch_id == batch.batch_id and finding.job_id is None
    assert f"the anchored root is {batch.root}" in finding.detail


def test_a_record_whose_batch_root_is_not_on_chain(store: SqlLedgerStore, env: LedgerEnv) -> None:
    anchored_job, _, _ = new_job(store, env, 2)
    anchor_pending(store, env)
    job_id, _, _ = new_job(store, env, 3, on_chain=False)
    batch, _ = build_pending_batch(store)  # the store believes it anchored this batch; the chain never saw it
    store.mark_batch_submitted(batch.batch_id, hex32(keccak(b"never sent")), env.alice, 0)
    store.mark_batch_confirmed(batch.batch_id, 1, hex32(keccak(b"no such block")))

    report = reconcile(store, env.reader)
    assert report.counts == {"tampered": 0, "missing": 1, "unanchored": 3}, report.lines()
    missing = report.of_kind("missing")[0]
    assert missing.batch_id == batch.batch_id and f"root {batch.root} is not anchored" in missing.detail
    assert {(f.job_id, f.seq) for f in report.of_kind("unanchored")} == {
        (job_id, 0),
        (job_id, 1),
        (job_id, 2),
    }
    assert all(f.job_id != anchored_job for f in report.findings)


def test_records_deleted_from_an_anchored_batch_are_missing(store: SqlLedgerStore, env: LedgerEnv) -> None:
    job_id, _, _ = new_job(store, env, 4)
    batch = anchor_pending(store, env)
    with store.engine.begin() as conn:
        conn.execute(delete(StepRecordOrm).where(StepRecordOrm.job_id == job_id, StepRecordOrm.seq == 3))
    report = reconcile(store, env.reader)
    assert report.counts["missing"] == 1, report.lines()
    assert "the chain says 4 records in this batch, the store holds 3" in report.findings[0].detail

    with store.engine.begin() as conn:
        conn.execute(delete(StepRecordOrm).where(StepRecordOrm.job_id == job_id))
    report = reconcile(store, env.reader)
    (finding,) = report.findings
    assert finding.kind == "missing" and finding.batch_id == batch.batch_id
    assert "confirmed batch has no stored records; the chain holds 4 records" in finding.detail


def test_gaps_in_a_finished_job_and_its_on_chain_step_count(store: SqlLedgerStore, env: LedgerEnv) -> None:
    job_id, _, _ = new_job(store, env, 3)
    anchor_pending(store, env)
    # The chain says 5 steps: seq 4's record is in a batch anchored on chain that this store never held.
    job = bytes.fromhex(job_id[2:])
    last = keccak(b"a record this store never held")
    tree = MerkleTree([leaf_hash(job, 4, last), keccak(b"another leaf")])
    env.anchorer.anchor_batch(keccak(tree.root), tree.root, 2)
    env.anchorer.close_job(
        job,
        step_count=5,
        final_record_hash=last,
        final_root=tree.root,
        proof=tree.proof(leaf_hash(job, 4, last)),
    )
    store.update_job(job_id, status="completed")
    report = reconcile(store, env.reader)
    assert report.counts == {"tampered": 0, "missing": 3, "unanchored": 0}, report.lines()
    assert "closed on chain with 5 steps, the store holds 3" in report.findings[0].detail
    assert [f.seq for f in report.findings[1:]] == [3, 4]


def test_stale_and_failed_records_are_unanchored(store: SqlLedgerStore, env: LedgerEnv) -> None:
    job_id, _, _ = new_job(store, env, 3, on_chain=False)
    row = store.get_record(job_id, 0)
    assert row is not None
    store.mark_record_failed(row.id, "test: the batch reverted and was given up")
    later = datetime.now(timezone.utc) + timedelta(hours=2)

    assert len(reconcile(store, env.reader).of_kind("unanchored")) == 1  # only the failed one, for now
    report = reconcile(store, env.reader, now=later, stale_after=timedelta(minutes=30))
    findings = report.of_kind("unanchored")
    assert [(f.seq, f.detail.split(" ")[0]) for f in findings] == [(0, "the"), (1, "pending"), (2, "pending")]
    assert "longer than 30.0 min" in findings[1].detail
    assert "given up" not in report.model_dump_json()  # operator reasons stay in the store


def test_a_confirmed_batch_in_a_block_that_is_no_longer_canonical(
    store: SqlLedgerStore, env: LedgerEnv
) -> None:
    new_job(store, env, 2)
    batch, tree = build_pending_batch(store)
    sent = env.anchorer.send_anchor_batch(bytes.fromhex(batch.batch_id[2:]), tree.root, batch.record_count)
    store.mark_batch_submitted(batch.batch_id, sent.tx_hash, env.anchor_sender.address, sent.nonce)
    mined = env.anchor_sender.wait(sent)
    block = int(mined["blockNumber"])
    store.mark_batch_confirmed(batch.batch_id, block, hex32(keccak(b"a block from a reorged fork")))

    report = reconcile(store, env.reader)
    (finding,) = report.findings
    assert finding.kind == "unanchored" and finding.batch_id == batch.batch_id
    assert f"block {block} is now {hex32(mined['blockHash'])}" in finding.detail


def test_a_record_that_is_not_json_anymore(store: SqlLedgerStore, env: LedgerEnv) -> None:
    job_id, _, records = new_job(store, env, 2)
    anchor_pending(store, env)
    _update_record(store, job_id, 0, record_json="{not json")
    moved = json.loads(records[1].canonical_json())
    moved["seq"] = 7
    moved_json = StepRecord.model_validate(moved).canonical_json()
    _update_record(store, job_id, 1, record_json=moved_json.decode(), record_hash=hex32(keccak(moved_json)))
    report = reconcile(store, env.reader)
    details = {f.seq: f.detail for f in report.of_kind("tampered")}
    assert details[0] == "the stored record is no longer canonicalisable JSON"
    assert details[1].startswith(f"the stored record says job {job_id} step 7")
