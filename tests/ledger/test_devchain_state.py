"""The dev chain's saved state (`DevChain(state_path=…)`, what `secureflow up` keeps between runs) and the
check that refuses a database that does not match its chain (`check_store_matches_chain`).

Each test runs its own anvil. A stop saves the state (blocks, their hashes, every block's state: the
verifier asks for roles at past blocks); a crashed anvil saves nothing and the previous state file stays
whole; a database whose chain lost its code, whose genesis differs or that indexed blocks the chain does
not hold is refused, naming what differs and the fix given.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from scrape import wait_for
from stack import deploy_ledger_stack

from secureflow.ledger.chain import ChainClient, ChainConfig
from secureflow.ledger.chain_match import (
    GENESIS_CHECKPOINT,
    INDEXER_CHECKPOINT,
    check_store_matches_chain,
    record_genesis,
)
from secureflow.ledger.devchain import DevChain, rpc_call
from secureflow.ledger.errors import ChainMismatchError
from secureflow.ledger.store import SqlLedgerStore
from secureflow.ledger.store.sql import open_store

DEAD = "0x000000000000000000000000000000000000dEaD"


def _send(chain: DevChain, wei: int) -> None:
    """A transfer, returned once it is mined (anvil may answer eth_sendTransaction before its block is
    the head: reading the head at once raced with automining, once in a CI run)."""
    sender = rpc_call(chain.rpc_url, "eth_accounts")[0]  # type: ignore[index]
    tx = {"from": sender, "to": DEAD, "value": hex(wei), "gasPrice": "0x0"}
    tx_hash = rpc_call(chain.rpc_url, "eth_sendTransaction", [tx])
    assert wait_for(lambda: rpc_call(chain.rpc_url, "eth_getTransactionReceipt", [tx_hash]), 30)


def _head(chain: DevChain) -> tuple[int, str]:
    block = rpc_call(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])
    assert isinstance(block, dict)
    return int(block["number"], 16), str(block["hash"])


def test_a_stopped_chain_saves_its_state_and_a_crashed_one_leaves_the_saved_state_whole(
    tmp_path: Path,
) -> None:
    state = tmp_path / "chain-state.json"
    with DevChain(state_path=state) as chain:
        _send(chain, 1)
        _send(chain, 2)
        head = _head(chain)
    assert chain.state_saved
    assert state.stat().st_size > 0 and not state.with_name("chain-state.json.partial").exists()
    saved = state.read_bytes()

    chain = DevChain(state_path=state).start()
    try:
        assert _head(chain) == head  # the same blocks, the same hashes
        # the state at a past block too (the verifier's hasRole at the anchor's block needs it)
        assert int(str(rpc_call(chain.rpc_url, "eth_getBalance", [DEAD, "0x1"])), 16) == 1
        _send(chain, 3)  # a block the crash loses
        assert chain.pid is not None
        os.killpg(chain.pid, signal.SIGKILL)  # anvil dies without saving
    finally:
        chain.stop()
    assert not chain.state_saved and state.read_bytes() == saved
    assert not state.with_name("chain-state.json.partial").exists()

    # a dump cut short although anvil exited 0 never replaces the saved state
    state.with_name("chain-state.json.partial").write_text('{"block": {"number": "0x2"}, "accou')
    chain._keep_state(True)
    assert not chain.state_saved and state.read_bytes() == saved
    # a whole new dump does, and the last good state stays beside it
    with DevChain(state_path=state) as chain:
        _send(chain, 4)
    assert chain.state_saved and state.read_bytes() != saved
    assert state.with_name("chain-state.json.bak").read_bytes() == saved


@pytest.fixture
def chain_and_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with DevChain(state_path=tmp_path / "chain-state.json") as chain:
        store = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield chain, store
        finally:
            store.close()


def test_a_database_that_does_not_match_its_chain_is_refused_with_the_fix(
    chain_and_store: tuple[DevChain, SqlLedgerStore],
) -> None:
    chain, store = chain_and_store
    deployment = deploy_ledger_stack(chain.rpc_url).deployment
    client = ChainClient(ChainConfig(rpc_url=chain.rpc_url))
    record_genesis(store, client)
    number, block_hash = _head(chain)
    store.set_checkpoint(INDEXER_CHECKPOINT, number, block_hash)
    check_store_matches_chain(store, client, deployment)  # the chain it was made on: accepted

    def refused(match: str) -> None:
        with pytest.raises(ChainMismatchError, match=match) as caught:
            check_store_matches_chain(store, client, deployment, fix="run with --fresh")
        assert caught.value.hint == "run with --fresh"

    store.set_checkpoint(INDEXER_CHECKPOINT, number + 5, "0x" + "ab" * 32)  # indexed beyond the chain's state
    refused(f"the database indexed block {number + 5}, which the chain does not hold")
    store.set_checkpoint(INDEXER_CHECKPOINT, number, block_hash)

    moved = deployment.contracts["AuditLedger"].model_copy(update={"address": "0x" + "11" * 20})
    other = deployment.model_copy(update={"contracts": {**deployment.contracts, "AuditLedger": moved}})
    with pytest.raises(ChainMismatchError, match="there is no AuditLedger code at 0x1111"):
        check_store_matches_chain(store, client, other)

    store.set_checkpoint(GENESIS_CHECKPOINT, 0, "0x" + "cd" * 32)  # made on another chain
    refused("the node's genesis block differs")
