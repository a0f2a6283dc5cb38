"""Issue #12 item 3: the API's watchdog fails a running job whose step records stay unanchored past
``unanchored_fail_after``, with a reason that names the seq and what to check; when anchoring resumes, every
record is anchored once and the job closes on chain as failed with the steps it proved (real anvil, real
anchoring worker; the outage is the test RPC proxy switched off, a stand-in for the network to the node)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rpc_proxy import RpcProxy
from scrape import wait_for
from stack import LedgerStack, accept, assert_anchored_exactly_once, make_anchorer, new_job, open_job_on_chain

from secureflow.api.server.db import ApiDb
from secureflow.api.server.watchdog import LeaseWatchdog
from secureflow.ledger.anchoring import AnchoringWorker
from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.contracts import JobStatus
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain, rpc_call
from secureflow.ledger.errors import InvalidStateError
from secureflow.ledger.store import SqlLedgerStore


def _watchdog(store: SqlLedgerStore, fail_after: float) -> LeaseWatchdog:
    db = ApiDb(store.engine)
    db.migrate()
    return LeaseWatchdog(db, store, unanchored_fail_after=fail_after)


def test_only_a_running_job_with_a_record_waiting_past_the_bound_is_failed(store: SqlLedgerStore) -> None:
    """A record younger than the bound, a job that already completed (its compute is over: only flagged,
    see the watchdog's docstring) and a bound of 0 (disabled) fail nothing."""
    running, completed = new_job(store, 71), new_job(store, 72)
    accept(store, running, 3)
    accept(store, completed, 1)
    store.update_job(completed, status="completed")
    assert _watchdog(store, 3600.0).sweep() == []  # younger than the bound
    assert _watchdog(store, 0.0).sweep() == []  # disabled
    waiting = wait_for(lambda: store.unanchored_running_jobs(datetime.now(timezone.utc)), 10)
    assert [(r.job_id, r.seq) for r in waiting] == [(running, 0)]  # type: ignore[attr-defined]  # its oldest
    quick = _watchdog(store, 0.01)
    assert wait_for(quick.sweep, 10) == [running]
    assert "step 0's record waited" in (store.get_job(running).reason or "")  # type: ignore[union-attr]
    assert store.get_job(completed).status == "completed"  # type: ignore[union-attr]
    assert quick.sweep() == []  # dealt with: not failed again


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_records_unanchored_past_the_bound_fail_the_job_then_anchor_once_and_it_closes_failed(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    job = new_job(store, 73)
    open_job_on_chain(ledger_stack, job, 73)
    store.update_job(job, chain_status="confirmed")
    watchdog = _watchdog(store, 0.5)
    with RpcProxy(devchain.rpc_url) as proxy:
        chain = ChainClient(ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, request_timeout=2))
        anchorer = make_anchorer(ledger_stack, store, client=chain)
        worker = AnchoringWorker(anchorer, max_backoff=0.2).start()
        try:
            accepted = accept(store, job, 2)
            assert worker.drain(30)
            assert watchdog.sweep() == []  # anchored in time
            proxy.down = True  # the node is unreachable: nothing more gets anchored
            accepted += accept(store, job, 2, start=2)
            assert wait_for(watchdog.sweep, 30) == [job]

            failed = store.get_job(job)
            assert failed is not None and failed.status == "failed" and failed.reason is not None
            assert "step 2's record waited" in failed.reason and "check the anchoring worker" in failed.reason
            with pytest.raises(InvalidStateError):  # the coordinator's next step is not recorded
                accept(store, job, 1, start=4)
            assert accept(store, job, 1, start=2)  # a retried step 2 is the same record, not a second one
            assert failed.close_status == "pending" and store.count_records_by_status()["confirmed"] == 2

            proxy.down = False  # anchoring resumes
            assert wait_for(lambda: store.get_job(job).close_status == "confirmed", 60), store.get_job(job)  # type: ignore[union-attr]
        finally:
            worker.stop()
    assert_anchored_exactly_once(ledger_stack, store, accepted)  # every leaf once, by the chain's word
    on_chain = ledger_stack.ledger(ledger_stack.client()).get_job(bytes.fromhex(job[2:]))
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, 4)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_batch_the_chain_does_not_mine_fails_the_job_and_is_anchored_once_when_it_does(
    ledger_stack: LedgerStack, store: SqlLedgerStore, devchain: DevChain, chain_snapshot: None
) -> None:
    """The node takes the batch but mines nothing (anvil's automine off): the records stay ``submitted``, the
    watchdog fails the job saying so; once blocks come, the batch sent before is anchored once and the job
    closes on chain as failed with its three steps."""
    job = new_job(store, 74)
    open_job_on_chain(ledger_stack, job, 74)
    store.update_job(job, chain_status="confirmed")
    accepted = accept(store, job, 3)
    anchorer = make_anchorer(ledger_stack, store)
    watchdog = _watchdog(store, 0.5)
    rpc_call(devchain.rpc_url, "evm_setAutomine", [False])
    try:
        anchorer.run_once()
        assert store.count_records_by_status()["submitted"] == 3
        assert wait_for(watchdog.sweep, 30) == [job]
        assert "(still submitted)" in (store.get_job(job).reason or "")  # type: ignore[union-attr]
    finally:
        rpc_call(devchain.rpc_url, "evm_setAutomine", [True])

    def closed() -> bool:
        anchorer.run_once()
        if store.get_job(job).close_status == "confirmed":  # type: ignore[union-attr]
            return True
        rpc_call(devchain.rpc_url, "anvil_mine", ["0x1"])  # blocks come again (also for confirmations)
        return False

    assert wait_for(closed, 60), store.get_job(job)
    assert_anchored_exactly_once(ledger_stack, store, accepted)
    on_chain = ledger_stack.ledger(ledger_stack.client()).get_job(bytes.fromhex(job[2:]))
    assert (on_chain.status, on_chain.step_count) == (JobStatus.FAILED, 3)


def test_a_record_a_reorg_put_back_to_pending_waits_the_bound_anew(store: SqlLedgerStore) -> None:
    """Step 0 was anchored long ago (its acceptance is older than the bound) when a reorg puts its batch
    back to pending: the job is not failed on the next pass for a wait it never had; it is failed once the
    record has been seen waiting for the bound (the watchdog's own clock, given here)."""
    job = new_job(store, 74)
    store.update_job(job, status="running")
    accept(store, job, 1)
    record = store.record_with_batch(job, 0)[0]  # type: ignore[index]
    batch = store.create_batch("0x" + "11" * 32, "0x" + "22" * 32, [record.id])
    store.mark_batch_submitted(batch.batch_id, "0x" + "33" * 32, "0x" + "44" * 20, 0)
    store.mark_batch_mined(batch.batch_id, 10, "0x" + "55" * 32)
    store.mark_batch_confirmed(batch.batch_id, 10, "0x" + "55" * 32)
    now = [1000.0]
    db = ApiDb(store.engine)
    db.migrate()
    watchdog = LeaseWatchdog(db, store, unanchored_fail_after=1.0, clock=lambda: now[0])
    assert wait_for(lambda: datetime.now(timezone.utc) - record.accepted_at > timedelta(seconds=1.5), 10)
    assert watchdog.sweep() == []  # anchored: nothing waits
    store.requeue_batch(batch.batch_id, "chain reorganised above block 9")
    assert watchdog.sweep() == []  # waiting since just now, not since its acceptance
    now[0] += 0.6
    assert watchdog.sweep() == []
    now[0] += 0.6
    assert watchdog.sweep() == [job]
    assert "step 0's record waited" in (store.get_job(job).reason or "")  # type: ignore[union-attr]
