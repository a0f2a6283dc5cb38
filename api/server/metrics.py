"""Prometheus metrics of one app: request latency, anchoring queue depth, records by status, stuck jobs,
head lag; with an in-process anchoring worker, the worker's own metrics too
(`secureflow.ledger.anchoring_metrics`).

Each app has its own registry (several apps may live in one test process). The
ledger figures are read from the store when ``/metrics`` is scraped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from secureflow.ledger.store.base import LedgerStore

log = logging.getLogger("secureflow.api.server.metrics")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LedgerCollector(Collector):
    """Records by status, the anchoring queue depth, stuck jobs (running, not updated for longer than
    ``stuck_after_seconds``) and the event indexer's lag behind the chain head."""

    def __init__(
        self,
        store: LedgerStore,
        head: Callable[[], int],
        checkpoint: str,
        *,
        stuck_after_seconds: float = 900.0,
    ) -> None:
        self.store = store
        self.head = head
        self.checkpoint = checkpoint
        self.stuck_after_seconds = stuck_after_seconds

    def _stuck_jobs(self) -> Iterator[Metric]:
        idle_since = datetime.now(timezone.utc) - timedelta(seconds=self.stuck_after_seconds)
        try:
            stuck = self.store.count_stuck_jobs(idle_since)
        except Exception as exc:  # a scrape must not fail because the DB is down
            log.warning("metrics: cannot count stuck jobs", extra={"error": type(exc).__name__})
            return
        yield GaugeMetricFamily(
            "secureflow_jobs_stuck",
            "Running jobs with no status change and no new step record for longer than stuck_after_seconds",
            value=stuck,
        )

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.store.count_records_by_status()
        except Exception as exc:  # a scrape must not fail because the DB is down
            log.warning("metrics: cannot count records", extra={"error": type(exc).__name__})
            counts = {}
        by_status = GaugeMetricFamily(
            "secureflow_records", "Step records in the ledger outbox by anchoring status", labels=["status"]
        )
        for status, count in counts.items():
            by_status.add_metric([status], count)
        yield by_status
        yield from self._stuck_jobs()
        if counts:
            yield GaugeMetricFamily(
                "secureflow_anchoring_queue_depth",
                "Records accepted but not yet confirmed (pending + submitted)",
                value=counts.get("pending", 0) + counts.get("submitted", 0),
            )
        try:
            checkpoint = self.store.get_checkpoint(self.checkpoint)
            head = self.head()
        except Exception as exc:
            log.warning("metrics: cannot read the chain head", extra={"error": type(exc).__name__})
            return
        yield GaugeMetricFamily("secureflow_chain_head", "Latest block number of the chain node", value=head)
        if checkpoint is not None:
            yield GaugeMetricFamily(
                "secureflow_chain_head_lag_blocks",
                "Blocks between the chain head and the last block the event indexer processed",
                value=max(0, head - checkpoint.block_number),
            )


class ApiMetrics:
    """The app's registry and its request latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "secureflow_api_request_seconds",
            "API request latency by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def add_ledger(self, collector: LedgerCollector) -> None:
        self.registry.register(collector)

    def add_registry(self, registry: CollectorRegistry) -> None:
        """Serve another registry's metrics too (the in-process anchoring worker's)."""
        self.registry.register(_Forward(registry))


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.source = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()
