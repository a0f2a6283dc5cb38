"""Receipts served by the API, with each batch's Merkle tree cached (a tree is fixed by its root).

Same receipts as `secureflow.ledger.receipts.build_receipt` (it is what this calls into),
but the tree of a batch is built once per process (`secureflow.ledger.receipts.BatchTreeCache`,
shared with the hot read paths of `secureflow.api.server.reads`): rebuilding a 2,000-leaf tree per
request dominated receipt latency.
"""

from __future__ import annotations

from secureflow.ledger.errors import UnknownRecordError
from secureflow.ledger.receipts import BatchTreeCache, Receipt, anchored_batch, receipt_for
from secureflow.ledger.store.base import LedgerStore


class ReceiptCache:
    """Issues receipts from the store, with the batch trees of a shared `BatchTreeCache`."""

    def __init__(
        self, store: LedgerStore, chain_id: int, contract: str, trees: BatchTreeCache | None = None
    ) -> None:
        self.store, self.chain_id, self.contract = store, chain_id, contract
        self.trees = trees if trees is not None else BatchTreeCache()

    def receipt(self, job_id: str, seq: int) -> Receipt:
        found = self.store.record_with_batch(job_id, seq)  # one query (a page of receipts asks 100 times)
        if found is None:
            raise UnknownRecordError(f"no step record {seq} of job {job_id} in the ledger store")
        row, batch = found[0], anchored_batch(*found)
        return receipt_for(row, batch, self.trees.tree(self.store, batch), self.chain_id, self.contract)
