"""Receipts served by the API, with each batch's Merkle tree cached (a tree is fixed by its root).

Same receipts as `ledger.receipts.build_receipt` (it is what this calls into),
but the tree of a batch is built once: rebuilding a 2,000-leaf tree per
request dominated receipt latency. The cache key is (batch id, root), and a
tree is only cached after it rebuilt the batch's stored root.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ledger.errors import UnknownRecordError
from ledger.merkle import MerkleTree
from ledger.receipts import Receipt, anchored_batch, batch_tree, receipt_for
from ledger.store.base import LedgerStore


class ReceiptCache:
    """Issues receipts with an LRU cache of batch trees."""

    def __init__(self, store: LedgerStore, chain_id: int, contract: str, max_trees: int = 64) -> None:
        self.store, self.chain_id, self.contract = store, chain_id, contract
        self.max_trees = max_trees
        self._trees: OrderedDict[tuple[str, str], MerkleTree] = OrderedDict()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    def receipt(self, job_id: str, seq: int) -> Receipt:
        row = self.store.get_record(job_id, seq)
        if row is None:
            raise UnknownRecordError(f"no step record {seq} of job {job_id} in the ledger store")
        batch = anchored_batch(row, self.store.get_batch(row.batch_id) if row.batch_id else None)
        key = (batch.batch_id, batch.root)
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
        if tree is None:
            with self._build_lock:  # concurrent requests for a new batch build its tree once
                with self._lock:
                    tree = self._trees.get(key)
                if tree is None:
                    tree = batch_tree(self.store, batch)
                    with self._lock:
                        self._trees[key] = tree
                        while len(self._trees) > self.max_trees:
                            self._trees.popitem(last=False)
        return receipt_for(row, batch, tree, self.chain_id, self.contract)
