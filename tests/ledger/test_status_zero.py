"""Failed transactions mined with status 0, as Besu/GoQuorum mine them, on anvil and on hardhat's node.

A Besu or GoQuorum node never refuses a transaction because it would fail: it mines it with status
0, several to a block. The chain client must then give the same decoded reason it gives for a
revert seen at estimate, even when the cause is an earlier transaction in the same block (so a
replay on the block's parent state succeeds), and the anchoring worker must take the path it takes
for a revert at estimate. Each test runs on both clients (``evm_chain``); the ledger is deployed
once per client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chain_audit import audit_ledger
from eth_account import Account
from eth_typing import HexStr
from stack import LedgerStack, accept, deploy_ledger_stack, make_anchorer, new_job

from secureflow.ledger.chain import ChainClient, ChainConfig, TransactionSender
from secureflow.ledger.contracts import RegistryClient
from secureflow.ledger.deploy import connect
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain, rpc_call
from secureflow.ledger.errors import ContractRevertedError
from secureflow.ledger.nonces import ChainNonceSource
from secureflow.ledger.store import SqlLedgerStore

ADMIN, ANCHOR = DEV_PRIVATE_KEYS[0], DEV_PRIVATE_KEYS[3]  # the stack's admin and anchoring service


@pytest.fixture(scope="module")
def stack(evm_chain: DevChain) -> LedgerStack:
    return deploy_ledger_stack(evm_chain.rpc_url)


@pytest.fixture
def snapshot(evm_chain: DevChain) -> Iterator[None]:
    """Revert every chain change of the test; automine back on whatever the test did."""
    taken = rpc_call(evm_chain.rpc_url, "evm_snapshot")
    try:
        yield
    finally:
        rpc_call(evm_chain.rpc_url, "evm_setAutomine", [True])
        assert rpc_call(evm_chain.rpc_url, "evm_revert", [taken]) is True


def _client(chain: DevChain) -> ChainClient:
    return ChainClient(ChainConfig(rpc_url=chain.rpc_url, expected_chain_id=DEV_CHAIN_ID, receipt_timeout=10))


def test_a_failing_transaction_is_accepted_and_mined_with_status_0(
    evm_chain: DevChain, stack: LedgerStack, snapshot: None
) -> None:
    """What the client relies on the node for (hardhat is started so that it behaves like Besu here):
    no refusal at send, a status-0 receipt, the nonce used, our own gas price (0) whatever
    ``eth_gasPrice`` answers, and nothing read from ``effectiveGasPrice``."""
    client = _client(evm_chain)
    outsider = TransactionSender(client, DEV_PRIVATE_KEYS[4], ChainNonceSource(client.w3))
    ledger = connect(client, stack.deployment, "AuditLedger")
    nonce = client.w3.eth.get_transaction_count(outsider.account.address)
    sent = outsider.send(ledger.functions.anchorBatch(b"\x01" * 32, b"\x02" * 32, 1), gas=200_000)
    with pytest.raises(ContractRevertedError) as info:
        outsider.wait(sent, contract=ledger)
    assert info.value.error_name == "NotAnchorService"
    receipt = client.w3.eth.get_transaction_receipt(HexStr(sent.tx_hash))
    assert receipt["status"] == 0
    assert client.w3.eth.get_transaction_count(outsider.account.address) == nonce + 1
    assert client.w3.eth.get_transaction(HexStr(sent.tx_hash))["gasPrice"] == 0
    if evm_chain.client == "hardhat":
        assert client.w3.eth.gas_price > 0  # so never taken from the node
        assert "effectiveGasPrice" not in receipt  # Berlin receipts on hardhat (and Besu) have none
    audit_ledger(client.w3, ledger.address, [], deterministic_ids=False)


def test_a_transaction_failed_by_an_earlier_one_in_its_block_is_decoded_like_a_revert_at_estimate(
    evm_chain: DevChain, stack: LedgerStack, snapshot: None
) -> None:
    """Two anchors of the same batch in one block (a QBFT block holds many transactions): the second
    is mined with status 0 and reported as BatchAlreadyAnchored, the error its estimate would give,
    though a replay on the block's parent state succeeds."""
    client = _client(evm_chain)
    anchor = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    ledger = connect(client, stack.deployment, "AuditLedger")
    call = ledger.functions.anchorBatch(b"\x05" * 32, b"\x06" * 32, 1)
    rpc_call(evm_chain.rpc_url, "evm_setAutomine", [False])
    first, second = anchor.send(call, gas=200_000), anchor.send(call, gas=200_000)
    rpc_call(evm_chain.rpc_url, "evm_mine")
    rpc_call(evm_chain.rpc_url, "evm_setAutomine", [True])
    mined = anchor.wait(first, contract=ledger)
    failed = client.w3.eth.get_transaction_receipt(HexStr(second.tx_hash))
    assert (failed["status"], failed["blockNumber"]) == (0, mined["blockNumber"])
    with pytest.raises(ContractRevertedError) as at_mining:
        anchor.wait(second, contract=ledger)
    with pytest.raises(ContractRevertedError) as at_estimate:
        anchor.send(call)
    assert at_mining.value.error_name == at_estimate.value.error_name == "BatchAlreadyAnchored"
    audit_ledger(client.w3, ledger.address, [b"\x06" * 32], deterministic_ids=False)


def test_an_anchor_mined_with_status_0_takes_the_path_of_a_revert_at_estimate(
    evm_chain: DevChain, stack: LedgerStack, store: SqlLedgerStore, snapshot: None
) -> None:
    """The worker's anchor is mined with status 0 behind the revocation of its role in the same block:
    the batch goes back to ``built`` with the decoded reason, and the next pass stops on the same
    NotAnchorService as a batch whose estimate reverts; the records stay in the outbox, none anchored."""
    accepted = accept(store, new_job(store, 70), 3)
    anchorer = make_anchorer(stack, store)
    anchorer.recover()
    admin_client = _client(evm_chain)
    registry = RegistryClient(
        connect(admin_client, stack.deployment, "ConsortiumRegistry"),
        TransactionSender(admin_client, ADMIN, ChainNonceSource(admin_client.w3)),
    )
    rpc_call(evm_chain.rpc_url, "evm_setAutomine", [False])
    revoke = registry.sender.send(
        registry.contract.functions.revokeRole(
            registry.contract.functions.ANCHOR_ROLE().call(), Account.from_key(ANCHOR).address
        )
    )
    report = anchorer.run_once()  # estimated on the latest block, where the role is still held
    assert report.batches_sent == 1
    rpc_call(evm_chain.rpc_url, "evm_mine")
    rpc_call(evm_chain.rpc_url, "evm_setAutomine", [True])
    registry.sender.wait(revoke)
    (batch,) = store.batches_in_flight()
    assert batch.tx_hash is not None
    receipt = admin_client.w3.eth.get_transaction_receipt(HexStr(batch.tx_hash))
    assert receipt["status"] == 0

    report = anchorer.run_once()
    assert report.batches_requeued == 1
    (batch,) = store.batches_in_flight()
    assert batch.status == "built"
    assert batch.failure_reason is not None and "NotAnchorService" in batch.failure_reason
    with pytest.raises(ContractRevertedError) as after_status_0:
        anchorer.run_once()
    assert after_status_0.value.error_name == "NotAnchorService"
    counts = store.count_records_by_status()
    assert counts["confirmed"] == 0 and counts["pending"] + counts["submitted"] == len(accepted)
    audit_ledger(admin_client.w3, stack.deployment.address_of("AuditLedger"), [], deterministic_ids=False)
