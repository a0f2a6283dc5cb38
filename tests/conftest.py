"""Session-wide fixtures: one real anvil node (Berlin, gas price 0, chain id 1337) per test session.

Tests that change chain state take ``chain_snapshot`` so every test starts from
the same state (``evm_snapshot`` / ``evm_revert``) without restarting anvil.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from ledger.devchain import DevChain, rpc_call


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
