"""The anchoring worker's Prometheus metrics (``secureflow anchor-worker --metrics-port``).

Two kinds, so that the hot path pays almost nothing:

* **Events**, counted where they happen (a few counter increments per pass, one histogram
  observation per batch): batches formed and their size, batch latency from the acceptance of the
  batch's oldest record to its confirmation, transaction errors by kind, passes, pauses (chain or
  database unreachable), reorgs and their depth, the last chain head seen.
* **State**, read from the store and the nonce allocator only when ``/metrics`` is scraped: records
  by status, the age of the oldest record not yet confirmed, jobs by status, the indexer's
  checkpoint, nonce resyncs and healed gaps.

Every name starts with ``secureflow_``; labels take values from fixed small sets (statuses, error kinds,
exception class names), never a job id, an address, a hash or an error message. The README's
operations section lists them; ``scripts/ops/`` holds alert rules and a Grafana dashboard built on them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from secureflow.ledger.store.base import LedgerStore

if TYPE_CHECKING:
    from secureflow.ledger.anchoring import PassReport

log = logging.getLogger(__name__)

TxErrorKind = Literal[
    "nonce_too_low",
    "reverted",
    "not_known_to_node",
    "unmined_timeout",
    "no_anchor_event",
    "refused",
]
TX_ERROR_KINDS: tuple[TxErrorKind, ...] = (
    "nonce_too_low",
    "reverted",
    "not_known_to_node",
    "unmined_timeout",
    "no_anchor_event",
    "refused",
)
"""``nonce_too_low``: the node refused the nonce (re-signed); ``reverted``: mined with status 0 (adopted
if the batch is anchored, else re-sent); ``not_known_to_node``: the transaction vanished (dropped, pool
lost, crash before broadcast; re-sent); ``unmined_timeout``: not mined within ``resend_after``
(re-sent); ``no_anchor_event``: succeeded without the ledger's event (no ledger code at the address);
``refused``: a model or close the contract refuses (simulated before sending; not retried). A batch the
contract refuses for its content is counted as ``secureflow_anchoring_events_total{object="batches",
event="refused"}`` (bisected), the record found alone as ``{object="records",event="quarantined"}``."""

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 100_000)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0)
REORG_DEPTH_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 1_000)

_PASS_EVENTS: tuple[tuple[str, str, str], ...] = (
    ("batches", "sent", "batches_sent"),
    ("batches", "mined", "batches_mined"),
    ("batches", "confirmed", "batches_confirmed"),
    ("batches", "requeued", "batches_requeued"),
    ("batches", "adopted", "batches_adopted"),
    ("records", "batched", "records_batched"),
    ("records", "confirmed", "records_confirmed"),
    ("models", "sent", "models_sent"),
    ("models", "confirmed", "models_confirmed"),
    ("models", "failed", "models_failed"),
    ("closes", "sent", "closes_sent"),
    ("closes", "confirmed", "closes_confirmed"),
)


class AnchoringMetrics:
    """The worker's metrics in a registry of their own (several workers may live in one test process)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, confirmations: int = 1) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.batch_size = Histogram(
            "secureflow_anchoring_batch_size_records",
            "Records per Merkle batch formed (one anchorBatch transaction each)",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_latency = Histogram(
            "secureflow_anchoring_batch_latency_seconds",
            "Seconds from the acceptance of a batch's oldest record to the batch's confirmation (batches "
            "formed by this process)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tx_errors = Counter(
            "secureflow_anchoring_tx_errors",
            "Anchoring-service transactions that went wrong, by kind (each is retried, adopted or, for "
            "'refused', given up with its reason stored)",
            ["kind"],
            registry=r,
        )
        for kind in TX_ERROR_KINDS:
            self.tx_errors.labels(kind)
        self.events = Counter(
            "secureflow_anchoring_events",
            "What the worker's passes did: batches sent/mined/confirmed/requeued/adopted/refused (by the "
            "contract, for their content: bisected), records batched/confirmed/quarantined (never anchored: "
            "failed with a reason starting 'quarantined:'), models and job closes sent/confirmed/failed",
            ["object", "event"],
            registry=r,
        )
        self._event_children = {field: self.events.labels(obj, event) for obj, event, field in _PASS_EVENTS}
        # Counted where they happen, not from the pass's report: a pass that fails later still counts them.
        self._refused_batches = self.events.labels("batches", "refused")
        self._quarantined_records = self.events.labels("records", "quarantined")
        self.passes = Counter(
            "secureflow_anchoring_passes", "Worker passes completed without error", registry=r
        )
        self.last_pass = Gauge(
            "secureflow_anchoring_last_pass_timestamp_seconds",
            "Unix time the last pass completed",
            registry=r,
        )
        self.pauses = Counter(
            "secureflow_anchoring_pauses",
            "Passes that stopped on an outage (chain or database unreachable, ledger code gone), by error "
            "class; the worker waits and retries",
            ["error"],
            registry=r,
        )
        self.paused = Gauge(
            "secureflow_anchoring_paused",
            "1 while the worker waits out an outage (its last pass failed), else 0",
            registry=r,
        )
        self.head = Gauge(
            "secureflow_anchoring_head_block", "The chain head the worker saw in its last pass", registry=r
        )
        self.confirmations = Gauge(
            "secureflow_anchoring_confirmations",
            "Blocks (the anchor's included) a batch needs to count as confirmed",
            registry=r,
        )
        self.confirmations.set(confirmations)
        self.reorgs = Counter(
            "secureflow_chain_reorgs",
            "Chain reorganisations the event indexer found (each rolls back events and re-anchors batches)",
            registry=r,
        )
        self.deep_reorgs = Counter(
            "secureflow_chain_reorgs_beyond_confirmations",
            "Reorganisations at least as deep as the confirmation depth: a batch counted as confirmed may "
            "have been undone (it is re-anchored)",
            registry=r,
        )
        self.reorg_depth = Histogram(
            "secureflow_chain_reorg_depth_blocks",
            "Blocks replaced by each reorganisation (indexed checkpoint minus fork point)",
            buckets=REORG_DEPTH_BUCKETS,
            registry=r,
        )
        self._confirmations = confirmations
        self._oldest_accepted: dict[str, datetime] = {}

    # -- events (called by the worker) -----------------------------------------------------------------
    def batch_formed(self, batch_id: str, size: int, oldest_accepted: datetime) -> None:
        self.batch_size.observe(size)
        self._oldest_accepted[batch_id] = oldest_accepted

    def batch_confirmed(self, batch_id: str) -> None:
        oldest = self._oldest_accepted.pop(batch_id, None)
        if oldest is not None:
            self.batch_latency.observe((datetime.now(timezone.utc) - oldest).total_seconds())

    def batch_failed(self, batch_id: str) -> None:
        self._oldest_accepted.pop(batch_id, None)

    def batch_refused(self, batch_id: str) -> None:
        """The contract refused a batch for its content (it is dissolved and bisected)."""
        self._refused_batches.inc()
        self.batch_failed(batch_id)

    def record_quarantined(self) -> None:
        """A record that can never be anchored was given up on (``failed``, reason ``quarantined: …``)."""
        self._quarantined_records.inc()

    def tx_error(self, kind: TxErrorKind) -> None:
        self.tx_errors.labels(kind).inc()

    def pass_done(self, report: PassReport, head: int | None) -> None:
        for field, child in self._event_children.items():
            count = getattr(report, field)
            if count:
                child.inc(count)
        self.passes.inc()
        self.last_pass.set(time.time())
        self.paused.set(0)
        if head is not None:
            self.head.set(head)

    def pass_failed(self, exc: BaseException) -> None:
        self.pauses.labels(type(exc).__name__).inc()
        self.paused.set(1)

    def reorg(self, depth: int) -> None:
        self.reorgs.inc()
        self.reorg_depth.observe(depth)
        if depth >= self._confirmations:
            self.deep_reorgs.inc()

    # -- state (read at scrape time) -------------------------------------------------------------------
    def watch(self, store: LedgerStore, *, nonces: object, checkpoint: str) -> None:
        """Also export the store's state and the nonce allocator's counters when scraped."""
        self.registry.register(LedgerStateCollector(store, nonces, checkpoint))


class LedgerStateCollector(Collector):
    """Records and jobs by status, the oldest record not yet confirmed, the indexer checkpoint and the
    nonce allocator's counters, read when scraped (a scrape never fails because the DB is down: the
    store's figures are left out and ``secureflow_anchoring_store_up`` says 0)."""

    def __init__(self, store: LedgerStore, nonces: object, checkpoint: str) -> None:
        self.store = store
        self.nonces = nonces
        self.checkpoint = checkpoint

    def _store_metrics(self) -> Iterator[Metric]:
        records = self.store.count_records_by_status()
        jobs = self.store.count_jobs_by_status()
        oldest = self.store.oldest_unconfirmed_accepted_at()
        checkpoint = self.store.get_checkpoint(self.checkpoint)
        by_status = GaugeMetricFamily(
            "secureflow_anchoring_records",
            "Step records in the ledger outbox by anchoring status (pending + submitted = the backlog)",
            labels=["status"],
        )
        for status, count in records.items():
            by_status.add_metric([status], count)
        yield by_status
        age = 0.0 if oldest is None else (datetime.now(timezone.utc) - oldest).total_seconds()
        yield GaugeMetricFamily(
            "secureflow_anchoring_oldest_pending_age_seconds",
            "Seconds since the oldest record not yet confirmed (pending or submitted) was accepted (0: none)",
            value=max(0.0, age),
        )
        by_job = GaugeMetricFamily("secureflow_jobs", "Jobs in the ledger by status", labels=["status"])
        for status, count in jobs.items():
            by_job.add_metric([status], count)
        yield by_job
        if checkpoint is not None:
            yield GaugeMetricFamily(
                "secureflow_indexer_checkpoint_block",
                "The last block the event indexer processed",
                value=checkpoint.block_number,
            )

    def collect(self) -> Iterator[Metric]:
        try:
            found = list(self._store_metrics())
        except Exception as exc:  # a scrape must not fail because the DB is down
            log.warning("metrics: cannot read the store (%s)", type(exc).__name__)
            found = []
        yield GaugeMetricFamily(
            "secureflow_anchoring_store_up",
            "1 if the last scrape could read the ledger database, else 0",
            value=1 if found else 0,
        )
        yield from found
        for attribute, name, documentation in (
            ("resyncs", "secureflow_nonce_resyncs", "Nonce counter reset to the chain's pending nonce"),
            (
                "gaps_healed",
                "secureflow_nonce_gaps_healed",
                "Times the chain was found behind the handed-out nonces and the counter went back",
            ),
        ):
            value = getattr(self.nonces, attribute, None)
            if isinstance(value, int):
                yield CounterMetricFamily(name, documentation, value=value)
