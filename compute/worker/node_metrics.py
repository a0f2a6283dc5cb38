"""Prometheus metrics and health of one party node (``secureflow node --metrics-port``).

Served by `secureflow.ledger.metrics_server.serve_metrics` (``/metrics``, ``/healthz``, ``/readyz``).
What a node exports, all prefixed ``secureflow_node_``:

* ``up`` (1 while it serves its queue), ``info{party}``, ``heartbeat_timestamp_seconds`` (its heartbeat
  loop ticks every second, with or without a session: a stale value means a hung node),
  ``heartbeats_total{result}`` (heartbeats written to Redis for the current session, ``ok``/``error``),
  ``queue_up`` (the last read of its Redis queue succeeded);
* ``session_active`` and ``session_info{session}`` (the first 8 characters of the newest engine session's id,
  as the node's log shows them), ``sessions_total``;
* ``worker_state{state}`` (one of idle, starting, running, exited is 1), ``worker_starts_total``,
  ``worker_exits_total{outcome}`` (``clean``: code 0, ``error``: another code, ``signal``: killed,
  ``unknown``: no code);
* ``log_requests_total{result}``: job log requests (`secureflow.compute.joblogs`) answered, answered
  with "no log of that job here" (``no_log``), or ``dropped`` unanswered;
* ``requests_total{op}``: requests relayed to the party worker by operation; the steps served are
  ``op="run_step"``. Operations outside the worker's fixed set count as ``other``;
* ``step_seconds{algorithm,outcome}``: from relaying a ``run_step`` to the worker's reply (the worker
  answers one request at a time, so the next reply is the step's), ``outcome`` ``ok`` or ``failed``.

No label carries a dataset name, a path, a key or a message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

WORKER_STATES = ("idle", "starting", "running", "exited")
WORKER_OPS = frozenset(
    {
        "ping",
        "open_job",
        "verify_models",
        "load_models",
        "run_step",
        "consent",
        "create_job_tx",
        "sign",
        "write_model_meta",
        "list_models",
        "close_job",
        "shutdown",
    }
)
"""The party worker's operations (`secureflow.compute.worker.main.Worker`'s ``op_*`` and ``shutdown``)."""


STEP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0)
ALGORITHM_NAME = re.compile(r"[a-z][a-z0-9_]{0,47}")
"""What an algorithm label may look like (registry names such as ``psi`` or ``ss_lr``); else ``other``."""


def exit_outcome(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code == 0:
        return "clean"
    return "signal" if code < 0 else "error"


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], tuple[str, str | None]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        worker, session = self.state()
        states = GaugeMetricFamily(
            "secureflow_node_worker_state",
            "The party worker's state (1 for the current one)",
            labels=["state"],
        )
        for name in WORKER_STATES:
            states.add_metric([name], 1 if worker == name else 0)
        yield states
        yield GaugeMetricFamily(
            "secureflow_node_session_active",
            "1 while an engine session holds this node",
            value=int(bool(session)),
        )
        info = GaugeMetricFamily(
            "secureflow_node_session_info",
            "The current engine session (first 8 characters of its id, as in the node's log)",
            labels=["session"],
        )
        if session:
            info.add_metric([session[:8]], 1)
        yield info


class NodeMetrics:
    """A node's metrics, in a registry of their own."""

    def __init__(self, party: str, state: Callable[[], tuple[str, str | None]]) -> None:
        self.registry = r = CollectorRegistry()
        Gauge(
            "secureflow_node_info", "This node's party (as in job manifests)", ["party"], registry=r
        ).labels(party).set(1)
        self.up = Gauge("secureflow_node_up", "1 while the node serves its job queue", registry=r)
        self.heartbeat = Gauge(
            "secureflow_node_heartbeat_timestamp_seconds",
            "Unix time of the node's last heartbeat tick (every second, with or without a session)",
            registry=r,
        )
        self.heartbeats = Counter(
            "secureflow_node_heartbeats",
            "Heartbeats written to the job queue for the current session, by result (ok, error)",
            ["result"],
            registry=r,
        )
        for result in ("ok", "error"):
            self.heartbeats.labels(result)
        self.queue_up = Gauge(
            "secureflow_node_queue_up", "1 if the last read of the node's Redis queue succeeded", registry=r
        )
        self.sessions = Counter(
            "secureflow_node_sessions", "Engine sessions started on this node", registry=r
        )
        self.worker_starts = Counter(
            "secureflow_node_worker_starts", "Party workers spawned (one per session table)", registry=r
        )
        self.warm_starts = Counter(
            "secureflow_node_worker_warm_starts",
            "Session workers that were the node's warm spare (SecretFlow imported before the job)",
            registry=r,
        )
        self.warm_worker = Gauge(
            "secureflow_node_warm_worker", "1 while a warm spare party worker waits for a job", registry=r
        )
        self.worker_exits = Counter(
            "secureflow_node_worker_exits",
            "Party worker exits by outcome (clean: code 0, error: another code, signal: killed, unknown)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("clean", "error", "signal", "unknown"):
            self.worker_exits.labels(outcome)
        self.requests = Counter(
            "secureflow_node_requests",
            "Requests relayed to the party worker by operation (the steps served: op=run_step)",
            ["op"],
            registry=r,
        )
        for op in (*sorted(WORKER_OPS), "other"):
            self.requests.labels(op)
        self.log_requests = Counter(
            "secureflow_node_log_requests",
            "Job log requests by result (answered: lines sent; no_log: no log of that job here; dropped: "
            "unsigned, not a listed reader, another party's, expired or replayed)",
            ["result"],
            registry=r,
        )
        for result in ("answered", "no_log", "dropped"):
            self.log_requests.labels(result)
        self.steps = Histogram(
            "secureflow_node_step_seconds",
            "Seconds from relaying a step to the party worker to its reply, by algorithm and outcome",
            ["algorithm", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self._steps: dict[str, tuple[float, str]] = {}  # session -> (start, algorithm) of its step in flight
        r.register(_StateCollector(state))
        self.last_tick: float | None = None
        """`time.monotonic` of the heartbeat loop's last tick (readiness)."""

    def tick(self) -> None:
        self.last_tick = time.monotonic()
        self.heartbeat.set(time.time())

    def request(self, op: object) -> None:
        self.requests.labels(op if isinstance(op, str) and op in WORKER_OPS else "other").inc()

    def forwarding(self, request: dict[str, Any], key: str = "") -> None:
        """A request is being sent to the worker of session ``key``: a step's clock starts."""
        if request.get("op") == "run_step":
            name = request.get("algorithm")
            label = name if isinstance(name, str) and ALGORITHM_NAME.fullmatch(name) else "other"
            self._steps[key] = (time.monotonic(), label)

    def replied(self, reply: Any, key: str = "") -> None:
        """A message from session ``key``'s worker: a reply (with ``ok``) ends its step in flight, if any."""
        if key not in self._steps or not isinstance(reply, dict) or "ok" not in reply:
            return
        started, algorithm = self._steps.pop(key)
        outcome = "ok" if reply.get("ok") else "failed"
        self.steps.labels(algorithm, outcome).observe(time.monotonic() - started)

    def worker_exit(self, code: int | None, key: str = "") -> None:
        self._steps.pop(key, None)
        self.worker_exits.labels(exit_outcome(code)).inc()
