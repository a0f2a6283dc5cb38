"""The API's hot read paths: a page of a job's audit trail and a step's receipt, as ready JSON bytes.

Under load these two routes are most of the traffic (auditors paging through a job's steps, clients
fetching receipts), so each is one short query on one connection and one serialisation:

- the steps page is one SQLAlchemy Core statement (built once by the ledger's read interface,
  `secureflow.ledger.store.audit_reads.AuditReads.steps_page_rows`: only the columns the page shows, no ORM
  objects, rows as plain tuples), keyset-paginated by ``seq``; the receipt is one Core query for the record
  and its batch (`LedgerStore.record_with_batch`) plus a Merkle proof from the batch's cached tree
  (`secureflow.ledger.receipts.BatchTreeCache`: ~13 hashes instead of rebuilding a 2,000-leaf tree);
- a job's creator and parties never change, so the data-scope check needs no query once a job was seen
  (`JobScopes`); a job that does not exist is not cached, so it is found as soon as it is created;
- the response data is built once as plain dicts and serialised with orjson; the routes still declare
  their response models (``Page[StepOut]``, ``Receipt``) for the OpenAPI contract, and the tests check
  that these bytes decode to exactly what the models give;
- where the work runs: on SQLite a read is in-process CPU work (no network wait; WAL readers never wait for
  writers), so it runs right on the event loop: a thread hop per request and the GIL hand-offs between the
  loop and worker threads cost more than the read itself (measured: ~0.4 ms CPU per request, and a longer
  latency tail). What may wait or take long goes to a worker thread even on SQLite: the audit index sync
  (it writes), and building a batch's Merkle tree the first time. On PostgreSQL every read goes to worker
  threads, at most as many at once as the engine's pool has connections, so that a burst of requests waits
  for a pooled connection instead of each opening (and closing) a new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import Response

from secureflow.api.server.auth import can_see, job_not_visible
from secureflow.api.server.db import ApiDb, Principal
from secureflow.api.server.errors import UnavailableError
from secureflow.ledger.errors import UnknownRecordError
from secureflow.ledger.receipts import BatchTreeCache, anchored_batch, receipt_data
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.engine import mask_url

T = TypeVar("T")
_MAX_SCOPES = 100_000


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any) -> bytes:
    """Compact JSON as pydantic's JSON mode writes it (UTC datetimes with ``Z``), via orjson when it can.

    orjson refuses integers beyond 64 bits (a record could hold one): those fall back to the json module.
    """
    try:
        return orjson.dumps(data, option=orjson.OPT_UTC_Z)
    except TypeError:
        return json.dumps(data, default=_iso, separators=(",", ":"), ensure_ascii=False).encode()


class JsonBytes(Response):
    """A response whose body is already JSON bytes (the hot routes build and serialise their data once)."""

    media_type = "application/json"


class JobScopes:
    """job id -> (creator, parties) of the jobs seen: immutable, so the data-scope check needs no query."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self._known: dict[str, tuple[str, tuple[str, ...]]] = {}

    def check(self, principal: Principal, job_id: str) -> None:
        """Raise the 404 of `auth.visible_job` unless the job exists and the caller may see it."""
        scope = self._known.get(job_id)
        if scope is None:
            job = self.store.get_job(job_id)
            if job is None:
                raise job_not_visible(job_id)
            scope = (job.creator, tuple(job.parties))
            if len(self._known) >= _MAX_SCOPES:
                self._known.clear()
            self._known[job_id] = scope
        if not can_see(principal, *scope):
            raise job_not_visible(job_id)


class _NeedsThread(Exception):
    """Raised by an inline read that would have to write or do long work: run it in a worker thread."""


class HotReads:
    """The steps page and the receipt of the API's hot routes (one per app; thread-safe)."""

    def __init__(
        self, store: LedgerStore, db: ApiDb, chain_id: int, contract: str, trees: BatchTreeCache | None = None
    ) -> None:
        self.store, self.db = store, db
        self.chain_id, self.contract = chain_id, contract
        self.scopes = JobScopes(store)
        self.trees = trees if trees is not None else BatchTreeCache()
        self.inline = db.engine.dialect.name == "sqlite"
        self.threads = _pool_size(db.engine)
        self._limiter: RunVar[CapacityLimiter] = RunVar(f"secureflow-db-threads-{id(self)}")

    async def steps_page_json(self, principal: Principal, job_id: str, after_seq: int, limit: int) -> bytes:
        """`steps_page`, where it runs best (see the module docstring)."""
        if self.inline:
            try:
                return self.steps_page(principal, job_id, after_seq, limit, blocking=False)
            except _NeedsThread:
                pass
        return await self.run(self.steps_page, principal, job_id, after_seq, limit)

    async def receipt_json(self, principal: Principal, job_id: str, seq: int) -> bytes:
        """`receipt`, where it runs best (see the module docstring)."""
        if self.inline:
            try:
                return self.receipt(principal, job_id, seq, blocking=False)
            except _NeedsThread:
                pass
        return await self.run(self.receipt, principal, job_id, seq)

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call(*args)`` in a worker thread, at most as many at once as the pool has connections."""
        try:
            limiter = self._limiter.get()
        except LookupError:  # first use in this event loop
            limiter = CapacityLimiter(self.threads)
            self._limiter.set(limiter)
        return await to_thread.run_sync(call, *args, limiter=limiter)

    # -- steps page -------------------------------------------------------------------------------------
    def steps_page(
        self, principal: Principal, job_id: str, after_seq: int, limit: int, *, blocking: bool = True
    ) -> bytes:
        """``Page[StepOut]`` of the job's records with seq greater than ``after_seq``, as JSON.

        With ``blocking=False`` it raises `_NeedsThread` instead of syncing the audit index (a write).
        """
        self.scopes.check(principal, job_id)
        rows = self._page_rows(job_id, after_seq, limit + 1)
        if any(row.algorithm is None for row in rows):
            # Records accepted since the audit index was last synced (by any process): index them.
            if not blocking:
                raise _NeedsThread
            self.db.sync_record_index()
            rows = self._page_rows(job_id, after_seq, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        items = []
        # Rows unpacked by position (attribute access on each of ~1,300 values is a measurable cost).
        for (
            seq,
            algorithm,
            started,
            finished,
            record_hash,
            leaf,
            status,
            batch_id,
            tx,
            block,
            accepted,
            confirmed,
            failure_reason,
        ) in page:
            anchored = status in ("submitted", "confirmed")
            if algorithm is None:  # accepted after the sync above, this instant
                algorithm, started, finished = self._index_fields(job_id, seq)
            items.append(
                {
                    "job_id": job_id,
                    "seq": seq,
                    "algorithm": algorithm,
                    "started_at_ms": started,
                    "finished_at_ms": finished,
                    "record_hash": record_hash,
                    "leaf": leaf,
                    "chain_status": status,
                    "batch_id": batch_id,
                    "tx_hash": tx if anchored else None,
                    "block_number": block if anchored else None,
                    "accepted_at": accepted,
                    "confirmed_at": confirmed,
                    "failure_reason": failure_reason,
                }
            )
        return dumps({"items": items, "next_cursor": str(page[-1][0]) if more else None})

    def _index_fields(self, job_id: str, seq: int) -> tuple[str, int, int]:
        """What the audit index holds for a record (as `ApiDb.sync_record_index` derives it)."""
        row = self.store.get_record(job_id, seq)
        try:
            record = json.loads(row.record_json) if row is not None else {}
        except ValueError:
            record = {}
        return (
            str(record.get("algorithm", ""))[:64],
            int(record.get("started_at_ms", 0) or 0),
            int(record.get("finished_at_ms", 0) or 0),
        )

    def _page_rows(self, job_id: str, after_seq: int, limit: int) -> Sequence[Any]:
        try:
            with self.db.engine.connect() as connection:
                return self.db.audit.steps_page_rows(connection, job_id, after_seq, limit)
        except DBAPIError as exc:
            raise UnavailableError(
                f"the database at {mask_url(self.db.engine.url)} failed: {type(exc.orig).__name__}",
                hint="check the database is reachable, then retry",
            ) from exc

    # -- receipt ----------------------------------------------------------------------------------------
    def receipt(self, principal: Principal, job_id: str, seq: int, *, blocking: bool = True) -> bytes:
        """The step's ``Receipt`` as JSON; the ledger's errors (unknown, not anchored, inconsistent) as is.

        With ``blocking=False`` it raises `_NeedsThread` instead of building the batch's Merkle tree.
        """
        self.scopes.check(principal, job_id)
        found = self.store.record_with_batch(job_id, seq)
        if found is None:
            raise UnknownRecordError(f"no step record {seq} of job {job_id} in the ledger store")
        row, batch = found
        anchored = anchored_batch(row, batch)
        tree = self.trees.cached(anchored)
        if tree is None:
            if not blocking:
                raise _NeedsThread
            tree = self.trees.tree(self.store, anchored)
        return dumps(receipt_data(row, anchored, tree, self.chain_id, self.contract))


def hot_reads(request: Request) -> HotReads:
    """The app's `HotReads` (built by `secureflow.api.server.app.create_app`)."""
    found = request.app.state.reads
    assert isinstance(found, HotReads)  # noqa: S101 - invariant for the type checker, not input validation
    return found


def _pool_size(engine: Engine) -> int:
    """Connections the engine keeps (QueuePool's size; 1 for a single shared connection)."""
    size = getattr(engine.pool, "size", None)
    return max(1, int(size())) if callable(size) else 1
