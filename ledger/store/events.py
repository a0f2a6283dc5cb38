"""The chain-event index of the SQL ledger store: indexed events and block hashes, reorg rollback.

Indexing a ``JobCreated`` event of a job this store knows but still holds as not on chain (its
``createJob`` was sent and the sender gave up waiting: a timeout, a crash) records the job as created
on chain, with the event's transaction, in the same transaction as the event, when the event names the
job's own creator and parties (the id binds them already: this is a second check): the anchoring service then
closes it like any other job, so no job is left open on chain for ever."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

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
                    self._adopt_created(s, event, now)
            values = {
                "name": checkpoint,
                "block_number": last.block_number,
                "block_hash": last.block_hash,
                "updated_at": now,
            }
            s.execute(
                self._upsert(s, CheckpointOrm, values, {k: v for k, v in values.items() if k != "name"})
            )

    @staticmethod
    def _adopt_created(s: Session, event: NewChainEvent, now: datetime) -> None:
        """A job of this store created on chain by someone else's transaction (its own, mined after it
        gave up waiting): recorded as on chain if the event names the job's own creator and parties."""
        row = s.get(JobOrm, event.job_id, with_for_update=True)
        if row is None or row.chain_status == "confirmed":
            return
        creator, parties = str(event.args.get("creator", "")), event.args.get("parties") or []
        same = creator.lower() == row.creator.lower() and [str(p).lower() for p in parties] == [
            p.lower() for p in row.parties
        ]
        if same:
            row.chain_status, row.created_tx_hash, row.updated_at = "confirmed", event.tx_hash, now

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
