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
database first (`ApiDb.claim_job`). RabbitMQ's own bound on an unacknowledged delivery is the server's
``consumer_timeout`` (30 minutes by default in 3.10, set in rabbitmq.conf): it must also be longer than the
longest job, else the broker closes the coordinator's channel and delivers the task again mid-job (the
claim keeps it from running twice, but the coordinator's consumer restarts). A RabbitMQ restarted mid-job
keeps the task (durable queue, persistent message) and delivers it again once the coordinator reconnects;
it finds the job running or ended and runs nothing twice (tests/api/test_consortium.py).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu.exceptions import KombuError, OperationalError

from secureflow.api.server.db import ApiDb
from secureflow.api.server.errors import QueueUnavailableError
from secureflow.api.server.periodic import Periodic
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import Job

log = logging.getLogger("secureflow.api.server.jobqueue")

RUN_JOB_TASK = "secureflow.run_job"
"""The name of the coordinator's task; its only argument is the job id."""

DEFAULT_QUEUE = "secureflow.jobs"


BROKER_TIMEOUT = 5.0
"""Seconds to connect to the broker and for it to answer: a broker that accepts connections but never
answers (a hung Redis, a paused container) fails a send instead of holding the request for ever."""


def _transport_options(broker_url: str, visibility_timeout: float) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": int(visibility_timeout)}
    if broker_url.startswith(("redis://", "rediss://")):
        options |= {"socket_timeout": BROKER_TIMEOUT, "socket_connect_timeout": BROKER_TIMEOUT}
    return options


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
        # a broker that blinks must not cancel the jobs running (Celery 6 makes cancelling the default):
        # they finish, their unacknowledged tasks come back and find them ended (the claim)
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(broker_url, visibility_timeout),
        broker_connection_timeout=BROKER_TIMEOUT,
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


class QueueSweeper(Periodic):
    """Sends the jobs the API stored while the broker was unreachable, once it answers again.

    A job is marked queued when it is stored (`ApiDb.put_manifest`); only a job whose submission the
    broker refused is set back (`ApiDb.wait_for_queue`), so jobs stored by an API process without an
    executor are never picked up here. Every ``interval`` seconds (in a daemon thread of the API process)
    it claims each waiting job (`ApiDb.claim_unqueued`: one of several API processes wins), oldest first,
    and sends it if it is still ``created``; a send the broker refuses gives the job back. An outage is
    logged once when it starts and once when it ends, not on every try."""

    def __init__(
        self, executor: CeleryJobExecutor, db: ApiDb, store: LedgerStore, *, interval: float = 5.0
    ) -> None:
        self.executor = executor
        self.db = db
        self.store = store
        self.interval = interval
        self.thread_name = "secureflow-queue-sweeper"
        super().__init__()
        self.outage = False

    def sweep(self) -> int:
        """One pass: the number of jobs sent to the queue; stops at the first job the broker refuses."""
        sent = 0
        for job_id in self.db.unqueued_jobs():
            if not self.db.claim_unqueued(job_id):
                continue  # another API process's sweeper took it
            job = self.store.get_job(job_id)
            if job is None or job.status != "created":
                continue  # it moved on meanwhile (cancelled by its creator): nothing to queue
            try:
                self.executor.send(job_id)
            except QueueUnavailableError as exc:
                self.db.wait_for_queue(job_id)
                if not self.outage:
                    log.warning("job queue unreachable; jobs wait until it answers: %s", exc)
                    self.outage = True
                return sent
            sent += 1
        if self.outage:
            log.info("job queue answers again", extra={"queued": sent})
            self.outage = False
        return sent
