"""Session-wide fixtures: one real anvil node (Berlin, gas price 0, chain id 1337) per test session.

Tests that change chain state take ``chain_snapshot`` so every test starts from
the same state (``evm_snapshot`` / ``evm_revert``) without restarting anvil.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from stack import LedgerStack
from web3 import Web3

from ledger.chain import ChainClient, ChainConfig, TransactionSender
from ledger.contracts import RegistryClient
from ledger.deploy import connect, deploy_contracts
from ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS, DevChain, rpc_call
from ledger.nonces import ChainNonceSource


@pytest.fixture(scope="session")
def devchain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevChain]:
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with DevChain(log_path=log) as chain:
        yield chain


@pytest.fixture(scope="session")
def w3(devchain: DevChain) -> Web3:
    return Web3(Web3.HTTPProvider(devchain.rpc_url, request_kwargs={"timeout": 30}))


@pytest.fixture
def chain_snapshot(devchain: DevChain) -> Iterator[None]:
    """Revert every chain change the test makes."""
    snapshot = rpc_call(devchain.rpc_url, "evm_snapshot")
    yield
    assert rpc_call(devchain.rpc_url, "evm_revert", [snapshot]) is True


@pytest.fixture(scope="session")
def ledger_stack(devchain: DevChain) -> LedgerStack:
    client = ChainClient(ChainConfig(rpc_url=devchain.rpc_url, expected_chain_id=DEV_CHAIN_ID))
    admin = TransactionSender(client, DEV_PRIVATE_KEYS[0], ChainNonceSource(client.w3))
    deployment = deploy_contracts(client, admin)
    registry = RegistryClient(connect(client, deployment, "ConsortiumRegistry"), admin)
    for key in DEV_PRIVATE_KEYS[1:3]:
        registry.register_member(Account.from_key(key).address)
    registry.grant_anchor_service(Account.from_key(DEV_PRIVATE_KEYS[3]).address)
    return LedgerStack(deployment, devchain.rpc_url)
