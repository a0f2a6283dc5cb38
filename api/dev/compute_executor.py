"""The embedded stack's `JobExecutor`: API-submitted jobs run on the local SecretFlow party workers.

Jobs run one at a time on a background thread (the party workers run one job
at a time). Nobody signs for anybody: before running a job the executor asks
each party's worker for its EIP-712 consent; the worker checks the manifest
against its own policy (`secureflow.compute.policy`, ``<party_dir>/policy.json``),
recomputes the manifest hash and the job id, and signs with its own member key,
or refuses with its reasons. The same policy check runs when the job is submitted,
so a manifest a party would refuse gets a 409 before anything runs. With every
consent the job is created on the audit ledger (sent by the creator's dev key,
which the embedded stack holds only to pay for that transaction; in a multi-host
deployment each member's own node does this). Once the job finishes, the anchoring service closes it on
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

from secureflow.compute.consents import request_consents
from secureflow.compute.errors import ConsentRefusedError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.policy import consent_refusals, load_policy
from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient, TransactionSender
from secureflow.ledger.contracts import AuditLedgerClient, hex32
from secureflow.ledger.errors import ConfigurationError
from secureflow.ledger.model_anchors import ChainModelAnchors
from secureflow.ledger.nonces import NonceSource
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES, Job

log = logging.getLogger(__name__)


class LocalComputeExecutor:
    """Runs jobs on ``engine`` (``member_keys``: party name -> dev key, used only to send ``createJob``
    for the creator), recording into ``store``."""

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
        self.names = {Account.from_key(k).address.lower(): name for name, k in member_keys.items()}
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
        with self._lock:
            if job.job_id in self._cancelled:
                return None
        try:
            self.engine.ensure_healthy()
            self._create_on_chain(job, manifest, job_secret)
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
                self.store.update_job(
                    job.job_id, status="failed", reason=f"the job could not run: {type(exc).__name__}: {exc}"
                )
            raise

    def _create_on_chain(self, job: Job, manifest: dict[str, Any], job_secret: str) -> None:
        if job.salt is None:
            raise ConfigurationError(
                f"job {job.job_id} has no createJob salt in the store",
                hint="submit jobs through the API (POST /v1/jobs), which derives the id from a salt",
            )
        sender = TransactionSender(self.client, self.keys[job.creator.lower()], self.nonces)
        ledger = AuditLedgerClient(self.ledger_contract, sender)
        consents = request_consents(
            self.engine,
            manifest,
            job_id=job.job_id,
            creator=job.creator,
            salt=job.salt,
            job_secret=job_secret,
            parties=job.parties,
            chain_id=self.client.chain_id,
            ledger=ledger.address,
        )
        receipt = ledger.create_job(
            manifest_hash=bytes.fromhex(job.manifest_hash[2:]),
            salt=bytes.fromhex(job.salt[2:]),
            parties=list(job.parties),
            consents=consents,
        )
        self.store.update_job(
            job.job_id, chain_status="confirmed", created_tx_hash=hex32(receipt["transactionHash"])
        )
