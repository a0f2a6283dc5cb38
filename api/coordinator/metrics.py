"""The coordinator's Prometheus metrics and health: what ``secureflow coordinator --metrics-port`` serves.

``/metrics``: deliveries of the job task by what the coordinator did with them (``ran``, ``busy``,
``ended_already``, ``failed_orphan``, ``not_started``, ``unknown``, ``retry``), jobs running now, the
configured concurrency, and how long each job it ran took. ``/healthz`` answers while the process lives;
``/readyz`` while its database answers (the coordinator reads manifests and claims jobs there). Labels
carry no job ids, addresses or hashes.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ACTIONS = ("ran", "busy", "ended_already", "failed_orphan", "not_started", "unknown", "retry")


class CoordinatorMetrics:
    """The metrics of one coordinator process, on their own registry."""

    def __init__(self, concurrency: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "secureflow_coordinator_deliveries_total",
            "job task deliveries by what this coordinator did with them",
            ["action"],
            registry=self.registry,
        )
        for action in ACTIONS:
            self.deliveries.labels(action)
        self.running = Gauge(
            "secureflow_coordinator_jobs_running", "jobs this coordinator runs now", registry=self.registry
        )
        self.concurrency = Gauge(
            "secureflow_coordinator_concurrency", "jobs this coordinator runs at most", registry=self.registry
        )
        self.concurrency.set(concurrency)
        self.worker_restarts = Counter(
            "secureflow_coordinator_worker_restarts_total",
            "times the Celery worker stopped without a stop signal (its broker connection lost beyond "
            "repair in place) and was started again",
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "secureflow_coordinator_job_seconds",
            "wall time of each job this coordinator ran, from claim to its end",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=self.registry,
        )

    def delivered(self, action: str) -> None:
        self.deliveries.labels(action if action in ACTIONS else "unknown").inc()


def readiness(ping_database: Callable[[], object]) -> Callable[[], tuple[bool, str]]:
    """``/readyz`` of the coordinator: ready while its database answers."""

    def ready() -> tuple[bool, str]:
        try:
            ping_database()
        except Exception as exc:  # the class only: a message may name the database URL
            return False, f"the database does not answer ({type(exc).__name__})"
        return True, "the database answers"

    return ready
