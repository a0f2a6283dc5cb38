"""Nonce allocation per sending account.

`StoreNonceSource` is the production allocator: the next nonce per (chain,
sender) lives in the ledger database, so it survives restarts and is shared by
every process that sends from the same key; allocation is atomic in the DB.
The chain's pending transaction count is the floor, so a store that is behind
the chain (another tool sent from the key) catches up by itself. `resync`
resets the counter to the chain's pending count; the sender calls it on
"nonce too low", and a caller that finds a nonce gap (a transaction dropped
from the pool) calls it before re-sending.

`ChainNonceSource` keeps the counter in memory, seeded from the chain: for
one-shot tools such as contract deployment.
"""

from __future__ import annotations

import threading
from typing import Protocol

from web3 import Web3

from secureflow.ledger.store.base import LedgerStore


class NonceSource(Protocol):
    """Hands out the next nonce for an address."""

    def next_nonce(self, address: str) -> int: ...

    def resync(self, address: str) -> None: ...


def pending_nonce(w3: Web3, address: str) -> int:
    """The chain's transaction count for ``address`` including the pool."""
    return int(w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))


class ChainNonceSource:
    """In-memory nonces seeded from the chain's pending count."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_nonce(self, address: str) -> int:
        with self._lock:
            if address not in self._next:
                self._next[address] = pending_nonce(self._w3, address)
            nonce = self._next[address]
            self._next[address] = nonce + 1
            return nonce

    def resync(self, address: str) -> None:
        with self._lock:
            self._next[address] = pending_nonce(self._w3, address)


class StoreNonceSource:
    """Persistent nonces in the ledger store, floored by the chain's pending count."""

    def __init__(self, store: LedgerStore, w3: Web3, chain_id: int) -> None:
        self._store = store
        self._w3 = w3
        self._chain_id = chain_id
        self._floor: dict[str, int] = {}
        self._lock = threading.Lock()

    def next_nonce(self, address: str) -> int:
        with self._lock:
            floor = self._floor.get(address)
            if floor is None:
                floor = self._floor[address] = pending_nonce(self._w3, address)
        return self._store.allocate_nonce(self._chain_id, address, floor)

    def resync(self, address: str) -> None:
        chain_next = pending_nonce(self._w3, address)
        with self._lock:
            self._floor[address] = chain_next
        self._store.reset_nonce(self._chain_id, address, chain_next)
