"""Whether a ledger database and its deployment file describe the chain a node serves.

A restarted dev chain, a node restored from an old snapshot or a database copied from another network
must be refused before anything is sent: the database's nonces, anchors and jobs would otherwise point at
transactions the chain does not hold (and a transaction could wait behind a nonce gap).
`check_store_matches_chain` compares, cheaply and without waiting: the chain id, the genesis block's hash
the database recorded, code at every address of the deployment with the code hash it pinned, and the last
block the event indexer saw (the chain must still hold it, with the same hash). `record_genesis` notes the
chain's genesis hash in the database the first time.
"""

from __future__ import annotations

from eth_utils.crypto import keccak
from web3.exceptions import BlockNotFound

from secureflow.ledger.chain import ChainClient
from secureflow.ledger.deploy import Deployment
from secureflow.ledger.errors import ChainMismatchError
from secureflow.ledger.store.base import LedgerStore

GENESIS_CHECKPOINT = "chain-genesis"
"""The store checkpoint holding block 0's hash of the chain the database was made on."""
INDEXER_CHECKPOINT = "audit-ledger-events"
"""The event indexer's checkpoint (its default name): the last block it indexed."""


def _block_hash(client: ChainClient, number: int) -> str | None:
    try:
        block = client.call_rpc(client.w3.eth.get_block, number)
    except BlockNotFound:
        return None
    return "0x" + bytes(block["hash"]).hex()


def record_genesis(store: LedgerStore, client: ChainClient) -> None:
    """Note the chain's genesis hash in ``store`` (once: an existing note is left as it is)."""
    if store.get_checkpoint(GENESIS_CHECKPOINT) is None:
        genesis = _block_hash(client, 0)
        if genesis is not None:
            store.set_checkpoint(GENESIS_CHECKPOINT, 0, genesis)


def check_store_matches_chain(
    store: LedgerStore, client: ChainClient, deployment: Deployment, *, fix: str | None = None
) -> None:
    """Raise `ChainMismatchError` (with ``fix`` as its hint, if given) unless ``store`` and ``deployment``
    describe the chain ``client`` reaches, in a state at least as recent as the database's."""

    def refuse(why: str) -> ChainMismatchError:
        return ChainMismatchError(f"the database and deployment do not match the chain: {why}", hint=fix)

    chain_id = client.check()
    if chain_id != deployment.chain_id:
        raise refuse(f"the deployment is on chain {deployment.chain_id}, the node serves chain {chain_id}")
    genesis = store.get_checkpoint(GENESIS_CHECKPOINT)
    if genesis is not None and _block_hash(client, 0) != genesis.block_hash:
        raise refuse("the node's genesis block differs from the one the database was made on")
    for name, entry in sorted(deployment.contracts.items()):
        code = bytes(client.call_rpc(client.w3.eth.get_code, client.w3.to_checksum_address(entry.address)))
        if not code:
            raise refuse(f"there is no {name} code at {entry.address} (the chain has lost its state)")
        if entry.code_hash is not None and "0x" + keccak(code).hex() != entry.code_hash.lower():
            raise refuse(f"the code at {entry.address} is not the {name} the deployment pinned")
    indexed = store.get_checkpoint(INDEXER_CHECKPOINT)
    if indexed is not None and _block_hash(client, indexed.block_number) != indexed.block_hash:
        raise refuse(
            f"the database indexed block {indexed.block_number}, which the chain does not hold (its saved "
            "state is older than the database: was it stopped without saving?)"
        )
