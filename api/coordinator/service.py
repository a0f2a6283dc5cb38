"""``secureflow coordinator``: Celery workers that run the jobs the API queued, on the members' own nodes.

`Coordinator.handle(job_id)` is the body of the queue's one task (`secureflow.api.coordinator.tasks`):

1. **claim** the job in the database (`ApiDb.claim_job`): a task delivered twice while the first
   delivery still runs finds the job ``busy`` and does nothing; the claim is a lease, renewed every
   third of ``lease_seconds`` while the job runs;
2. a job that already ended is left alone (a redelivery after it finished); a job found ``running``
   had its coordinator die mid-job (SIGKILL, host lost): it is failed with that reason, its recorded
   steps stay anchored, and the anchoring service closes it on chain; nothing is run twice, so no
   step seq is ever recorded twice;
3. otherwise an engine of exactly the job's parties is started on their nodes (distributed launcher:
   each member's ``secureflow node`` starts a party worker for this job's session), and the job runs
   (`secureflow.api.coordinator.jobrun.run_submitted_job`): consent and ``createJob`` by the nodes,
   the steps, the end status. Nodes that cannot be reached are a transient error: the task is retried
   with backoff (``start_retries``), then the job fails saying which node did not answer.

Each commit of the job's state (and of its step records) publishes a status notice for the API's
live-status streams (`secureflow.api.server.notify`: Redis pub/sub; the database stays the truth).

The coordinator holds no member key and reads no party data: the nodes sign, and the records carry
salted digests only. It holds its own coordinator key (``SECUREFLOW_COORDINATOR_KEY_FILE``, checked at
start to hold the registry's coordinator role) and signs every entry it puts on a node's queue; the nodes
act on nothing else (`secureflow.compute.worker.trust`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass

from secureflow.api.coordinator.jobrun import JobServices, fail_job, run_submitted_job
from secureflow.api.coordinator.key import load_coordinator_key
from secureflow.api.coordinator.metrics import CoordinatorMetrics
from secureflow.api.coordinator.settings import CoordinatorSettings
from secureflow.api.server.db import ApiDb
from secureflow.api.server.notify import announce_changes, notifier_for
from secureflow.compute.errors import WorkerError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.chain import ChainClient
from secureflow.ledger.deploy import connect, load_deployment
from secureflow.ledger.errors import NodeUnreachableError
from secureflow.ledger.store.schemas import TERMINAL_JOB_STATUSES
from secureflow.ledger.store.sql import SqlLedgerStore, open_store

log = logging.getLogger("secureflow.api.coordinator")


class RetryLater(Exception):
    """The job could not start for a reason that may pass (a node or the chain unreachable): retry it."""


@dataclass(frozen=True)
class Outcome:
    """What `Coordinator.handle` did with a delivery (for logs and tests)."""

    job_id: str
    action: str  # ran | busy | unknown | ended_already | failed_orphan | not_started
    detail: str = ""


class Coordinator:
    """One coordinator process's connections (DB, chain) and the jobs it runs."""

    def __init__(self, settings: CoordinatorSettings) -> None:
        self.settings = settings
        self.metrics = CoordinatorMetrics(settings.coordinator_concurrency)
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store: SqlLedgerStore = open_store(settings.database_url)
        self.db = ApiDb(self.store.engine)
        self.db.migrate()
        # every commit of job or step state announces the job to the API's live-status streams
        self.notifier = notifier_for(settings, subscribe=False, registry=self.metrics.registry)
        self._stop_announcing = announce_changes(self.store, self.notifier)
        deployment = load_deployment(settings.deployment)
        self.client = ChainClient(settings.chain_config())
        self.client.check()
        self.coordinator_key = load_coordinator_key(
            settings, connect(self.client, deployment, "ConsortiumRegistry")
        )
        self.services = JobServices(
            store=self.store,
            client=self.client,
            ledger_contract=connect(self.client, deployment, "AuditLedger"),
            gas_price=settings.gas_price,
        )
        settings.coordinator_workdir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self._stop_announcing()
        self.notifier.close()
        self.store.close()

    def handle(self, job_id: str, *, last_attempt: bool = True) -> Outcome:
        """Run queued job ``job_id`` once (see the module docstring); `RetryLater` for transient failures."""
        job_id = job_id.lower()
        claim = self.db.claim_job(job_id, self.runner_id, self.settings.lease_seconds)
        if claim == "unknown":
            log.warning("job %s has no submitted manifest in this database; dropped", job_id[:10])
            return Outcome(job_id, "unknown")
        if claim == "busy":
            log.info("job %s is running on another coordinator; this delivery does nothing", job_id[:10])
            return Outcome(job_id, "busy")
        stop_renewing, lost = threading.Event(), threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(job_id, stop_renewing, lost), name=f"lease-{job_id[:10]}", daemon=True
        )
        renewer.start()
        try:
            return self._handle_claimed(job_id, last_attempt=last_attempt, lost=lost)
        finally:
            stop_renewing.set()
            renewer.join(5.0)
            if self.store.get_job(job_id) is not None:
                self.store.release_close(job_id)  # a job cancelled while it ran closes now, whatever happened
            self.db.release_job(job_id, self.runner_id)

    def _renew(self, job_id: str, stop: threading.Event, lost: threading.Event) -> None:
        while not stop.wait(self.settings.lease_seconds / 3):
            try:
                if not self.db.renew_lease(job_id, self.runner_id, self.settings.lease_seconds):
                    log.error("job %s: another coordinator took over its lease; stopping", job_id[:10])
                    lost.set()  # run no further step: the job is the other coordinator's now
                    return
            except Exception as exc:  # the DB is briefly unreachable: keep trying while the lease holds
                log.warning("job %s: lease renewal failed (%s)", job_id[:10], type(exc).__name__)

    def _handle_claimed(self, job_id: str, *, last_attempt: bool, lost: threading.Event) -> Outcome:
        job = self.store.get_job(job_id)
        if job is None:
            return Outcome(job_id, "unknown")
        if job.status in TERMINAL_JOB_STATUSES:
            return Outcome(job_id, "ended_already", job.status)
        if job.status == "running":
            reason = (
                "the coordinator running this job stopped mid-job (killed or its host lost); the steps it "
                "recorded stay on the audit trail; submit the job again to run it anew"
            )
            fail_job(self.store, job_id, reason)
            log.warning("job %s: %s", job_id[:10], reason)
            return Outcome(job_id, "failed_orphan", reason)
        manifest = self.db.get_manifest(job_id)
        secret = self.db.get_job_secret(job_id)
        if manifest is None or secret is None:
            fail_job(self.store, job_id, "the job has no stored manifest or job secret; submit it again")
            return Outcome(job_id, "not_started", "no manifest")
        parsed = JobManifest.parse(manifest)
        parties = parsed.party_names()
        scratch = self.settings.coordinator_workdir / job_id
        engine = Engine(
            parties,
            scratch,
            launcher="distributed",
            redis_url=self.settings.compute_redis_url,
            redis_prefix=self.settings.compute_redis_prefix,
            node_timeout=self.settings.node_timeout,
            start_timeout=self.settings.start_timeout,
            step_timeout=self.settings.step_timeout,
            coordinator_key=self.coordinator_key,
            party_addresses={p: parsed.address_of(p) for p in parties},
            spu_protocol=parsed.spu_protocol,  # each job's SPU is started under the protocol it names
            require_tls=True,  # the parties' links: mutual TLS between their nodes (compute.worker.tls)
        )
        try:
            try:
                engine.start()
            except (WorkerError, NodeUnreachableError) as exc:
                if not last_attempt:
                    raise RetryLater(str(exc)) from None
                fail_job(self.store, job_id, f"the parties' nodes could not start the job: {exc}")
                return Outcome(job_id, "not_started", str(exc))
            result = run_submitted_job(
                engine,
                self.services,
                job,
                manifest,
                secret,
                lease_lost=lambda: "its coordinator lost the job's lease" if lost.is_set() else None,
            )
        finally:
            engine.shutdown()
            shutil.rmtree(scratch, ignore_errors=True)
        if result is None:
            current = self.store.get_job(job_id)
            return Outcome(job_id, "not_started", "" if current is None else current.status)
        return Outcome(job_id, "ran", "succeeded" if result.succeeded else str(result.error_class))
