"""The event indexer: follows the audit ledger's events into the database and rolls back on reorgs.

Each poll first checks that the block at the checkpoint still has the hash
seen there. If not (or the node has no such block any more: a chain restarted
fresh), the chain reorganised: the indexer walks back through the
block hashes it stored until one is still canonical (the fork point), drops
every event above it, and sends every batch anchored above it back to be
re-anchored (`LedgerStore.requeue_batch`). Then it fetches the next range of
logs with one ``eth_getLogs`` filtered by the contract address and the
event topics, decodes them, and stores them with the hashes (and parent
hashes) of their blocks and of the range's last block, moving the checkpoint
in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak
from web3.contract import Contract
from web3.exceptions import BlockNotFound
from web3.types import LogReceipt

from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import hex32
from secureflow.ledger.store.protocols import IndexerStore
from secureflow.ledger.store.schemas import IndexedBlock, NewChainEvent

log = logging.getLogger(__name__)

INDEXED_EVENTS = ("BatchAnchored", "JobCreated", "JobConsented", "JobOpened", "JobClosed", "ModelRecorded")


@dataclass
class IndexReport:
    from_block: int = 0
    to_block: int = -1
    events: int = 0
    reorg_fork_block: int | None = None
    reorg_depth: int | None = None
    """Blocks replaced by the reorganisation found in this poll (checkpoint minus fork point)."""
    requeued_batches: list[str] = field(default_factory=list)
    requeued_models: list[str] = field(default_factory=list)
    requeued_closes: list[str] = field(default_factory=list)


def _json_safe(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)
    return value


class EventIndexer:
    """Indexes the audit ledger's events from ``from_block`` on, under checkpoint ``name``."""

    def __init__(
        self,
        store: IndexerStore,
        client: ChainClient,
        ledger: Contract,
        *,
        from_block: int = 0,
        name: str = "audit-ledger-events",
        max_range: int = 5_000,
    ) -> None:
        self.store = store
        self.client = client
        self.ledger = ledger
        self.from_block = from_block
        self.name = name
        self.max_range = max_range
        self._events = {
            "0x" + keccak(text=self._signature(name)).hex(): getattr(ledger.events, name)()
            for name in INDEXED_EVENTS
        }

    def _signature(self, event: str) -> str:
        entry: Any = next(e for e in self.ledger.abi if e.get("type") == "event" and e.get("name") == event)
        return f"{event}({','.join(str(i['type']) for i in entry['inputs'])})"

    def poll(self) -> IndexReport:
        """Index up to ``max_range`` new blocks (after handling a reorg, if any)."""
        report = IndexReport()
        checkpoint = self.store.get_checkpoint(self.name)
        start = self.from_block
        if checkpoint is not None:
            fork = self._fork_point(checkpoint.block_number, checkpoint.block_hash)
            if fork is not None:
                report.reorg_depth = max(0, checkpoint.block_number - fork.block_number)
                self._roll_back(fork, report)
                start = fork.block_number + 1
            else:
                start = checkpoint.block_number + 1
        head = self.client.block_number()
        if start > head:
            return report
        end = min(head, start + self.max_range - 1)
        logs = self.client.call_rpc(
            self.client.w3.eth.get_logs,
            {
                "address": self.ledger.address,
                "fromBlock": start,
                "toBlock": end,
                "topics": [list(self._events)],
            },
        )
        events = [self._decode(entry) for entry in logs]
        blocks = self._blocks({e.block_number for e in events} | {end})
        self.store.index_events(events, blocks, self.name)
        report.from_block, report.to_block, report.events = start, end, len(events)
        return report

    def catch_up(self) -> int:
        """Poll until the head is reached; returns the number of events indexed."""
        total = 0
        while True:
            report = self.poll()
            total += report.events
            if report.to_block < 0 or report.to_block >= self.client.block_number():
                return total

    def _decode(self, entry: LogReceipt) -> NewChainEvent:
        event = self._events["0x" + bytes(entry["topics"][0]).hex()]
        decoded = event.process_log(entry)
        args = {k: _json_safe(v) for k, v in decoded["args"].items()}
        return NewChainEvent(
            name=str(decoded["event"]),
            block_number=int(entry["blockNumber"]),
            block_hash=hex32(entry["blockHash"]),
            tx_hash=hex32(entry["transactionHash"]),
            log_index=int(entry["logIndex"]),
            batch_id=args.get("batchId"),
            root=args.get("root"),
            job_id=args.get("jobId"),
            args=args,
        )

    def _blocks(self, numbers: Iterable[int]) -> list[IndexedBlock]:
        w3 = self.client.w3
        wanted = sorted(numbers)
        with w3.batch_requests() as batch:
            for number in wanted:
                batch.add(w3.eth.get_block(number))
            headers = self.client.call_rpc(batch.execute)
        return [
            IndexedBlock(
                block_number=int(h["number"]), block_hash=hex32(h["hash"]), parent_hash=hex32(h["parentHash"])
            )
            for h in headers
        ]

    def _fork_point(self, number: int, seen_hash: str) -> IndexedBlock | None:
        """None if the checkpoint block is still canonical, else the newest stored block that is."""
        if self._canonical_hash(number) == seen_hash:
            return None
        below = number
        while True:
            stored = self.store.indexed_blocks(below, limit=64)
            for block in stored:
                if self._canonical_hash(block.block_number) == block.block_hash:
                    return block
            if len(stored) < 64:
                # Below every stored block (or the chain is shorter than them: a node restarted with
                # a fresh chain): roll back to before the deployment, or to the head if it is lower.
                genesis_side = min(max(self.from_block - 1, 0), self.client.block_number())
                return IndexedBlock(
                    block_number=genesis_side,
                    block_hash=self._canonical_hash(genesis_side) or "0x" + "00" * 32,
                    parent_hash="0x" + "00" * 32,
                )
            below = stored[-1].block_number - 1

    def _canonical_hash(self, number: int) -> str | None:
        """The hash of the node's block ``number``; None if the node has no such block (a shorter chain)."""
        try:
            block = self.client.call_rpc(self.client.w3.eth.get_block, number)
        except BlockNotFound:
            return None
        return hex32(block["hash"])

    def _roll_back(self, fork: IndexedBlock, report: IndexReport) -> None:
        log.warning("chain reorganised above block %s: rolling back indexed events", fork.block_number)
        report.reorg_fork_block = fork.block_number
        dropped = set(self.store.rollback_events(fork.block_number, self.name, fork))
        dropped.update(b.batch_id for b in self.store.batches_anchored_after(fork.block_number))
        for batch_id in sorted(dropped):
            batch = self.store.get_batch(batch_id)
            if batch is not None and batch.status in ("submitted", "confirmed"):
                self.store.requeue_batch(batch_id, f"chain reorganised above block {fork.block_number}")
                report.requeued_batches.append(batch_id)
        # A model recorded in a block the reorg replaced may be gone from the chain: back to pending,
        # where the worker adopts it if its recordModel was re-included, or sends it again.
        for model in self.store.models(status="confirmed"):
            if model.block_number is not None and model.block_number > fork.block_number:
                self.store.mark_model(model.model_id, model.version, "pending", tx_hash=None, block=None)
                report.requeued_models.append(f"{model.model_id} v{model.version}")
        # Likewise a job close: the worker adopts it if the job is still closed so on chain, or closes it
        # again once its (re-anchored) records are confirmed.
        for job in self.store.jobs_closed_after(fork.block_number):
            self.store.mark_job_close(job.job_id, "pending")
            report.requeued_closes.append(job.job_id)
