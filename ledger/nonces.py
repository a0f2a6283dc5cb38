"""Nonce allocation per sending account.

`StoreNonceSource` is the production allocator: the next nonce per (chain,
sender) lives in the ledger database, so it survives restarts and is shared by
every process that sends from the same key; allocation is atomic in the DB.
The chain's pending transaction count is the floor, so a store that is behind
the chain (another tool sent from the key) catches up by itself.

It also heals the opposite: a chain that is *behind* the store (a dev chain
restarted fresh under an old database, a node that lost its transaction pool,
a node restored from a snapshot). Every allocation compares the chain's
pending nonce with what was handed out minus what this process has handed
out but not yet given to the node (`release` is called once a transaction
was broadcast or given up). If the chain is below that, the nonces in
between were lost with the node's pool or never reached it: the counter goes
back to the chain's pending nonce, so the new transaction fills the gap
instead of waiting behind it for ever. The owners of the lost transactions
(the anchoring worker's write-ahead batches, models and closes; a sender
waiting for a receipt) find their transaction unknown to the node and
re-sign it, in nonce order. Nonces another process handed out and has not
broadcast yet are not visible here: should one be re-used, the node refuses
the second transaction ("nonce too low" / "replacement transaction
underpriced") and its sender re-signs it with a fresh nonce.

A transaction the node holds but cannot mine because a nonce below it is
missing (dropped from the pool, or never sent by a crashed process) is not
left waiting: `secureflow.ledger.chain.TransactionSender.wait` fills the
missing nonces with zero-value transfers to the sender itself, unless this
process is about to send them.

`resync` resets the counter to the chain's pending count; the sender calls it
on "nonce too low", and a caller that finds a transaction dropped from the
pool calls it before re-sending.

`ChainNonceSource` keeps the counter in memory, seeded from the chain: for
one-shot tools such as contract deployment.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from web3 import Web3

from secureflow.ledger.store.base import LedgerStore

log = logging.getLogger(__name__)


class NonceSource(Protocol):
    """Hands out the next nonce for an address."""

    def next_nonce(self, address: str) -> int: ...

    def release(self, address: str, nonce: int) -> None:
        """The transaction holding ``nonce`` was handed to the node (or given up): no longer unsent."""
        ...

    def unsent_below(self, address: str, nonce: int) -> bool:
        """Whether this process handed out a nonce below ``nonce`` that is not broadcast yet."""
        ...

    def resync(self, address: str) -> None: ...


def pending_nonce(w3: Web3, address: str) -> int:
    """The chain's transaction count for ``address`` including the pool."""
    return int(w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))


class ChainNonceSource:
    """In-memory nonces seeded from the chain's pending count."""

    def __init__(self, w3: Web3) -> None:
        self._w3 = w3
        self._next: dict[str, int] = {}
        self._unsent: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def next_nonce(self, address: str) -> int:
        with self._lock:
            if address not in self._next:
                self._next[address] = pending_nonce(self._w3, address)
            nonce = self._next[address]
            self._next[address] = nonce + 1
            self._unsent.setdefault(address, set()).add(nonce)
            return nonce

    def release(self, address: str, nonce: int) -> None:
        with self._lock:
            self._unsent.get(address, set()).discard(nonce)

    def unsent_below(self, address: str, nonce: int) -> bool:
        with self._lock:
            return any(n < nonce for n in self._unsent.get(address, ()))

    def resync(self, address: str) -> None:
        with self._lock:
            self._next[address] = pending_nonce(self._w3, address)


class StoreNonceSource:
    """Persistent nonces in the ledger store, floored by the chain's pending count, gaps healed."""

    def __init__(self, store: LedgerStore, w3: Web3, chain_id: int) -> None:
        self._store = store
        self._w3 = w3
        self._chain_id = chain_id
        self._unsent: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self.gaps_healed = 0
        """How many times the chain was found behind the store and the counter went back (tests, metrics)."""
        self.resyncs = 0
        """How many times `resync` reset the counter to the chain's pending nonce (metrics)."""

    def next_nonce(self, address: str) -> int:
        with self._lock:
            chain_next = pending_nonce(self._w3, address)
            unsent = self._unsent.setdefault(address, set())
            stored = self._store.peek_nonce(self._chain_id, address)
            expected = min(unsent) if unsent else stored
            if expected is not None and chain_next < expected:
                log.warning(
                    "nonce gap for %s on chain %s: the node's next nonce is %s but nonces up to %s were "
                    "handed out (restarted or restored node, lost pool, or a transaction never sent); "
                    "going on from %s, lost transactions are re-signed by their senders",
                    address,
                    self._chain_id,
                    chain_next,
                    expected - 1,
                    chain_next,
                )
                self._store.reset_nonce(self._chain_id, address, chain_next)
                self.gaps_healed += 1
            nonce = self._store.allocate_nonce(self._chain_id, address, chain_next)
            while nonce in unsent:  # the gap was below a nonce another thread is about to send
                nonce = self._store.allocate_nonce(self._chain_id, address, chain_next)
            unsent.add(nonce)
            return nonce

    def release(self, address: str, nonce: int) -> None:
        with self._lock:
            self._unsent.get(address, set()).discard(nonce)

    def unsent_below(self, address: str, nonce: int) -> bool:
        with self._lock:
            return any(n < nonce for n in self._unsent.get(address, ()))

    def resync(self, address: str) -> None:
        chain_next = pending_nonce(self._w3, address)
        self._store.reset_nonce(self._chain_id, address, chain_next)
        self.resyncs += 1
