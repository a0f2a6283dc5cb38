"""The chain client against a real anvil: connection checks, decoded errors, nonces, in-flight bound.

Every test that sends anchors ends with the ledger audit (``chain_audit.audit_ledger``): the
``BatchAnchored`` events of the module's ledger since block 0 are exactly the one-leaf batches the test
meant to anchor (a one-leaf tree's root is its leaf), each once; a refused or reverted anchor left none.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from chain_audit import audit_ledger
from eth_account import Account

from secureflow.ledger import chain as chain_module
from secureflow.ledger.chain import ChainClient, ChainConfig, SentTransaction, TransactionSender, redact_url
from secureflow.ledger.contracts import AuditLedgerClient, RegistryClient
from secureflow.ledger.deploy import Deployment, connect, deploy_contracts
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain, free_port, rpc_call
from secureflow.ledger.errors import (
    ContractNotDeployedError,
    ContractRevertedError,
    NodeUnreachableError,
    OutOfGasError,
    TransactionTimeoutError,
    WrongChainError,
)
from secureflow.ledger.nonces import ChainNonceSource, StoreNonceSource
from secureflow.ledger.store.sql import open_store

ADMIN, ALICE, BOB, ANCHOR, OUTSIDER = DEV_PRIVATE_KEYS


@pytest.fixture(scope="module")
def deployed(devchain: DevChain) -> Deployment:
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    admin = TransactionSender(client, ADMIN, ChainNonceSource(client.w3))
    deployment = deploy_contracts(client, admin)
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    registry.grant_anchor_service(Account.from_key(ANCHOR).address)
    return deployment


@pytest.fixture
def client(devchain: DevChain) -> ChainClient:
    return ChainClient(
        ChainConfig(rpc_url=devchain.rpc_url, expected_chain_id=DEV_CHAIN_ID, receipt_timeout=10)
    )


def test_unreachable_node_says_what_to_do() -> None:
    client = ChainClient(ChainConfig(rpc_url=f"http://127.0.0.1:{free_port()}", request_timeout=1))
    with pytest.raises(NodeUnreachableError, match="cannot reach") as info:
        client.check()
    assert "SECUREFLOW_RPC_URL" in str(info.value)


def test_wrong_chain_id_is_refused(devchain: DevChain) -> None:
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url, expected_chain_id=10))
    with pytest.raises(WrongChainError, match="serves chain id 1337, expected 10"):
        client.check()


def test_contract_not_deployed(client: ChainClient, deployed: Deployment) -> None:
    bogus = Deployment.model_validate(
        {
            **deployed.model_dump(),
            "contracts": {
                **deployed.model_dump()["contracts"],
                "AuditLedger": {
                    **deployed.model_dump()["contracts"]["AuditLedger"],
                    "address": Account.from_key(OUTSIDER).address,
                },
            },
        }
    )
    with pytest.raises(ContractNotDeployedError, match="no AuditLedger code"):
        connect(client, bogus, "AuditLedger")


def test_credentials_never_appear_in_messages() -> None:
    assert redact_url("https://user:s3cret@node.example:8545/rpc") == "https://***@node.example:8545/***"
    # a password holding '@', and a provider's API key in the path or the query
    assert redact_url("http://u:p@ssw0rd@127.0.0.1:1/v3/INFURAKEY") == "http://***@127.0.0.1:1/***"
    assert redact_url("https://node.example/v3/KEY?token=T") == "https://node.example/***"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    client = ChainClient(
        ChainConfig(rpc_url=f"http://user:s3cret@127.0.0.1:{free_port()}", request_timeout=1)
    )
    with pytest.raises(NodeUnreachableError) as info:
        client.check()
    assert "s3cret" not in str(info.value)


def test_custom_error_is_decoded_by_name(
    client: ChainClient, deployed: Deployment, chain_snapshot: None
) -> None:
    outsider = TransactionSender(client, OUTSIDER, ChainNonceSource(client.w3))
    ledger = AuditLedgerClient(connect(client, deployed, "AuditLedger"), outsider)
    with pytest.raises(ContractRevertedError) as info:
        ledger.anchor_batch(b"\x01" * 32, b"\x02" * 32, 3)
    assert info.value.error_name == "NotAnchorService"
    assert outsider.address.lower() in str(info.value).lower()
    audit_ledger(client.w3, deployed.address_of("AuditLedger"), [], deterministic_ids=False)


def test_out_of_gas_is_reported(client: ChainClient, deployed: Deployment, chain_snapshot: None) -> None:
    anchor = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    ledger = connect(client, deployed, "AuditLedger")
    sent = anchor.send(ledger.functions.anchorBatch(b"\x01" * 32, b"\x02" * 32, 3), gas=23_000)
    with pytest.raises(OutOfGasError, match="ran out of gas"):
        anchor.wait(sent, contract=ledger)
    audit_ledger(client.w3, ledger.address, [], deterministic_ids=False)


def test_reverted_transaction_is_decoded_after_mining(
    client: ChainClient, deployed: Deployment, chain_snapshot: None
) -> None:
    anchor = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    ledger = connect(client, deployed, "AuditLedger")
    call = ledger.functions.anchorBatch(b"\x05" * 32, b"\x06" * 32, 1)
    # Both sent with explicit gas, so the second is only rejected when mined.
    first, second = anchor.send(call, gas=200_000), anchor.send(call, gas=200_000)
    anchor.wait(first, contract=ledger)
    with pytest.raises(ContractRevertedError) as info:
        anchor.wait(second, contract=ledger)
    assert info.value.error_name == "BatchAlreadyAnchored"
    audit_ledger(client.w3, ledger.address, [b"\x06" * 32], deterministic_ids=False)


def test_receipt_timeout_when_node_stops_mining(
    client: ChainClient, deployed: Deployment, devchain: DevChain, chain_snapshot: None
) -> None:
    anchor = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    ledger = connect(client, deployed, "AuditLedger")
    rpc_call(devchain.rpc_url, "evm_setAutomine", [False])
    try:
        sent = anchor.send(ledger.functions.anchorBatch(b"\x07" * 32, b"\x08" * 32, 1))
        with pytest.raises(TransactionTimeoutError, match=sent.tx_hash):
            anchor.wait(sent, timeout=0.5)
    finally:
        rpc_call(devchain.rpc_url, "evm_setAutomine", [True])
    rpc_call(devchain.rpc_url, "evm_mine")
    receipt = client.w3.eth.get_transaction_receipt(sent.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1
    audit_ledger(client.w3, ledger.address, [b"\x08" * 32], deterministic_ids=False)


def _waiting_on_a_lock(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside a ``threading`` semaphore's ``acquire`` called by
    ``TransactionSender.send`` right now: parked on the in-flight bound."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        caller = frame.f_back
        if (
            frame.f_code.co_filename == threading.__file__
            and frame.f_code.co_name == "acquire"
            and caller is not None
            and caller.f_code.co_filename == chain_module.__file__
            and caller.f_code.co_name == "send"
        ):
            return True
        frame = caller
    return False


def test_in_flight_transactions_are_bounded(
    devchain: DevChain, deployed: Deployment, chain_snapshot: None
) -> None:
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url, max_in_flight=2))
    anchor = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    ledger = connect(client, deployed, "AuditLedger")
    first = anchor.send(ledger.functions.anchorBatch(b"\x11" * 32, b"\x12" * 32, 1))
    second = anchor.send(ledger.functions.anchorBatch(b"\x13" * 32, b"\x14" * 32, 1))
    third_sent = threading.Event()
    third: list[SentTransaction] = []

    def send_third() -> None:
        third.append(anchor.send(ledger.functions.anchorBatch(b"\x15" * 32, b"\x16" * 32, 1), gas=200_000))
        third_sent.set()

    sent_before = client.w3.eth.get_transaction_count(anchor.address, "pending")  # type: ignore[arg-type]
    worker = threading.Thread(target=send_third, daemon=True)
    worker.start()
    # the event, not a short wait: the third send is parked on the in-flight bound (or went out)
    deadline = time.monotonic() + 60
    while not _waiting_on_a_lock(worker) and not third_sent.is_set():
        assert worker.is_alive() and time.monotonic() < deadline, "the third send neither waited nor went out"
        time.sleep(0.01)
    assert not third_sent.is_set(), "a third transaction went out while two were unconfirmed"
    assert client.w3.eth.get_transaction_count(anchor.address, "pending") == sent_before  # type: ignore[arg-type]
    anchor.wait(first)
    assert third_sent.wait(60)
    worker.join()
    anchor.wait(second)
    anchor.wait(third[0])
    audit_ledger(
        client.w3, ledger.address, [b"\x12" * 32, b"\x14" * 32, b"\x16" * 32], deterministic_ids=False
    )


def test_store_nonces_survive_restart_and_resync_on_nonce_too_low(
    client: ChainClient, deployed: Deployment, tmp_path: Path, chain_snapshot: None
) -> None:
    url = f"sqlite:///{tmp_path / 'nonces.db'}"
    store = open_store(url)
    anchor = TransactionSender(client, ANCHOR, StoreNonceSource(store, client.w3, client.chain_id))
    ledger = AuditLedgerClient(connect(client, deployed, "AuditLedger"), anchor)
    ledger.anchor_batch(b"\x21" * 32, b"\x22" * 32, 1)
    ledger.anchor_batch(b"\x23" * 32, b"\x24" * 32, 1)
    chain_next = client.w3.eth.get_transaction_count(anchor.account.address)
    assert store.peek_nonce(client.chain_id, anchor.address) == chain_next

    # A restarted process continues from the stored counter.
    reopened = open_store(url)
    assert reopened.peek_nonce(client.chain_id, anchor.address) == chain_next

    # Another tool sends from the same key behind our back: our counter is now too low.
    other = TransactionSender(client, ANCHOR, ChainNonceSource(client.w3))
    AuditLedgerClient(connect(client, deployed, "AuditLedger"), other).anchor_batch(
        b"\x25" * 32, b"\x26" * 32, 1
    )
    receipt = ledger.anchor_batch(b"\x27" * 32, b"\x28" * 32, 1)
    assert receipt["status"] == 1
    assert reopened.peek_nonce(client.chain_id, anchor.address) == chain_next + 2
    roots = [b"\x22" * 32, b"\x24" * 32, b"\x26" * 32, b"\x28" * 32]
    audit_ledger(client.w3, deployed.address_of("AuditLedger"), roots, deterministic_ids=False)
