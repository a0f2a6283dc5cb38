"""The embedded stack's `JobExecutor`: API-submitted jobs run on the local SecretFlow party workers.

Jobs run one at a time on a background thread (the party workers run one job
at a time), each as every executor runs it (`secureflow.api.coordinator.jobrun`).
Nobody signs for anybody: before running a job each party's worker is asked for its
EIP-712 consent; the worker checks the manifest against its own policy
(`secureflow.compute.policy`, ``<party_dir>/policy.json``), recomputes the manifest
hash and the job id, and signs with its own member key, or refuses with its reasons
(the job is then ``rejected``); the creator's worker then signs the ``createJob``
transaction itself. The same policy check runs when the job is submitted here, so a
manifest a party would refuse gets a 409 before anything runs. Once the job finishes,
the anchoring service closes it on chain. Steps and the model go through the ledger
recorder, so the API's job status, live stream and audit queries follow the job as it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from secureflow.api.coordinator.jobrun import JobServices, run_submitted_job
from secureflow.compute.errors import ConsentRefusedError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.policy import consent_refusals, load_policy
from secureflow.compute.runner import JobResult
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import Job

log = logging.getLogger(__name__)


class LocalComputeExecutor:
    """Runs jobs on ``engine`` (``member_addresses``: party name -> member address, the stack's parties;
    the party workers hold and use their own keys), recording into ``store``."""

    def __init__(
        self,
        engine: Engine,
        store: LedgerStore,
        client: ChainClient,
        ledger_contract: Any,
        member_addresses: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.store = store
        self.ledger_contract = ledger_contract
        self.services = JobServices(store=store, client=client, ledger_contract=ledger_contract)
        self.names = {address.lower(): name for name, address in member_addresses.items()}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secureflow-compute")
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self.results: dict[str, Future[JobResult | None]] = {}

    def submit(self, job: Job, manifest: dict[str, Any], job_secret: str) -> None:
        missing = [p for p in job.parties if p.lower() not in self.names]
        if missing:
            raise ConfigurationError(
                f"this stack runs jobs for {sorted(self.names)} only; no party worker for {missing}",
                hint="name the stack's party addresses (printed by `secureflow up`) in the manifest",
            )
        parsed = JobManifest.parse(manifest)
        refusals = [
            f"party {name!r}: {reason}"
            for address in job.parties
            for name in [self.names[address.lower()]]
            for reason in consent_refusals(
                load_policy(self.engine.party_dir(name)), parsed, address, self.engine.data_dir(name)
            )
        ]
        if refusals:
            raise ConsentRefusedError(f"the parties' policies refuse job {job.job_id}: {'; '.join(refusals)}")
        self.results[job.job_id] = self._pool.submit(self._run, job, manifest, job_secret)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)  # a job not started yet will not start; a running step finishes

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job, manifest: dict[str, Any], job_secret: str) -> JobResult | None:
        try:
            with self._lock:
                if job.job_id in self._cancelled:
                    return None
            return run_submitted_job(self.engine, self.services, job, manifest, job_secret)
        except Exception as exc:
            log.warning("job %s could not run: %s", job.job_id, type(exc).__name__)
            raise
        finally:
            self.store.release_close(job.job_id)  # a job cancelled while it ran closes now
