"""The anchoring hot paths made fast for issue 4 give exactly the results of the slow, obvious ones.

* record hashing: the stdlib-encoder canonical JSON is byte-identical to the ``rfc8785`` library and
  the C keccak to eth-hash's, for any valid record;
* the store's bulk paths (one-statement accept, one-parameter id lists, counted pending records) on
  SQLite and PostgreSQL, beyond the old 5,000-ids-per-IN-list chunking;
* the anchorer confirms a batch in the pass that finds its receipt deep enough.
"""

from __future__ import annotations

import json
from datetime import timezone

import pytest
import rfc8785
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from stack import LedgerStack, accept, assert_anchored_exactly_once, make_anchorer, new_job

from secureflow.ledger.errors import InvalidStateError, UnknownJobError
from secureflow.ledger.merkle import MerkleTree, keccak256, leaf_hash
from secureflow.ledger.recorder import to_outbox
from secureflow.ledger.records import MAX_SAFE_INTEGER, PartyDigests, StepRecord
from secureflow.ledger.store import NewJob, NewStepRecord, SqlLedgerStore

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"

identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
digests = st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())
safe_ints = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)


@st.composite
def step_records(draw: st.DrawFn) -> StepRecord:
    failed = draw(st.booleans())
    started = draw(safe_ints)
    parties = [
        PartyDigests(
            party=party,
            inputs=draw(st.dictionaries(identifiers, digests, max_size=4)),
            outputs=draw(st.dictionaries(identifiers, digests, max_size=4)),
            signature=draw(st.none() | st.binary(min_size=65, max_size=65).map(lambda b: "0x" + b.hex())),
        )
        for party in draw(st.sampled_from([[ALICE], [ALICE, BOB], [BOB, ALICE]]))
    ]
    return StepRecord(
        job_id=draw(digests),
        seq=draw(safe_ints),
        algorithm=draw(identifiers),
        params_hash=draw(digests),
        code_version=draw(identifiers),
        parties=tuple(parties),
        status="failed" if failed else "succeeded",
        error_class=draw(identifiers) if failed else None,
        started_at_ms=started,
        finished_at_ms=draw(st.integers(min_value=started, max_value=MAX_SAFE_INTEGER)),
    )


@settings(max_examples=300, deadline=None)
@given(record=step_records())
def test_fast_canonical_json_and_hashes_equal_the_reference_implementations(record: StepRecord) -> None:
    reference = bytes(rfc8785.dumps(record.model_dump(mode="json")))
    assert record.canonical_json() == reference
    record_hash = bytes(keccak(reference))  # eth-hash (pycryptodome): an independent keccak
    assert record.record_hash() == record_hash
    job_id = bytes.fromhex(record.job_id[2:])
    leaf = bytes(keccak(keccak(job_id + record.seq.to_bytes(32, "big") + record_hash)))
    assert record.leaf() == leaf
    assert record.hashes() == (reference, record_hash, leaf)
    row = to_outbox(record)
    # Built without re-validation, yet exactly what validation would produce.
    assert NewStepRecord.model_validate(row.model_dump()) == row
    assert (row.record_json.encode(), row.record_hash, row.leaf) == (
        reference,
        "0x" + record_hash.hex(),
        "0x" + leaf.hex(),
    )


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_c_keccak_is_ethereum_keccak(data: bytes) -> None:
    assert keccak256(data) == bytes(keccak(data))


def test_keccak_is_not_nist_sha3() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


# -- the store's bulk paths, on SQLite and PostgreSQL -------------------------------------------------
def h(n: int) -> str:
    return "0x" + f"{n:064x}"


def outbox(job: int, seq: int) -> NewStepRecord:
    record_hash = h(10_000_000 + seq)
    return NewStepRecord(
        job_id=h(job),
        seq=seq,
        record_json=f'{{"seq":{seq}}}',
        record_hash=record_hash,
        leaf="0x" + leaf_hash(bytes.fromhex(h(job)[2:]), seq, bytes.fromhex(record_hash[2:])).hex(),
    )


def create_job(store: SqlLedgerStore, n: int) -> None:
    store.create_job(NewJob(job_id=h(n), manifest_hash=h(99), creator=ALICE, parties=[ALICE]))


def test_bulk_accept_rows_are_what_is_stored(store: SqlLedgerStore) -> None:
    create_job(store, 1)
    create_job(store, 2)
    sent = [outbox(2, 1), outbox(1, 0), outbox(1, 1), outbox(2, 0)]  # two jobs, any order
    rows = store.accept_records(sent)
    assert [(r.job_id, r.seq) for r in rows] == [(r.job_id, r.seq) for r in sent]
    assert rows == [store.get_record(r.job_id, r.seq) for r in sent]
    assert all(r.accepted_at.tzinfo == timezone.utc and r.status == "pending" for r in rows)
    assert {job.status for job in store.list_jobs()} == {"running"}
    with pytest.raises(UnknownJobError, match=h(3)):
        store.accept_records([outbox(1, 2), outbox(3, 0)])
    assert store.get_record(h(1), 2) is None  # all or nothing


def test_bulk_accept_keeps_any_json_text_exactly(store: SqlLedgerStore) -> None:
    create_job(store, 1)
    text = json.dumps({"s": 'é ✓ 😀 \u2028 " \\ \n \t /'}, ensure_ascii=False)
    sent = outbox(1, 0).model_copy(update={"record_json": text})
    (row,) = store.accept_records([sent])
    assert row.record_json == text
    stored = store.get_record(h(1), 0)
    assert stored is not None and stored.record_json == text
    with pytest.raises(ValueError, match="64-bit"):
        store.accept_records([outbox(1, 2**63)])


def test_thousands_of_records_move_with_one_statement_each(store: SqlLedgerStore) -> None:
    create_job(store, 1)
    count = 6_001  # more than the 5,000 ids an IN list used to take
    accepted = store.accept_records([outbox(1, seq) for seq in range(count)])
    assert store.count_pending(10_000) == count
    assert store.count_pending(100) == 100
    pending = store.pending_leaves(10_000)
    assert [(p.id, p.leaf, p.accepted_at) for p in pending] == [
        (r.id, r.leaf, r.accepted_at) for r in accepted
    ]
    ids = [p.id for p in pending]
    tree = MerkleTree(bytes.fromhex(p.leaf[2:]) for p in pending)
    root = "0x" + tree.root.hex()

    # One id that is not pending (here: unknown) refuses the whole batch.
    with pytest.raises(InvalidStateError, match="999999999"):
        store.create_batch(h(500), root, [*ids, 999_999_999])
    assert store.count_pending(10_000) == count and store.get_batch(h(500)) is None

    batch = store.create_batch(h(500), root, ids)
    assert batch.record_count == count and store.count_pending(10_000) == 0
    assert store.pending_leaves(10) == []
    store.mark_batch_submitted(h(500), h(501), ALICE, 0)
    store.mark_batch_confirmed(h(500), 7, h(502))
    assert store.count_records_by_status()["confirmed"] == count
    assert [r.id for r in store.records_for_batch(h(500))] == ids


# -- the anchorer ----------------------------------------------------------------------------------
def test_a_deep_enough_receipt_confirms_in_the_same_pass(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 41)
    accepted = accept(store, job, 30)
    anchorer = make_anchorer(ledger_stack, store, max_batch_size=30)
    first = anchorer.run_once()
    assert (first.batches_sent, first.batches_confirmed) == (1, 0)
    (batch,) = store.batches_in_flight()
    # anvil's automine can answer the send before the block exists: wait for the block.
    anchorer.client.w3.eth.wait_for_transaction_receipt(batch.tx_hash, timeout=10)  # type: ignore[arg-type]
    second = anchorer.run_once()  # finds the receipt; 1 confirmation is enough: confirmed in this pass
    assert (second.batches_mined, second.batches_confirmed, second.records_confirmed) == (1, 1, 30)
    assert store.count_records_by_status()["confirmed"] == 30
    assert_anchored_exactly_once(ledger_stack, store, accepted)
