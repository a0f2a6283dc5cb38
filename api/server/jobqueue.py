"""The production job queue: the API hands accepted jobs to ``secureflow coordinator`` workers (Celery).

One Celery configuration for both sides (`celery_app`): the API only sends the task
(`CeleryJobExecutor`, by name: the server never imports the coordinator's code), the coordinator
registers and runs it (`secureflow.api.coordinator.tasks`). The broker is Redis
(``redis://127.0.0.1:6379/0``, as the seeds use) or RabbitMQ (``amqp://guest:guest@127.0.0.1:5672//``),
from ``SECUREFLOW_BROKER_URL``.

What goes over the broker is the job id only: the coordinator reads the manifest and the job secret
from the database it shares with the API, so no manifest, secret or party data sits in a queue.

Delivery (Celery's own advice for tasks that must not be lost): late acks (a task is acknowledged
only after it ran, so a coordinator killed mid-job gets its task redelivered), a redelivery when the
worker process is lost, one task prefetched at a time, and, for Redis, a visibility timeout
(``SECUREFLOW_QUEUE_VISIBILITY_TIMEOUT``) longer than the longest job: an unacknowledged task comes
back after it. A task delivered twice runs its job once: the coordinator claims the job in the
database first (`ApiDb.claim_job`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from secureflow.api.server.db import ApiDb
from secureflow.api.server.errors import QueueUnavailableError
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import Job

log = logging.getLogger("secureflow.api.server.jobqueue")

RUN_JOB_TASK = "secureflow.run_job"
"""The name of the coordinator's task; its only argument is the job id."""

DEFAULT_QUEUE = "secureflow.jobs"


def celery_app(
    broker_url: str,
    *,
    queue: str = DEFAULT_QUEUE,
    visibility_timeout: float = 6 * 3600.0,
) -> Celery:
    """The Celery app of the job queue on ``broker_url`` (no result backend: job state lives in the DB)."""
    app = Celery("secureflow", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": int(visibility_timeout)},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        enable_utc=True,
    )
    return app


class CeleryJobExecutor:
    """`JobExecutor` of ``secureflow api``: sends each accepted job to the coordinators' queue."""

    def __init__(self, app: Celery, *, publish_timeout: float = 10.0) -> None:
        self.app = app
        self.publish_timeout = publish_timeout

    def submit(self, job: Job, manifest: dict[str, Any], job_secret: str) -> None:
        """Queue ``job`` (by id; the coordinator reads its manifest and secret from the database).

        Raises `QueueUnavailableError` when the broker does not take it (a few quick retries first)."""
        self.send(job.job_id)

    def send(self, job_id: str) -> None:
        """Send the coordinators' task for ``job_id`` (sending one twice is harmless: the coordinator
        claims the job in the database and runs it once)."""
        try:
            self.app.send_task(
                RUN_JOB_TASK,
                args=[job_id],
                task_id=f"job-{job_id}",
                retry=True,
                retry_policy={
                    "max_retries": 3,
                    "interval_start": 0.2,
                    "interval_step": 0.5,
                    "interval_max": 2,
                },
            )
        except (KombuError, OperationalError, OSError) as exc:
            raise QueueUnavailableError(
                f"the job queue did not take job {job_id}: {type(exc).__name__}",
                hint="check that the broker (SECUREFLOW_BROKER_URL) is up; the job is kept and queued once "
                "it answers",
            ) from exc
        log.info("job queued", extra={"job_id": job_id})

    def cancel(self, job_id: str) -> None:
        """Nothing to do here: the coordinator sees the job ``cancelled`` in the DB between steps."""

    def close(self) -> None:
        self.app.close()


class QueueSweeper:
    """Sends the jobs the API stored while the broker was unreachable, once it answers again.

    Every ``interval`` seconds (in a daemon thread of the API process) it takes the jobs whose
    ``queued_at`` is still empty (`ApiDb.unqueued_jobs`), oldest first: a job still ``created`` is
    sent to the queue and marked queued; a job that moved on meanwhile (cancelled by its creator) is
    only marked. An outage is logged once when it starts and once when it ends, not on every try.
    Several API processes may sweep at once: a job sent twice runs once (the coordinator's claim)."""

    def __init__(
        self, executor: CeleryJobExecutor, db: ApiDb, store: LedgerStore, *, interval: float = 5.0
    ) -> None:
        self.executor = executor
        self.db = db
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outage = False

    def sweep(self) -> int:
        """One pass: the number of jobs sent to the queue; stops at the first job the broker refuses."""
        sent = 0
        for job_id in self.db.unqueued_jobs():
            job = self.store.get_job(job_id)
            if job is not None and job.status == "created":
                try:
                    self.executor.send(job_id)
                except QueueUnavailableError as exc:
                    if not self.outage:
                        log.warning("job queue unreachable; jobs wait until it answers: %s", exc)
                        self.outage = True
                    return sent
                sent += 1
            self.db.mark_queued(job_id)
        if self.outage:
            log.info("job queue answers again", extra={"queued": sent})
            self.outage = False
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # a DB outage: the next pass tries again
                log.exception("queue sweep failed")

    def start(self) -> QueueSweeper:
        self._thread = threading.Thread(target=self._run, name="secureflow-queue-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
