"""Running one job the API accepted on an engine of its parties' workers: its whole life after submission.

`run_submitted_job` is what every executor does with a job (the embedded stack's thread pool and the
production ``secureflow coordinator`` alike):

1. the job is opened on chain by its parties' own nodes (`secureflow.api.coordinator.opening`): a
   node that refuses ends the job ``rejected`` with every refusing node's reasons, and nothing is
   on chain;
2. the job is marked ``running`` and its steps run (`secureflow.compute.runner.run_job`), each record
   signed by every party and written to the ledger outbox; stored models are checked against their
   anchored hashes;
3. between steps the job's status is read again: a job cancelled meanwhile stops there (the steps
   recorded so far stay on the audit trail);
4. the job ends ``completed`` or ``failed`` (with the failed step and why); the anchoring service then
   closes it on chain with its step count and the proof of its last record.

Any other error fails the job with its class and message, never a party's data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from web3.contract import Contract

from secureflow.api.coordinator.opening import open_job_on_chain
from secureflow.compute.errors import ConsentRefusedError
from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.contracts import AuditLedgerClient
from secureflow.ledger.errors import InvalidStateError
from secureflow.ledger.model_anchors import ChainModelAnchors
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES, Job

log = logging.getLogger("secureflow.api.coordinator.jobrun")


@dataclass(frozen=True)
class JobServices:
    """What running a job needs besides the engine: the ledger store, the chain and its AuditLedger."""

    store: LedgerStore
    client: ChainClient
    ledger_contract: Contract
    gas_price: int = 0


class _CoordinatorRecorder(OutboxRecorder):
    """The outbox recorder, except that a job cancelled meanwhile keeps its status and reason at the end."""

    def open_job(
        self,
        job_id: str,
        manifest_hash: str,
        creator: str,
        parties: Sequence[str],
        *,
        salt: str | None = None,
    ) -> None:
        """The API created the job already (its id, salt and parties are checked by `run_job`)."""

    def close_job(self, job_id: str, *, succeeded: bool, reason: str | None = None) -> None:
        try:
            super().close_job(job_id, succeeded=succeeded, reason=reason)
        except InvalidStateError:
            current = self.store.get_job(job_id)
            if current is None or current.status not in TERMINAL_JOB_STATUSES:
                raise
            log.info("job %s ended %s meanwhile; its status stays", job_id[:10], current.status)


def cancelled_check(store: LedgerStore, job_id: str) -> Callable[[], str | None]:
    """``should_stop`` for `run_job`: why the job must stop (it was cancelled or ended meanwhile), or None."""

    def check() -> str | None:
        job = store.get_job(job_id)
        if job is None or job.status not in TERMINAL_JOB_STATUSES:
            return None
        return job.reason or f"the job was {job.status}"

    return check


def fail_job(store: LedgerStore, job_id: str, reason: str) -> None:
    """End an unfinished job ``failed`` with ``reason`` (a job that ended already keeps its status)."""
    current = store.get_job(job_id)
    if current is not None and current.status not in TERMINAL_JOB_STATUSES:
        store.update_job(job_id, status="failed", reason=reason)


def run_submitted_job(
    engine: Engine,
    services: JobServices,
    job: Job,
    manifest: Mapping[str, Any],
    job_secret: str,
    *,
    lease_lost: Callable[[], str | None] | None = None,
) -> JobResult | None:
    """Open ``job`` on chain through its parties' nodes and run it on ``engine``; None if it did not run.

    ``engine`` runs exactly the job's parties and is started (`Engine.ensure_healthy`) here.
    ``lease_lost``: why this executor may no longer run the job (another took it over), checked with
    the job's status before each step.
    """
    store = services.store
    cancelled = cancelled_check(store, job.job_id)

    def stop() -> str | None:
        return cancelled() or (None if lease_lost is None else lease_lost())

    if stop() is not None:
        log.info("job %s ended before it started; not running it", job.job_id[:10])
        return None
    try:
        engine.ensure_healthy()
        open_job_on_chain(
            engine,
            services.client,
            services.ledger_contract,
            store,
            job,
            manifest,
            job_secret,
            gas_price=services.gas_price,
        )
    except ConsentRefusedError as exc:
        current = store.get_job(job.job_id)
        if current is not None and current.status not in TERMINAL_JOB_STATUSES:
            store.update_job(job.job_id, status="rejected", reason=f"the parties' nodes refused it: {exc}")
        log.info("job %s rejected by its parties' nodes", job.job_id[:10])
        return None
    except Exception as exc:
        fail_job(store, job.job_id, f"the job could not be opened: {type(exc).__name__}: {exc}")
        raise
    if stop() is not None:
        return None
    try:
        store.update_job(job.job_id, status="running")
    except InvalidStateError:  # cancelled meanwhile: nothing ran
        return None
    try:
        result = run_job(
            engine,
            manifest,
            _CoordinatorRecorder(store),
            job_id=job.job_id,
            salt=job.salt,
            creator=job.creator,
            job_secret=job_secret,
            model_anchors=ChainModelAnchors(AuditLedgerClient(services.ledger_contract)),
            should_stop=stop,
        )
    except Exception as exc:
        fail_job(store, job.job_id, f"the job could not run: {type(exc).__name__}: {exc}")
        raise
    log.info("job %s finished: %s", job.job_id[:10], "succeeded" if result.succeeded else result.error_class)
    return result
