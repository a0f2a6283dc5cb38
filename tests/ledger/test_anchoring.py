"""The anchoring pipeline on a real anvil and a real database (SQLite and PostgreSQL).

Every test ends with the same invariant a user relies on, checked from the
chain's side (``assert_anchored_exactly_once``: the ledger audit of
``tests/chain_audit.py`` over every ``BatchAnchored`` event since block 0):
every accepted record's leaf is anchored exactly once across all on-chain
batches, no on-chain batch holds anything else, the on-chain record counts add
up to the accepted records, and the store agrees (each record ``confirmed`` in
the batch the chain anchors it in). The last test shows the audit catching a
deliberately broken worker that re-anchors after a crash. The anchoring
service also records models and closes finished jobs (with the proof of their
last record); what the contract refuses is failed with its reason, once.
"""

from __future__ import annotations

import logging
import time

import pytest
from eth_utils.crypto import keccak
from rpc_proxy import RpcProxy
from sqlalchemy import text
from stack import (
    LedgerStack,
    accept,
    assert_anchored_exactly_once,
    make_anchorer,
    new_job,
    open_job_on_chain,
    run_until_settled,
    step,
)

from secureflow.ledger.anchoring import Anchorer, AnchoringWorker, batch_id_for
from secureflow.ledger.chain import ChainClient, ChainConfig, SignedTransaction
from secureflow.ledger.contracts import AuditLedgerClient, JobStatus, hex32
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain, rpc_call
from secureflow.ledger.errors import StoreConflictError
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.merkle import MerkleTree, leaf_hash
from secureflow.ledger.recorder import OutboxRecorder, to_outbox
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.schemas import Batch


def test_records_are_batched_anchored_and_confirmed(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 1)
    accepted = accept(store, job, 250)
    anchorer = make_anchorer(ledger_stack, store, max_batch_size=100)
    run_until_settled(anchorer)
    assert_anchored_exactly_once(ledger_stack, store, accepted)
    batches = {r.batch_id for r in store.records_for_job(job)}
    assert len(batches) == 3  # 100 + 100 + 50


def test_batch_waits_for_more_records_until_the_delay(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 2)
    accepted = accept(store, job, 3)
    anchorer = make_anchorer(ledger_stack, store, max_batch_size=100, max_batch_delay=3600)
    assert anchorer.run_once().batches_sent == 0
    assert store.count_records_by_status()["pending"] == 3
    accepted += accept(store, job, 97, start=3)
    assert anchorer.run_once().batches_sent == 1  # full batch goes at once
    run_until_settled(anchorer)
    assert_anchored_exactly_once(ledger_stack, store, accepted)


def test_confirmations_wait_for_blocks_on_top(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 3)
    accepted = accept(store, job, 5)
    anchorer = make_anchorer(ledger_stack, store, confirmations=3)
    anchorer.run_once()  # sent and (automine) mined
    anchorer.run_once()
    assert store.count_records_by_status()["submitted"] == 5
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x2"])
    anchorer.run_once()
    assert store.count_records_by_status()["confirmed"] == 5
    assert_anchored_exactly_once(ledger_stack, store, accepted)


def test_chain_outage_loses_nothing_and_anchors_once(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    # The proxy stands in for the network to the node: switching it off is the outage.
    with RpcProxy(devchain.rpc_url) as proxy:
        client = ledger_stack.client(receipt_timeout=5)
        anchorer = make_anchorer(
            ledger_stack,
            store,
            client=ChainClient(
                ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, request_timeout=2)
            ),
        )
        worker = AnchoringWorker(anchorer, max_backoff=0.2).start()
        try:
            job = new_job(store, 4)
            accepted = accept(store, job, 40)
            assert worker.drain(30)
            proxy.down = True
            accepted += accept(store, job, 60, start=40)  # accepted while the chain is unreachable
            deadline = time.monotonic() + 10
            while worker.last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert worker.last_error is not None and "NodeUnreachableError" in worker.last_error
            assert store.count_records_by_status()["confirmed"] == 40
            proxy.down = False
            assert worker.drain(30), store.count_records_by_status()
        finally:
            worker.stop()
        assert client.block_number() > 0
        assert_anchored_exactly_once(ledger_stack, store, accepted)


def _half_done_batch(anchorer: Anchorer) -> tuple[Batch, SignedTransaction]:
    """What a crashed worker left: every pending record in a stored batch, and its signed anchor tx."""
    pending = anchorer.store.claim_pending(100)
    tree = MerkleTree(bytes.fromhex(r.leaf[2:]) for r in pending)
    batch_id = batch_id_for(tree.root)
    batch = anchorer.store.create_batch(hex32(batch_id), hex32(tree.root), [r.id for r in pending])
    call = anchorer.ledger.contract.functions.anchorBatch(batch_id, tree.root, len(pending))
    return batch, anchorer.sender.prepare(call)


def test_crash_after_write_ahead_before_broadcast(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """The process died after storing the signed tx's hash but before sending it."""
    job = new_job(store, 5)
    accepted = accept(store, job, 10)
    crashed = make_anchorer(ledger_stack, store)
    batch, signed = _half_done_batch(crashed)
    store.mark_batch_submitted(batch.batch_id, signed.tx_hash, crashed.sender.address, signed.nonce)
    # ... crash: never broadcast. A new process starts:
    restarted = make_anchorer(ledger_stack, store)
    restarted.recover()
    run_until_settled(restarted)
    assert_anchored_exactly_once(ledger_stack, store, accepted)


def test_crash_after_broadcast_before_bookkeeping(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """The anchor reached the chain but the process died before recording it: it is adopted, not repeated."""
    job = new_job(store, 6)
    accepted = accept(store, job, 10)
    crashed = make_anchorer(ledger_stack, store)
    _batch, signed = _half_done_batch(crashed)
    crashed.sender.broadcast(signed)
    restarted = make_anchorer(ledger_stack, store)
    restarted.recover()
    run_until_settled(restarted)
    assert_anchored_exactly_once(ledger_stack, store, accepted)


def test_transaction_dropped_from_the_pool_is_resent(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 7)
    accepted = accept(store, job, 10)
    anchorer = make_anchorer(ledger_stack, store)
    rpc_call(devchain.rpc_url, "evm_setAutomine", [False])
    try:
        anchorer.run_once()
        (batch,) = store.batches_in_flight()
        assert batch.status == "submitted" and batch.tx_hash is not None
        assert rpc_call(devchain.rpc_url, "anvil_dropTransaction", [batch.tx_hash]) == batch.tx_hash
        report = anchorer.run_once()
        assert report.batches_requeued == 1
    finally:
        rpc_call(devchain.rpc_url, "evm_setAutomine", [True])
    run_until_settled(anchorer)
    assert_anchored_exactly_once(ledger_stack, store, accepted)


def test_reorg_sends_records_back_and_reanchors_them(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 8)
    accepted = accept(store, job, 20)
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x5"])  # blocks of our own below the anchor, to reorg above
    anchorer = make_anchorer(ledger_stack, store)
    client = anchorer.client
    indexer = EventIndexer(
        store,
        client,
        anchorer.ledger.contract,
        from_block=ledger_stack.deployment.deploy_block,
        name=f"test-{job}",
    )
    run_until_settled(anchorer, indexer)
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x3"])
    indexer.poll()
    (first,) = {r.batch_id for r in store.records_for_job(job)}
    assert first is not None
    anchored_block = store.get_batch(first).block_number  # type: ignore[union-attr]
    assert len(store.events(name="BatchAnchored", batch_id=first)) == 1

    # Replace the last 4 blocks (the anchor's and the 3 on top of it) with empty ones.
    head = client.block_number()
    assert head - anchored_block + 1 == 4
    rpc_call(devchain.rpc_url, "anvil_reorg", [4, []])
    # Some nodes put the reorged-out transaction back in the pool: drop it, as a node that did not would.
    batch_tx = store.get_batch(first).tx_hash  # type: ignore[union-attr]
    rpc_call(devchain.rpc_url, "anvil_dropTransaction", [batch_tx])
    assert not AuditLedgerClient(anchorer.ledger.contract).is_anchored_root(
        bytes.fromhex(store.get_batch(first).root[2:])  # type: ignore[union-attr]
    )
    # The chain's own view: the reorged-out anchor is not on the canonical chain, so nothing is anchored.
    with pytest.raises(AssertionError, match=r"accepted record never anchored \(20\)"):
        assert_anchored_exactly_once(ledger_stack, store, accepted)

    report = indexer.poll()
    assert report.reorg_fork_block is not None and report.reorg_fork_block < anchored_block
    assert report.requeued_batches == [first]
    assert store.count_records_by_status()["pending"] == 20
    assert store.events(name="BatchAnchored", batch_id=first) == []

    run_until_settled(anchorer, indexer)
    assert_anchored_exactly_once(ledger_stack, store, accepted)
    assert {r.batch_id for r in store.records_for_job(job)} == {first}  # same batch, same root, re-anchored
    indexer.poll()
    assert len(store.events(name="BatchAnchored", batch_id=first)) == 1


def test_models_are_recorded_on_chain_exactly_once(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 31)
    open_job_on_chain(ledger_stack, job, 31)
    recorder = OutboxRecorder(store)
    model_hash = "0x" + "5a" * 32
    recorder.record_model(job, "credit_lr-abc-3", 1, model_hash)
    recorder.record_model(job, "credit_lr-abc-3", 1, model_hash)  # idempotent
    with pytest.raises(StoreConflictError, match="new version"):
        recorder.record_model(job, "credit_lr-abc-3", 1, "0x" + "5b" * 32)
    anchorer = make_anchorer(ledger_stack, store)
    report = anchorer.run_once()
    assert report.models_sent == 1
    (sent,) = store.models(job_id=job)
    # anvil's automine can answer the send before the block exists: wait for it, as a later pass would.
    anchorer.client.w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=10)  # type: ignore[arg-type]
    anchorer.run_once()
    (model,) = store.models(job_id=job)
    assert model.status == "confirmed" and model.block_number is not None
    on_chain = anchorer.ledger.contract.functions.modelHash(
        bytes.fromhex(job[2:]), keccak(text="credit_lr-abc-3"), 1
    ).call()
    assert "0x" + bytes(on_chain).hex() == model_hash

    # A crash after the anchor but before the bookkeeping: the model is adopted, not sent again.
    store.mark_model(model.model_id, 1, "pending", tx_hash=None, block=None)
    report = anchorer.run_once()
    assert (report.models_sent, report.models_confirmed) == (0, 1)
    assert_anchored_exactly_once(ledger_stack, store, [])  # no step record accepted, none anchored


def test_reorg_sends_a_recorded_model_back_and_records_it_again(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 33)
    open_job_on_chain(ledger_stack, job, 33)
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x5"])  # blocks of our own below the model, to reorg above
    model_hash = "0x" + "6c" * 32
    OutboxRecorder(store).record_model(job, "reorged-model", 1, model_hash)
    anchorer = make_anchorer(ledger_stack, store)
    indexer = EventIndexer(
        store,
        anchorer.client,
        anchorer.ledger.contract,
        from_block=ledger_stack.deployment.deploy_block,
        name=f"test-{job}",
    )
    anchorer.run_once()
    (sent,) = store.models(job_id=job)
    anchorer.client.w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=10)  # type: ignore[arg-type]
    anchorer.run_once()
    indexer.poll()
    (model,) = store.models(job_id=job)
    assert model.status == "confirmed" and model.block_number is not None
    model_key = keccak(text="reorged-model")
    functions = anchorer.ledger.contract.functions

    # Replace the model's block and the 2 on top of it with empty ones; the tx does not come back.
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x2"])
    assert anchorer.client.block_number() - model.block_number + 1 == 3
    rpc_call(devchain.rpc_url, "anvil_reorg", [3, []])
    rpc_call(devchain.rpc_url, "anvil_dropTransaction", [model.tx_hash])
    assert bytes(functions.modelHash(bytes.fromhex(job[2:]), model_key, 1).call()) == b"\0" * 32

    report = indexer.poll()
    assert report.reorg_fork_block is not None and report.reorg_fork_block < model.block_number
    assert report.requeued_models == ["reorged-model v1"]
    assert store.models(job_id=job)[0].status == "pending"

    assert anchorer.run_once().models_sent == 1
    (resent,) = store.models(job_id=job)
    anchorer.client.w3.eth.wait_for_transaction_receipt(resent.tx_hash, timeout=10)  # type: ignore[arg-type]
    anchorer.run_once()
    (final,) = store.models(job_id=job)
    assert final.status == "confirmed"
    assert "0x" + bytes(functions.modelHash(bytes.fromhex(job[2:]), model_key, 1).call()).hex() == model_hash
    assert (
        functions.latestModelVersion(bytes.fromhex(job[2:]), model_key).call() == 1
    )  # recorded once on the canonical chain
    assert_anchored_exactly_once(ledger_stack, store, [])


def test_model_of_a_job_not_on_chain_waits(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 32)  # never created on chain
    OutboxRecorder(store).record_model(job, "m", 1, "0x" + "77" * 32)
    anchorer = make_anchorer(ledger_stack, store)
    assert anchorer.run_once().models_sent == 0
    assert store.models(job_id=job)[0].status == "pending"
    assert_anchored_exactly_once(ledger_stack, store, [])


# -- the audit shown failing -------------------------------------------------------------------------
class ReanchoringAfterCrashAnchorer(Anchorer):
    """BROKEN ON PURPOSE (a test fixture, not a code path of the worker): after a crash it takes every
    batch in flight for lost and releases its records to be batched again, without asking the chain
    whether the anchor landed. Records accepted meanwhile join them, so the same leaves are anchored a
    second time under a different root, hence a different batch id, which the contract accepts."""

    def recover(self) -> None:
        super().recover()
        for batch in self.store.batches_in_flight():
            self.store.mark_batch_failed(batch.batch_id, "assumed lost in the crash (broken worker)")


def test_the_audit_catches_a_worker_that_re_anchors_after_a_crash(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 40)
    accepted = accept(store, job, 10)
    crashed = make_anchorer(ledger_stack, store)
    _batch, signed = _half_done_batch(crashed)
    crashed.sender.broadcast(signed)  # the anchor of records 0..9 lands; the process dies before bookkeeping
    crashed.client.w3.eth.wait_for_transaction_receipt(signed.tx_hash, timeout=10)  # type: ignore[arg-type]
    accepted += accept(store, job, 5, start=10)  # accepted while the worker was down
    base = make_anchorer(ledger_stack, store)
    broken = ReanchoringAfterCrashAnchorer(base.store, base.ledger, base.sender, base.config)
    broken.recover()
    run_until_settled(broken)

    # The store's side looks healthy: every record confirmed, in a batch anchored on chain with its root
    # and record count, the counts adding up (what the helper before the audit checked, and passed).
    records = store.records_for_job(job)
    assert {r.status for r in records} == {"confirmed"} and len(records) == 15
    (batch_id,) = {r.batch_id for r in records}
    assert batch_id is not None
    on_chain = ledger_stack.ledger(ledger_stack.client()).get_batch(bytes.fromhex(batch_id[2:]))
    assert on_chain.record_count == 15 and on_chain.root == store.get_batch(batch_id).root  # type: ignore[union-attr]

    # The chain's side: records 0..9 are anchored twice (25 records on chain for 15 accepted).
    with pytest.raises(AssertionError) as caught:
        assert_anchored_exactly_once(ledger_stack, store, accepted)
    message = str(caught.value)
    assert "accepted record anchored more than once (10)" in message
    assert "seq 0: anchored 2 times" in message and "seq 10:" not in message
    assert "sum of on-chain recordCount differs from the accepted records" in message
    assert "25 on chain in 2 batches, 15 accepted" in message


# -- models the contract refuses, and job closes ------------------------------------------------------


def settle_closes(anchorer: Anchorer, passes: int = 200) -> None:
    """Run passes until no record, model or close is pending or in flight (waiting for each sent tx)."""
    w3 = anchorer.client.w3
    for _ in range(passes):
        anchorer.run_once()
        store = anchorer.store
        in_flight = [m.tx_hash for m in store.models(status="submitted")]
        in_flight += [j.close_tx_hash for j in store.jobs_to_close("submitted")]
        for tx_hash in in_flight:
            w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)  # type: ignore[arg-type]
        counts = store.count_records_by_status()
        waiting = store.models(status="pending") + store.models(status="submitted")
        closing = store.jobs_to_close("pending") + store.jobs_to_close("submitted")
        if counts["pending"] == counts["submitted"] == 0 and not waiting and not closing:
            return
    raise AssertionError("the anchoring service did not settle")


def test_a_model_the_contract_refuses_is_failed_once_with_its_reason(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None, caplog: pytest.LogCaptureFixture
) -> None:
    proposed = new_job(store, 41)
    open_job_on_chain(ledger_stack, proposed, 41, consenting=1)  # bob never consented
    opened = new_job(store, 42)
    open_job_on_chain(ledger_stack, opened, 42)
    recorder = OutboxRecorder(store)
    recorder.record_model(proposed, "credit_lr", 1, "0x" + "66" * 32)
    recorder.record_model(opened, "skipped-v1", 2, "0x" + "67" * 32)  # version 1 was never recorded
    anchorer = make_anchorer(ledger_stack, store)
    with caplog.at_level(logging.WARNING, logger="secureflow.ledger.anchoring"):
        report = anchorer.run_once()
        for _ in range(3):  # never retried: no transaction, no new warning
            assert anchorer.run_once().models_sent == 0
    assert (report.models_sent, report.models_failed) == (0, 2)
    by_job = {m.job_id: m for m in store.models()}
    assert by_job[proposed].status == "failed"
    assert "JobNotOpen" in (by_job[proposed].failure_reason or "")
    assert "Proposed: 1 party consent missing" in (by_job[proposed].failure_reason or "")
    assert by_job[opened].status == "failed" and "NonSequentialVersion" in (
        by_job[opened].failure_reason or ""
    )
    refusals = [r for r in caplog.records if "refused by the ledger" in r.getMessage()]
    assert len(refusals) == 2, [r.getMessage() for r in caplog.records]
    functions = anchorer.ledger.contract.functions
    assert functions.latestModelVersion(bytes.fromhex(proposed[2:]), keccak(text="credit_lr")).call() == 0


def test_a_finished_job_is_closed_by_the_anchoring_service_with_its_last_record_proven(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 43)
    open_job_on_chain(ledger_stack, job, 43)
    store.update_job(job, chain_status="confirmed")
    recorder = OutboxRecorder(store)
    accept(store, job, 5)
    recorder.record_model(job, "credit_lr", 1, "0x" + "5a" * 32)
    anchorer = make_anchorer(ledger_stack, store)
    assert anchorer.run_once().closes_sent == 0  # still running: nothing to close
    recorder.close_job(job, succeeded=True)
    assert store.get_job(job).close_status == "pending"  # type: ignore[union-attr]
    settle_closes(anchorer)

    stored = store.get_job(job)
    assert stored is not None and stored.close_status == "confirmed" and stored.close_block is not None
    ledger = anchorer.ledger
    on_chain = ledger.get_job(bytes.fromhex(job[2:]))
    last = store.get_record(job, 4)
    assert last is not None and last.batch_id is not None
    batch = store.get_batch(last.batch_id)
    assert batch is not None
    assert (on_chain.status, on_chain.step_count, on_chain.final_root) == (JobStatus.CLOSED, 5, batch.root)
    (event,) = ledger.contract.events.JobClosed().get_logs(
        from_block=stored.close_block, argument_filters={"jobId": bytes.fromhex(job[2:])}
    )
    assert hex32(event["args"]["finalRecordHash"]) == last.record_hash
    assert event["args"]["closedBy"] == anchorer.sender.address
    (model,) = store.models(job_id=job)
    assert model.status == "confirmed" and model.block_number is not None
    assert model.block_number <= stored.close_block  # the model was recorded while the job was open

    # A crash before the close was booked: the close on chain is adopted, not sent again.
    store.mark_job_close(job, "pending")
    report = anchorer.run_once()
    assert (report.closes_sent, report.closes_confirmed) == (0, 1)
    adopted = store.get_job(job)
    assert adopted is not None and (adopted.close_status, adopted.close_block) == (
        "confirmed",
        stored.close_block,
    )


def test_a_failed_job_without_steps_is_closed_as_failed(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    job = new_job(store, 44)
    open_job_on_chain(ledger_stack, job, 44)
    store.update_job(job, chain_status="confirmed")
    OutboxRecorder(store).close_job(job, succeeded=False)
    anchorer = make_anchorer(ledger_stack, store)
    settle_closes(anchorer)
    on_chain = anchorer.ledger.get_job(bytes.fromhex(job[2:]))
    assert (on_chain.status, on_chain.step_count, on_chain.final_root) == (
        JobStatus.FAILED,
        0,
        "0x" + "00" * 32,
    )


def test_a_job_created_on_chain_after_its_sender_gave_up_is_still_closed(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """``createJob`` was broadcast, then its sender timed out waiting for the receipt and failed the job,
    which the store therefore holds as never created on chain; the transaction was mined anyway. The
    indexer's ``JobCreated`` event records the job as on chain, and the anchoring service closes it (as
    failed, with no steps) instead of leaving it Open on chain for ever."""
    job = new_job(store, 46)
    open_job_on_chain(ledger_stack, job, 46)  # mined; the store was never told (chain status pending)
    OutboxRecorder(store).close_job(job, succeeded=False)
    assert store.get_job(job).chain_status == "pending"  # type: ignore[union-attr]
    anchorer = make_anchorer(ledger_stack, store)
    indexer = EventIndexer(
        store, anchorer.client, anchorer.ledger.contract, from_block=ledger_stack.deployment.deploy_block
    )
    indexer.catch_up()
    stored = store.get_job(job)
    assert stored is not None and stored.chain_status == "confirmed" and stored.created_tx_hash is not None
    settle_closes(anchorer)
    on_chain = anchorer.ledger.get_job(bytes.fromhex(job[2:]))
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, 0)
    assert store.get_job(job).close_status == "confirmed"  # type: ignore[union-attr]


def test_a_close_the_contract_refuses_is_failed_once_with_its_reason(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None, caplog: pytest.LogCaptureFixture
) -> None:
    job = new_job(store, 45)
    open_job_on_chain(ledger_stack, job, 45, consenting=1)  # Proposed: bob never consented
    store.update_job(job, chain_status="confirmed")
    accept(store, job, 2)
    OutboxRecorder(store).close_job(job, succeeded=True)
    anchorer = make_anchorer(ledger_stack, store)
    with caplog.at_level(logging.WARNING, logger="secureflow.ledger.anchoring"):
        settle_closes(anchorer)
        for _ in range(3):
            assert anchorer.run_once().closes_sent == 0
    stored = store.get_job(job)
    assert stored is not None and stored.close_status == "failed"
    assert "JobNotOpen" in (stored.close_reason or "") and "Proposed" in (stored.close_reason or "")
    assert len([r for r in caplog.records if "not closed on chain" in r.getMessage()]) == 1
    assert anchorer.ledger.get_job(bytes.fromhex(job[2:])).status == JobStatus.PROPOSED


def test_a_job_closed_on_chain_by_another_close_is_not_adopted(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """The chain holds another close (another step count or root): the store says so, it does not adopt it."""
    job = new_job(store, 46)
    open_job_on_chain(ledger_stack, job, 46)
    store.update_job(job, chain_status="confirmed")
    accept(store, job, 3)
    anchorer = make_anchorer(ledger_stack, store)
    run_until_settled(anchorer)
    # the anchoring key closes it first with only 2 steps (seq 1 proven), e.g. an operator by hand
    row = store.get_record(job, 1)
    assert row is not None and row.batch_id is not None
    leaves = [bytes.fromhex(leaf[2:]) for leaf in store.batch_leaves(row.batch_id)]
    tree = MerkleTree(leaves)
    anchorer.ledger.close_job(
        bytes.fromhex(job[2:]),
        step_count=2,
        final_record_hash=bytes.fromhex(row.record_hash[2:]),
        final_root=tree.root,
        proof=tree.proof(leaf_hash(bytes.fromhex(job[2:]), 1, bytes.fromhex(row.record_hash[2:]))),
    )
    OutboxRecorder(store).close_job(job, succeeded=True)
    settle_closes(anchorer)
    stored = store.get_job(job)
    assert stored is not None and stored.close_status == "failed"
    assert "with 2 steps" in (stored.close_reason or "") and "not 3 steps" in (stored.close_reason or "")


def test_reorg_sends_a_close_back_and_closes_again(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 47)
    open_job_on_chain(ledger_stack, job, 47)
    store.update_job(job, chain_status="confirmed")
    accept(store, job, 3)
    OutboxRecorder(store).close_job(job, succeeded=True)
    anchorer = make_anchorer(ledger_stack, store)
    indexer = EventIndexer(
        store,
        anchorer.client,
        anchorer.ledger.contract,
        from_block=ledger_stack.deployment.deploy_block,
        name=job,
    )
    settle_closes(anchorer)
    indexer.poll()
    closed = store.get_job(job)
    assert closed is not None and closed.close_status == "confirmed" and closed.close_block is not None
    ledger = anchorer.ledger
    assert ledger.get_job(bytes.fromhex(job[2:])).status == JobStatus.CLOSED

    # Replace the close's block and the 2 on top of it with empty ones; the close does not come back.
    rpc_call(devchain.rpc_url, "anvil_mine", ["0x2"])
    assert anchorer.client.block_number() - closed.close_block + 1 == 3
    rpc_call(devchain.rpc_url, "anvil_reorg", [3, []])
    rpc_call(devchain.rpc_url, "anvil_dropTransaction", [closed.close_tx_hash])
    assert ledger.get_job(bytes.fromhex(job[2:])).status == JobStatus.OPEN

    report = indexer.poll()
    assert report.reorg_fork_block is not None and report.reorg_fork_block < closed.close_block
    assert report.requeued_closes == [job]
    assert store.get_job(job).close_status == "pending"  # type: ignore[union-attr]
    settle_closes(anchorer)
    again = store.get_job(job)  # re-sent (same nonce and calldata, so even the same tx hash) and mined again
    assert again is not None and again.close_status == "confirmed" and again.close_block is not None
    receipt = anchorer.client.w3.eth.get_transaction_receipt(again.close_tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1 and receipt["blockNumber"] == again.close_block
    on_chain = ledger.get_job(bytes.fromhex(job[2:]))
    assert (on_chain.status, on_chain.step_count) == (JobStatus.CLOSED, 3)


# -- poison records: quarantined, never blocking the others -------------------------------------------


def _corrupt_leaf(store: SqlLedgerStore, job_id: str, seq: int, leaf: str) -> None:
    """Alter one stored row behind the store's back (a bad migration, a manual fix, a disk fault)."""
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE step_records SET leaf = :leaf WHERE job_id = :job AND seq = :seq"),
            {"leaf": leaf, "job": job_id, "seq": seq},
        )


def test_a_poison_record_is_quarantined_and_every_other_record_keeps_flowing(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """One row whose leaf is not its record's, one whose leaf is not even hex, among 90 good records of
    three jobs: the worker keeps running, anchors every good record exactly once, quarantines the two
    (counted by the metric), and closes the finished job with the poison on chain as failed."""
    jobs = [new_job(store, 60 + i) for i in range(3)]
    closing = jobs[0]
    open_job_on_chain(ledger_stack, closing, 60)
    store.update_job(closing, chain_status="confirmed")
    accepted = [record for job in jobs for record in accept(store, job, 30)]
    poison = {(jobs[0], 7): "0x" + "ab" * 32, (jobs[1], 3): "0x" + "not-a-leaf".ljust(64, "z")}
    for (job, seq), leaf in poison.items():
        _corrupt_leaf(store, job, seq, leaf)
    good = [r for r in accepted if (r.job_id, r.seq) not in poison]
    OutboxRecorder(store).close_job(closing, succeeded=True)
    anchorer = make_anchorer(ledger_stack, store, max_batch_size=16)
    anchorer.metrics.watch(store, nonces=anchorer.sender.nonces, checkpoint="poison")
    worker = AnchoringWorker(anchorer, max_backoff=0.2).start()
    try:
        assert worker.drain(60), store.count_records_by_status()
        assert worker.last_error is None
        assert worker._thread is not None and worker._thread.is_alive()
    finally:
        worker.stop()

    assert_anchored_exactly_once(ledger_stack, store, good, quarantined=list(poison))
    reasons = {key: store.get_record(*key).failure_reason for key in poison}  # type: ignore[union-attr]
    assert reasons[(jobs[0], 7)] == (
        "quarantined: the stored leaf is not leaf_hash(job_id, seq, record_hash) of its record"
    )
    assert reasons[(jobs[1], 3)] == "quarantined: the stored leaf is not 0x and 32 bytes of hex"
    registry = anchorer.metrics.registry
    events = "secureflow_anchoring_events_total"
    assert registry.get_sample_value(events, {"object": "records", "event": "quarantined"}) == 2
    assert registry.get_sample_value("secureflow_anchoring_records", {"status": "failed"}) == 2

    # The finished job is closed on chain as failed, with the steps before the poison proven.
    stored = store.get_job(closing)
    assert stored is not None and stored.close_status == "confirmed"
    assert stored.close_reason is not None and "step 7: quarantined: " in stored.close_reason
    on_chain = anchorer.ledger.get_job(bytes.fromhex(closing[2:]))
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, 7)


ANCHOR_BATCH = keccak(text="anchorBatch(bytes32,bytes32,uint32)")[:4]
INVALID_BATCH = "0x" + keccak(text="InvalidBatch()")[:4].hex()


def test_a_batch_the_contract_refuses_is_bisected_until_the_refused_record_is_alone(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    """The node answers the estimate of any batch holding one record with the contract's ``InvalidBatch``
    (the proxy plays a ledger that refuses that record's content): the batch is dissolved, the next ones
    are formed at half its size until the record is alone, which is quarantined with the decoded reason;
    the batch size returns to normal and every other record is anchored exactly once."""
    jobs = [new_job(store, 70 + i) for i in range(3)]
    accepted = [record for seq in range(14) for record in (step(job, seq) for job in jobs)]
    store.accept_records([to_outbox(record) for record in accepted])  # interleaved: 42 records
    refused_record = accepted[5]
    refused_id = store.get_record(refused_record.job_id, refused_record.seq).id  # type: ignore[union-attr]
    refused_sizes: list[int] = []

    def refuse(request: dict[str, object]) -> object | None:
        params = request.get("params")
        if request.get("method") != "eth_estimateGas" or not isinstance(params, list):
            return None
        data = bytes.fromhex(str(params[0].get("data") or params[0].get("input") or "0x")[2:])
        if data[:4] != ANCHOR_BATCH:
            return None
        batch_id = "0x" + data[4:36].hex()
        if refused_id not in {row.id for row in store.records_for_batch(batch_id)}:
            return None
        refused_sizes.append(int.from_bytes(data[68:100], "big"))
        error = {"code": 3, "message": "execution reverted", "data": INVALID_BATCH}
        return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}

    with RpcProxy(devchain.rpc_url, intercept=refuse) as proxy:
        client = ChainClient(
            ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, receipt_timeout=10)
        )
        anchorer = make_anchorer(ledger_stack, store, client=client, max_batch_size=16)
        run_until_settled(anchorer)

    assert refused_sizes == [16, 8, 4, 2, 1]  # accepted[5]: in 0..15, 0..7, 4..7, 4..5, then alone
    key = (refused_record.job_id, refused_record.seq)
    assert_anchored_exactly_once(
        ledger_stack, store, [r for r in accepted if r is not refused_record], quarantined=[key]
    )
    reason = store.get_record(*key).failure_reason  # type: ignore[union-attr]
    assert reason == "quarantined: the contract refused it alone: anchorBatch reverted: InvalidBatch()"
    sizes = sorted(
        store.get_batch(batch_id).record_count  # type: ignore[union-attr]
        for batch_id in {r.batch_id for job in jobs for r in store.records_for_job(job) if r.batch_id}
    )
    assert sizes == [1, 4, 4, 16, 16]  # 0..3, 4, then back to full batches: 6..21, 22..37, 38..41
    registry = anchorer.metrics.registry
    events = "secureflow_anchoring_events_total"
    assert registry.get_sample_value(events, {"object": "batches", "event": "refused"}) == 5
    assert registry.get_sample_value(events, {"object": "records", "event": "quarantined"}) == 1


def test_a_built_batch_the_contract_refuses_alone_is_quarantined_with_its_reason(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """A batch stored before the leaf check existed (an older worker) holds one record whose leaf is zero:
    the real contract refuses its zero root (``InvalidBatch``); the record is quarantined with that reason
    and the worker goes on with the others instead of pausing for ever."""
    job = new_job(store, 80)
    accepted = accept(store, job, 12)
    _corrupt_leaf(store, job, 0, "0x" + "00" * 32)
    row = store.get_record(job, 0)
    assert row is not None
    zero = bytes(32)
    store.create_batch(hex32(batch_id_for(zero)), hex32(zero), [row.id])  # what the older worker left
    anchorer = make_anchorer(ledger_stack, store, max_batch_size=5)
    run_until_settled(anchorer)
    assert_anchored_exactly_once(ledger_stack, store, accepted[1:], quarantined=[(job, 0)])
    reason = store.get_record(job, 0).failure_reason  # type: ignore[union-attr]
    assert reason == "quarantined: the contract refused it alone: anchorBatch reverted: InvalidBatch()"
