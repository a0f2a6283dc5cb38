"""The seam between the API and the compute engine: a job the API accepted is handed to a `JobExecutor`.

The API stores a submitted job (status ``created``) and its manifest, then calls
``executor.submit``. The compute engine (``secureflow.compute.runner.run_job`` with an
``secureflow.ledger.recorder.OutboxRecorder``) is plugged in by whoever builds the app;
without an executor the job stays ``created`` and the API says so in its
answer. Executors must return quickly (run the job in their own thread or
queue) and record steps through the ledger recorder, which keeps the job's
status current for the API's live status stream.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from secureflow.ledger.store.schemas import Job


@runtime_checkable
class JobExecutor(Protocol):
    """Runs jobs the API accepted."""

    def submit(self, job: Job, manifest: dict[str, Any], job_secret: str) -> None:
        """Start running ``job`` (in the background); raise to refuse it (the job is then marked failed).

        ``job_secret`` salts the job's manifest hash and parameter commitments: pass it to
        ``run_job(..., job_secret=...)`` (the job id depends on it) and never log it."""

    def cancel(self, job_id: str) -> None:
        """Stop the job if it is running (best effort; the API marks it cancelled)."""
