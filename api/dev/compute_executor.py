"""The embedded stack's `JobExecutor`: API-submitted jobs run on the local SecretFlow party workers.

Jobs run one at a time on a background thread (the party workers run one job
at a time). In the embedded default the stack holds the members' dev keys, so
before running a job the executor creates it on the audit ledger with every
party's EIP-712 consent (under the id the API derived from the creator, the
manifest hash and the job's salt); in a multi-host deployment each member's
own node does that. Once the job finishes, the anchoring service closes it on
chain. Steps and the model go through the ledger recorder, so the API's
job status, live stream and audit queries follow the job as it runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from eth_account import Account

from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient, TransactionSender
from secureflow.ledger.consent import sign_consent
from secureflow.ledger.contracts import AuditLedgerClient, hex32
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.model_anchors import ChainModelAnchors
from secureflow.ledger.nonces import NonceSource
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES, Job

log = logging.getLogger(__name__)


class LocalComputeExecutor:
    """Runs jobs on ``engine`` (its parties' member keys are ``member_keys``), recording into ``store``."""

    def __init__(
        self,
        engine: Engine,
        store: LedgerStore,
        client: ChainClient,
        ledger_contract: Any,
        nonces: NonceSource,
        member_keys: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.store = store
        self.client = client
        self.ledger_contract = ledger_contract
        self.nonces = nonces
        self.keys = {Account.from_key(k).address.lower(): k for k in member_keys.values()}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secureflow-compute")
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()
        self.results: dict[str, Future[JobResult | None]] = {}

    def submit(self, job: Job, manifest: dict[str, Any], job_secret: str) -> None:
        missing = [p for p in job.parties if p.lower() not in self.keys]
        if missing:
            raise ConfigurationError(
                f"this stack runs jobs for {sorted(self.keys)} only; no party worker for {missing}",
                hint="name the stack's party addresses (printed by `secureflow up`) in the manifest",
            )
        self.results[job.job_id] = self._pool.submit(self._run, job, manifest, job_secret)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)  # a job not started yet will not start; a running step finishes

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job: Job, manifest: dict[str, Any], job_secret: str) -> JobResult | None:
        with self._lock:
            if job.job_id in self._cancelled:
                return None
        try:
            self._create_on_chain(job)
            self.engine.ensure_healthy()
            result = run_job(
                self.engine,
                manifest,
                OutboxRecorder(self.store),
                job_id=job.job_id,
                salt=job.salt,
                creator=job.creator,
                job_secret=job_secret,
                model_anchors=ChainModelAnchors(AuditLedgerClient(self.ledger_contract)),
            )
            log.info(
                "job %s finished: %s", job.job_id, "succeeded" if result.succeeded else result.error_class
            )
            return result
        except Exception as exc:
            log.warning("job %s could not run: %s", job.job_id, type(exc).__name__)
            current = self.store.get_job(job.job_id)
            if current is not None and current.status not in TERMINAL_JOB_STATUSES:
                self.store.update_job(job.job_id, status="failed")
            raise

    def _create_on_chain(self, job: Job) -> None:
        sender = TransactionSender(self.client, self.keys[job.creator.lower()], self.nonces)
        ledger = AuditLedgerClient(self.ledger_contract, sender)
        job_id, manifest_hash = bytes.fromhex(job.job_id[2:]), bytes.fromhex(job.manifest_hash[2:])
        consents = [
            sign_consent(self.keys[p.lower()], self.client.chain_id, ledger.address, job_id, manifest_hash)
            for p in job.parties
        ]
        if job.salt is None:
            raise ConfigurationError(
                f"job {job.job_id} has no createJob salt in the store",
                hint="submit jobs through the API (POST /v1/jobs), which derives the id from a salt",
            )
        receipt = ledger.create_job(
            manifest_hash=manifest_hash,
            salt=bytes.fromhex(job.salt[2:]),
            parties=list(job.parties),
            consents=consents,
        )
        self.store.update_job(
            job.job_id, chain_status="confirmed", created_tx_hash=hex32(receipt["transactionHash"])
        )
