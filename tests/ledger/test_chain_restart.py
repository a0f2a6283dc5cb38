"""The chain restarted under a running anchoring worker (each test has its own anvil: the session chain is
never restarted).

The worker reaches the node through the test's RPC proxy (``rpc_proxy.py``), which stands in for the
node's fixed address: the proxy is switched ``down`` while anvil A stops and anvil B starts, then points
at B. Anchors are kept waiting in A's pool (automine off) when it stops, so the restart loses them:

* **state kept, pool lost** (``anvil_dumpState`` of A loaded into B): every record ends anchored exactly
  once on B (the ledger audit of ``chain_audit.py`` over B's events), the lost anchors re-signed from B's
  pending nonce, no transaction left waiting behind a nonce gap.
* **state lost** (B is a fresh chain: the ledger's code is gone): the worker refuses, naming the missing
  AuditLedger code at its deployment address, instead of hanging or crashing; the store claims no record
  anchored; ``secureflow audit reconcile`` refuses the same way.

Every wait is on a condition (store counts, the node's pool, the worker's reported error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_utils.crypto import keccak
from rpc_proxy import RpcProxy
from stack import (
    ANCHOR_KEY,
    LedgerStack,
    accept,
    assert_anchored_exactly_once,
    deploy_ledger_stack,
    make_anchorer,
    new_job,
)
from web3.contract.contract import ContractFunction

from secureflow.ledger.anchoring import AnchoringWorker, batch_id_for
from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.deploy import connect, write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DevChain, rpc_call
from secureflow.ledger.errors import ContractNotDeployedError
from secureflow.ledger.indexer import EventIndexer
from secureflow.ledger.nonces import ChainNonceSource, StoreNonceSource
from secureflow.ledger.store import SqlLedgerStore

BATCH = 10


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class Running:
    chain: DevChain
    stack: LedgerStack
    proxy: RpcProxy
    worker: AnchoringWorker
    store: SqlLedgerStore


@contextmanager
def worker_on_own_chain(store: SqlLedgerStore, tmp_path: Path) -> Iterator[Running]:
    """Anvil A with the contracts, and an anchoring worker + indexer reaching it through the proxy."""
    chain = DevChain(log_path=tmp_path / "anvil-a.log").start()
    try:
        stack = deploy_ledger_stack(chain.rpc_url)
        with RpcProxy(chain.rpc_url) as proxy:
            client = ChainClient(
                ChainConfig(
                    rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, request_timeout=5, receipt_timeout=10
                )
            )
            anchorer = make_anchorer(
                LedgerStack(stack.deployment, proxy.url), store, client, max_batch_size=BATCH
            )
            indexer = EventIndexer(
                store,
                client,
                connect(client, stack.deployment, "AuditLedger"),
                from_block=stack.deployment.deploy_block,
            )
            worker = AnchoringWorker(anchorer, indexer, max_backoff=0.2).start()
            try:
                yield Running(chain, stack, proxy, worker, store)
            finally:
                worker.stop()
    finally:
        chain.stop()


def anchors_waiting_in_the_pool(run: Running, job: str, start: int, batches: int) -> list[object]:
    """Stop mining on A, accept ``batches`` batches of records and wait until each one's anchor is in the
    pool (sent, write-ahead stored, not mined)."""
    rpc_call(run.chain.rpc_url, "evm_setAutomine", [False])
    records: list[object] = list(accept(run.store, job, batches * BATCH, start=start))

    def waiting() -> bool:
        in_flight = run.store.batches_in_flight()
        pool = rpc_call(run.chain.rpc_url, "txpool_status")
        return (
            len(in_flight) == batches
            and all(b.status == "submitted" and b.block_number is None for b in in_flight)
            and pool == {"pending": hex(batches), "queued": "0x0"}  # type: ignore[comparison-overlap]
        )

    wait_for(waiting, 30, f"{batches} anchors waiting in the pool")
    return records


def restart(chain: DevChain, proxy: RpcProxy, tmp_path: Path, *, keep_state: bool) -> DevChain:
    """Stop A (its pool goes with it) and start B in its place behind the proxy, with A's state or not."""
    state = rpc_call(chain.rpc_url, "anvil_dumpState") if keep_state else None
    proxy.down = True  # the node is away while it restarts
    chain.stop()
    chain_b = DevChain(log_path=tmp_path / "anvil-b.log").start()
    if state is not None:
        assert rpc_call(chain_b.rpc_url, "anvil_loadState", [state]) is True
    assert rpc_call(chain_b.rpc_url, "txpool_status") == {"pending": "0x0", "queued": "0x0"}
    proxy.upstream = chain_b.rpc_url
    proxy.down = False
    return chain_b


def test_restart_with_state_kept_and_pool_lost_anchors_every_record_exactly_once(
    store: SqlLedgerStore, tmp_path: Path
) -> None:
    with worker_on_own_chain(store, tmp_path) as run:
        job = new_job(store, 1)
        accepted = list(accept(store, job, 2 * BATCH))
        assert run.worker.drain(60), store.count_records_by_status()
        accepted += anchors_waiting_in_the_pool(run, job, 2 * BATCH, batches=3)

        chain_b = restart(run.chain, run.proxy, tmp_path, keep_state=True)
        try:
            assert run.worker.drain(60), (store.count_records_by_status(), run.worker.last_error)
            anchorer = run.worker.anchorer
            # The lost anchors were re-signed in nonce order from B's pending nonce (B kept the state, so
            # the same nonces: the same transactions again); B's nonce and the store's counter agree, so
            # nothing waits behind a gap.
            nonces = sorted(b.nonce for b in store.batches_anchored_after(0) if b.nonce is not None)
            assert nonces == list(range(nonces[0], nonces[0] + len(nonces))), nonces
            chain_next = anchorer.client.w3.eth.get_transaction_count(
                anchorer.client.w3.to_checksum_address(anchorer.sender.address), "pending"
            )
            assert store.peek_nonce(DEV_CHAIN_ID, anchorer.sender.address) == chain_next
            assert_anchored_exactly_once(LedgerStack(run.stack.deployment, chain_b.rpc_url), store, accepted)
        finally:
            chain_b.stop()


def test_restart_with_state_lost_refuses_naming_the_missing_ledger_and_claims_nothing_anchored(
    store: SqlLedgerStore, ledger_db_url: str, tmp_path: Path
) -> None:
    with worker_on_own_chain(store, tmp_path) as run:
        job = new_job(store, 2)
        accept(store, job, 2 * BATCH)
        assert run.worker.drain(60), store.count_records_by_status()
        anchors_waiting_in_the_pool(run, job, 2 * BATCH, batches=2)
        ledger = run.stack.deployment.address_of("AuditLedger")

        chain_b = restart(run.chain, run.proxy, tmp_path, keep_state=False)
        try:
            refusal = f"no AuditLedger code at {ledger} on chain {DEV_CHAIN_ID}"

            def refused_and_rolled_back() -> bool:
                error = run.worker.last_error or ""
                return refusal in error and store.count_records_by_status()["confirmed"] == 0

            wait_for(refused_and_rolled_back, 30, "the worker's refusal and the store's rollback")
            assert "ContractNotDeployedError" in (run.worker.last_error or "")
            counts = store.count_records_by_status()
            assert counts["confirmed"] == 0 and counts["pending"] + counts["submitted"] == 4 * BATCH, counts
            # It refuses before sending: nothing went to the chain that has no ledger.
            sender = run.worker.anchorer.sender.address
            assert rpc_call(chain_b.rpc_url, "eth_getTransactionCount", [sender, "pending"]) == "0x0"

            # The auditor's reconcile against the new chain refuses in the same words.
            deployment = tmp_path / "deployment.json"
            write_deployment(run.stack.deployment, deployment)
            reconcile = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "secureflow.api",
                    "audit",
                    "reconcile",
                    "--rpc-url",
                    chain_b.rpc_url,
                    "--deployment",
                    str(deployment),
                    "--database-url",
                    ledger_db_url,
                ],
                capture_output=True,
                text=True,
                timeout=120,
                env={**os.environ, "COLUMNS": "300"},
            )
            assert reconcile.returncode == 1, reconcile
            assert f"no AuditLedger code at {ledger}" in reconcile.stderr + reconcile.stdout
        finally:
            chain_b.stop()


def _anchor_call(stack: LedgerStack, client: ChainClient, tag: str) -> ContractFunction:
    root = keccak(text=tag)
    ledger = connect(client, stack.deployment, "AuditLedger")
    return ledger.functions.anchorBatch(batch_id_for(root), root, 1)


def test_a_store_counter_ahead_of_the_chain_is_healed_not_waited_behind(
    ledger_stack: LedgerStack, store: SqlLedgerStore, chain_snapshot: None
) -> None:
    """`secureflow up` run twice on one database: its nonces are those of the previous chain."""
    client = ledger_stack.client(receipt_timeout=5)
    nonces = StoreNonceSource(store, client.w3, client.chain_id)
    sender = TransactionSender(client, ANCHOR_KEY, nonces)
    chain_next = client.w3.eth.get_transaction_count(sender.address, "pending")
    store.reset_nonce(DEV_CHAIN_ID, sender.address, chain_next + 8)  # 8 sent on a chain that is gone
    receipt = sender.transact(_anchor_call(ledger_stack, client, "ahead"))
    assert receipt["status"] == 1
    assert client.w3.eth.get_transaction(receipt["transactionHash"])["nonce"] == chain_next
    assert nonces.gaps_healed == 1
    assert store.peek_nonce(DEV_CHAIN_ID, sender.address) == chain_next + 1


@contextmanager
def sender_on_own_chain(
    tmp_path: Path,
) -> Iterator[tuple[DevChain, RpcProxy, LedgerStack, TransactionSender]]:
    chain = DevChain(log_path=tmp_path / "anvil-a.log").start()
    try:
        stack = deploy_ledger_stack(chain.rpc_url)
        with RpcProxy(chain.rpc_url) as proxy:
            client = ChainClient(
                ChainConfig(rpc_url=proxy.url, expected_chain_id=DEV_CHAIN_ID, receipt_timeout=10)
            )
            yield chain, proxy, stack, TransactionSender(client, ANCHOR_KEY, ChainNonceSource(client.w3))
    finally:
        chain.stop()


def test_a_sent_transaction_the_restarted_node_lost_is_sent_again(tmp_path: Path) -> None:
    with sender_on_own_chain(tmp_path) as (chain, proxy, stack, sender):
        rpc_call(chain.rpc_url, "evm_setAutomine", [False])
        sent = sender.send(_anchor_call(stack, sender.client, "lost"))
        assert rpc_call(chain.rpc_url, "txpool_status") == {"pending": "0x1", "queued": "0x0"}
        chain_b = restart(chain, proxy, tmp_path, keep_state=True)
        try:
            receipt = sender.wait(sent)
            assert receipt["status"] == 1
            ledger = connect(sender.client, stack.deployment, "AuditLedger")
            assert ledger.functions.batchRoot(batch_id_for(keccak(text="lost"))).call() == keccak(text="lost")
        finally:
            chain_b.stop()


def test_a_sent_transaction_lost_with_the_chain_state_is_refused_naming_the_missing_code(
    tmp_path: Path,
) -> None:
    with sender_on_own_chain(tmp_path) as (chain, proxy, stack, sender):
        rpc_call(chain.rpc_url, "evm_setAutomine", [False])
        sent = sender.send(_anchor_call(stack, sender.client, "gone"))
        chain_b = restart(chain, proxy, tmp_path, keep_state=False)
        try:
            with pytest.raises(ContractNotDeployedError, match="no contract code at") as refused:
                sender.wait(sent)
            assert stack.deployment.address_of("AuditLedger") in str(refused.value)
            assert rpc_call(chain_b.rpc_url, "eth_getTransactionCount", [sender.address, "pending"]) == "0x0"
        finally:
            chain_b.stop()


def test_a_transaction_queued_behind_a_nonce_never_sent_is_not_left_waiting(
    ledger_stack: LedgerStack, devchain: DevChain, chain_snapshot: None
) -> None:
    """A nonce handed out but never broadcast (its write-ahead failed) leaves the next transaction
    unminable in the pool: the gap is filled, and the abandoned call, sent again, is anchored once."""
    client = ledger_stack.client(receipt_timeout=10)
    sender = TransactionSender(client, ANCHOR_KEY, ChainNonceSource(client.w3))
    abandoned = sender.prepare(_anchor_call(ledger_stack, client, "abandoned"))
    sender.abandon(abandoned)
    behind = sender.send(_anchor_call(ledger_stack, client, "behind"))
    assert behind.nonce == abandoned.nonce + 1
    assert rpc_call(devchain.rpc_url, "txpool_status") == {"pending": "0x0", "queued": "0x1"}
    assert sender.wait(behind)["status"] == 1
    assert sender.transact(_anchor_call(ledger_stack, client, "abandoned"))["status"] == 1
    ledger = connect(client, ledger_stack.deployment, "AuditLedger")
    events = ledger.events.BatchAnchored().get_logs(from_block=ledger_stack.deployment.deploy_block)
    for tag in ("abandoned", "behind"):
        assert [bytes(e["args"]["root"]) for e in events].count(keccak(text=tag)) == 1
