"""The coordinator's Celery side: the ``secureflow.run_job`` task and the worker that serves it.

The queue's configuration is the API's (`secureflow.api.server.jobqueue.celery_app`: late acks,
redelivery when a worker is lost, one task prefetched). `run_coordinator` starts a Celery worker with
a thread pool of ``SECUREFLOW_COORDINATOR_CONCURRENCY`` jobs at once; SIGTERM is Celery's warm
shutdown (running jobs finish, nothing new starts; a second SIGTERM or SIGKILL leaves the running
jobs' tasks unacknowledged, so they are delivered again and found orphaned: see
`secureflow.api.coordinator.service`).
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery, Task

from secureflow.api.coordinator.metrics import readiness
from secureflow.api.coordinator.service import Coordinator, Outcome, RetryLater
from secureflow.api.coordinator.settings import CoordinatorSettings
from secureflow.api.server.jobqueue import RUN_JOB_TASK, celery_app

log = logging.getLogger("secureflow.api.coordinator.tasks")

RETRY_BASE_SECONDS = 5.0


def coordinator_app(
    settings: CoordinatorSettings, coordinator: Coordinator | None = None
) -> tuple[Celery, Coordinator]:
    """The Celery app with the job task bound to one `Coordinator` (built here unless given: DB, chain,
    deployment)."""
    if not settings.broker_url:
        from secureflow.ledger.errors import ConfigurationError

        raise ConfigurationError(
            "SECUREFLOW_BROKER_URL is not set: the coordinator has no queue to take jobs from",
            hint="export the API's broker, e.g. SECUREFLOW_BROKER_URL=redis://127.0.0.1:6379/0",
        )
    app = celery_app(
        settings.broker_url,
        queue=settings.queue_name,
        visibility_timeout=settings.queue_visibility_timeout,
    )
    coordinator = coordinator or Coordinator(settings)
    metrics = coordinator.metrics
    lock = threading.Lock()
    running: set[str] = set()

    @app.task(  # type: ignore[untyped-decorator]  # celery ships no type information
        name=RUN_JOB_TASK, bind=True, acks_late=True, max_retries=settings.start_retries
    )
    def run_job_task(self: Task, job_id: str) -> dict[str, str]:
        with lock:
            if job_id in running:  # a duplicate delivery to this same process
                return {"job_id": job_id, "action": "busy"}
            running.add(job_id)
            metrics.running.set(len(running))
        started = time.monotonic()
        try:
            retries = int(self.request.retries or 0)
            try:
                outcome: Outcome = coordinator.handle(job_id, last_attempt=retries >= settings.start_retries)
            except RetryLater as exc:
                metrics.delivered("retry")
                countdown = RETRY_BASE_SECONDS * (2**retries)
                log.warning("job %s: %s; retrying in %.0f s", job_id[:10], exc, countdown)
                raise self.retry(countdown=countdown) from None
            metrics.delivered(outcome.action)
            if outcome.action == "ran":
                metrics.job_seconds.observe(time.monotonic() - started)
            if outcome.action == "busy":  # another coordinator runs it: look again once its lease could lapse
                raise self.retry(countdown=settings.lease_seconds, max_retries=None)
            log.info("job %s: %s %s", job_id[:10], outcome.action, outcome.detail)
            return {"job_id": outcome.job_id, "action": outcome.action, "detail": outcome.detail}
        finally:
            with lock:
                running.discard(job_id)
                metrics.running.set(len(running))

    return app, coordinator


def run_coordinator(settings: CoordinatorSettings | None = None, *, log_level: str = "INFO") -> None:
    """``secureflow coordinator``: serve the job queue until SIGTERM/Ctrl-C.

    Celery's worker stops by itself when it cannot repair its broker connection in place (seen with kombu
    5.7's Redis transport after the broker restarted: "Unrecoverable error", running jobs finish, then
    ``worker_main`` returns as after a clean stop). Only a stop signal ends the coordinator: otherwise the
    worker is started again (after 1 s, doubling to 30 s while it keeps stopping at once), each time
    counted in ``secureflow_coordinator_worker_restarts_total``.
    """
    settings = settings or CoordinatorSettings()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app, coordinator = coordinator_app(settings)
    server = None
    if settings.metrics_port is not None:
        from secureflow.ledger.metrics_server import serve_metrics

        server = serve_metrics(
            coordinator.metrics.registry,
            settings.metrics_host,
            settings.metrics_port,
            readiness(coordinator.store.count_jobs_by_status),
        )
        print(f"secureflow coordinator metrics on {server.url}/metrics", flush=True)
    stop = _StopSignals()
    try:
        delay = 1.0
        while True:
            started = time.monotonic()
            app.worker_main(_worker_argv(settings, coordinator, log_level))
            if stop.requested:
                return
            if time.monotonic() - started > 60:
                delay = 1.0
            coordinator.metrics.worker_restarts.inc()
            log.error(
                "the Celery worker stopped without a stop signal (its broker connection was lost and could "
                "not be re-established in place: see above); starting it again in %.0f s",
                delay,
            )
            if stop.wait(delay):
                return
            delay = min(delay * 2, 30.0)
            app, _ = coordinator_app(settings, coordinator)  # a fresh app: a stopped worker's is spent
    finally:
        if server is not None:
            server.close()
        coordinator.close()


def _worker_argv(settings: CoordinatorSettings, coordinator: Coordinator, log_level: str) -> list[str]:
    return [
        "worker",
        "--pool=threads",
        f"--concurrency={settings.coordinator_concurrency}",
        f"--loglevel={log_level.upper()}",
        "-Q",
        settings.queue_name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname=coordinator-{coordinator.runner_id}",
    ]


class _StopSignals:
    """Whether SIGTERM/SIGINT asked the coordinator to stop: during the worker, Celery's own handlers take
    them (a warm shutdown) and say so through its ``worker_shutting_down`` signal; between two workers,
    this class's handlers do."""

    def __init__(self) -> None:
        import signal

        from celery.signals import worker_shutting_down

        self._event = threading.Event()
        worker_shutting_down.connect(self._on_shutdown, weak=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._event.set())

    def _on_shutdown(self, *_args: object, **_kwargs: object) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        import signal

        for signum in (signal.SIGTERM, signal.SIGINT):  # Celery's handlers are gone with its worker
            signal.signal(signum, lambda *_: self._event.set())
        return self._event.wait(seconds)
