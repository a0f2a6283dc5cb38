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
from typing import Any

from celery import Celery

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
        """Queue ``job`` (by id; the coordinator reads its manifest and secret from the database)."""
        self.app.send_task(
            RUN_JOB_TASK,
            args=[job.job_id],
            task_id=f"job-{job.job_id}",
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
        )
        log.info("job queued", extra={"job_id": job.job_id})

    def cancel(self, job_id: str) -> None:
        """Nothing to do here: the coordinator sees the job ``cancelled`` in the DB between steps."""

    def close(self) -> None:
        self.app.close()
