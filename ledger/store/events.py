"""The chain-event index of the SQL ledger store: indexed events and block hashes, reorg rollback.

Indexing a ``JobCreated`` event of a job this store knows but still holds as not on chain (its
``createJob`` was sent and the sender gave up waiting: a timeout, a crash) records the job as created
on chain, with the event's transaction, in the same transaction as the event: the anchoring service then
closes it like any other job, so no job is left open on chain for ever."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update

from secureflow.ledger.store.models import ChainEventOrm, CheckpointOrm, IndexedBlockOrm, JobOrm, utcnow
from secureflow.ledger.store.schemas import ChainEvent, IndexedBlock, NewChainEvent
from secureflow.ledger.store.sqlbase import SqlStoreBase, _hex32, _to, _uint


class EventsMixin(SqlStoreBase):
    """The store's indexed chain events and blocks (and the indexer's checkpoint moves)."""

    def index_events(
        self, events: Sequence[NewChainEvent], blocks: Sequence[IndexedBlock], checkpoint: str
    ) -> None:
        if not blocks:
            raise ValueError("index_events needs at least the block the checkpoint moves to")
        last = max(blocks, key=lambda b: b.block_number)
        now = utcnow()
        with self._tx(write=True) as s:
            for block in blocks:
                s.merge(IndexedBlockOrm(**block.model_dump()))
            for event in events:
                s.add(ChainEventOrm(**event.model_dump()))
                if event.name == "JobCreated" and event.job_id is not None:
                    s.execute(
                        update(JobOrm)
                        .where(JobOrm.job_id == event.job_id, JobOrm.chain_status != "confirmed")
                        .values(chain_status="confirmed", created_tx_hash=event.tx_hash, updated_at=now)
                    )
            values = {
                "name": checkpoint,
                "block_number": last.block_number,
                "block_hash": last.block_hash,
                "updated_at": now,
            }
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )

    def indexed_blocks(self, below_or_at: int, limit: int = 256) -> list[IndexedBlock]:
        with self._tx(write=False) as s:
            rows = s.scalars(
                select(IndexedBlockOrm)
                .where(IndexedBlockOrm.block_number <= below_or_at)
                .order_by(IndexedBlockOrm.block_number.desc())
                .limit(limit)
            )
            return [_to(IndexedBlock, row) for row in rows]

    def rollback_events(self, after_block: int, checkpoint: str, fork_block: IndexedBlock) -> list[str]:
        now = utcnow()
        with self._tx(write=True) as s:
            batch_ids = list(
                s.scalars(
                    select(ChainEventOrm.batch_id).where(
                        ChainEventOrm.block_number > after_block,
                        ChainEventOrm.name == "BatchAnchored",
                    )
                )
            )
            s.execute(delete(ChainEventOrm).where(ChainEventOrm.block_number > after_block))
            s.execute(delete(IndexedBlockOrm).where(IndexedBlockOrm.block_number > after_block))
            values = {
                "name": checkpoint,
                "block_number": fork_block.block_number,
                "block_hash": fork_block.block_hash,
                "updated_at": now,
            }
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )
            return [b for b in batch_ids if b is not None]

    def events(
        self,
        *,
        name: str | None = None,
        batch_id: str | None = None,
        job_id: str | None = None,
        limit: int = 1000,
        after_id: int = 0,
    ) -> list[ChainEvent]:
        _uint(limit, "limit", 100_000)
        query = select(ChainEventOrm).where(ChainEventOrm.id > after_id)
        if name is not None:
            query = query.where(ChainEventOrm.name == name)
        if batch_id is not None:
            query = query.where(ChainEventOrm.batch_id == _hex32(batch_id))
        if job_id is not None:
            query = query.where(ChainEventOrm.job_id == _hex32(job_id))
        with self._tx(write=False) as s:
            rows = s.scalars(query.order_by(ChainEventOrm.id).limit(limit))
            return [_to(ChainEvent, row) for row in rows]
