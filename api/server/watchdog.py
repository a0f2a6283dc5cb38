"""The API's job watchdog: a job whose coordinator stopped renewing its lease is failed, with why.

A ``secureflow coordinator`` worker renews its lease on the job it runs (`ApiDb.claim_job`,
`ApiDb.renew_lease`, every third of its ``lease_seconds``). If it dies (SIGKILL, host lost), its Celery
task comes back only after the broker's visibility timeout (hours on Redis), and until then the job
would just sit ``running``. The watchdog, a daemon thread of the production API, fails such a job once
its lease has been seen lapsed (by the database's clock) for ``grace`` seconds, with the reason on the job
(the API, ``secureflow job status`` and the web page show it) and the close on chain that every ended
job gets. A coordinator that was only cut off from the database finds the job ended between two steps and
stops; a step it was running cannot be recorded after that (the store refuses records of a closing job).

It also fails a **running** job one of whose step records has waited longer than ``unanchored_fail_after``
seconds to be anchored (``pending`` or ``submitted``: the anchoring worker is down, or the chain does not
take or mine its batches), with a reason naming the seq, how long it waited and what to check. The job
stops between two steps as above. Its records are not dropped: when anchoring resumes each is anchored
once (the outbox keeps one record per seq), and then the anchoring service closes the job on chain as
failed with the steps it can prove. A job that already **ended** (completed, failed or cancelled) with
records still waiting is not failed: its compute is over and its outcome stays what the parties saw; it
waits for its close, flagged by the ``oldest pending`` alert and ``/readyz`` (``worker_stall_seconds``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from secureflow.api.server.db import ApiDb
from secureflow.api.server.periodic import Periodic
from secureflow.ledger.errors import InvalidStateError
from secureflow.ledger.store.base import LedgerStore
from secureflow.ledger.store.schemas import StepRecordRow

log = logging.getLogger("secureflow.api.server.watchdog")


def lapsed_reason(runner: str, lease_until: datetime) -> str:
    return (
        f"the coordinator running this job ({runner}) stopped renewing its lease at "
        f"{lease_until.isoformat(timespec='seconds')}: no progress since (failed by the API's watchdog)"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def unanchored_reason(record: StepRecordRow, waited: float) -> str:
    return (
        f"step {record.seq}'s record waited {_duration(waited)} to be anchored (still {record.status}): "
        "the job was stopped (failed by the API's watchdog, unanchored_fail_after); check the anchoring "
        "worker (secureflow doctor, /readyz) and the chain node; its records are anchored once anchoring "
        "resumes, then the job closes on chain as failed"
    )


class LeaseWatchdog(Periodic):
    """Fails the jobs whose coordinator's lease it has seen lapsed for ``grace`` seconds, every ``interval``.

    The grace is counted on this process's own clock across passes that reached the database: after a
    database outage every lease looks lapsed at once, and the coordinators, alive, renew theirs within a
    third of their lease; a lapse seen only once is not enough. Failing is one locked step per job
    (`ApiDb.take_lapsed`: the lease must be exactly the one seen), so with several API processes one
    watchdog fails a job once, and never a job whose lease was renewed meanwhile. A job that ended while its
    coordinator died (cancelled mid-step, its close held back) has its close released.

    With ``unanchored_fail_after`` (seconds, 0: never) it also fails each running job with a record waiting
    that long for its anchor (see the module docstring): seen waiting that long by this process's own clock
    (as the lease grace) and accepted at least that long ago, so a record put back to pending by a reorg
    waits the bound anew, and a restarted API counts from its first pass."""

    def __init__(
        self,
        db: ApiDb,
        store: LedgerStore,
        *,
        interval: float = 10.0,
        grace: float = 30.0,
        unanchored_fail_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.store = store
        self.interval = interval
        self.grace = grace
        self.unanchored_fail_after = unanchored_fail_after
        self.clock = clock
        self._seen: dict[tuple[str, str, datetime], float] = {}
        self._waiting_seen: dict[tuple[str, int], float] = {}
        self.thread_name = "secureflow-job-watchdog"
        super().__init__()

    def sweep(self) -> list[str]:
        """One pass: the ids of the jobs it failed (lease lapsed, then records unanchored too long)."""
        failed = self._fail_lapsed()
        if self.unanchored_fail_after > 0:
            failed += self._fail_unanchored()
        return failed

    def _fail_unanchored(self) -> list[str]:
        now = datetime.now(timezone.utc)
        mono = self.clock()
        bound = self.unanchored_fail_after
        # Each running job's oldest waiting record, every pass: its wait counts from when this process
        # first saw it waiting (its own clock) and must also show in the record's acceptance time, so a
        # record a reorg or a reverted batch put back to pending waits the bound anew (its acceptance
        # is old), and another host's clock cannot fail a job early.
        waiting = self.store.unanchored_running_jobs(now)
        seen = {(r.job_id, r.id): self._waiting_seen.get((r.job_id, r.id), mono) for r in waiting}
        self._waiting_seen = seen
        failed: list[str] = []
        for record in waiting:
            waited = mono - seen[(record.job_id, record.id)]
            if waited < bound or (now - record.accepted_at).total_seconds() < bound:
                continue
            try:
                job = self.store.update_job(
                    record.job_id, status="failed", reason=unanchored_reason(record, waited)
                )
            except InvalidStateError:
                continue  # it ended meanwhile
            if job.status != "failed":
                continue  # it ended another way meanwhile (an ended job keeps its status)
            log.warning(
                "job failed by the watchdog: step %d's record waited %.0f s to be anchored",
                record.seq,
                waited,
                extra={"job_id": record.job_id},
            )
            failed.append(record.job_id)
        return failed

    def _fail_lapsed(self) -> list[str]:
        now = self.clock()
        lapsed = self.db.lapsed_leases()
        self._seen = {key: self._seen.get(key, now) for key in lapsed}  # forget renewed or dealt-with ones
        failed: list[str] = []
        for key, first in self._seen.items():
            job_id, runner, lease_until = key
            if now - first < self.grace:
                continue
            if not self.db.take_lapsed(job_id, runner, lease_until):
                continue  # renewed or taken by another watchdog since it was listed
            job = self.store.get_job(job_id)
            if job is None:
                continue
            if job.status in ("created", "running"):
                try:
                    self.store.update_job(job_id, status="failed", reason=lapsed_reason(runner, lease_until))
                except InvalidStateError:
                    continue  # it ended meanwhile (its coordinator came back and finished it)
                log.warning(
                    "job failed by the watchdog: its coordinator's lease lapsed", extra={"job_id": job_id}
                )
                failed.append(job_id)
            else:
                self.store.release_close(job_id)  # a close held for the step it was running: due now
        return failed

    def after_failed_pass(self) -> None:
        self._seen.clear()  # a DB outage: lapses seen before it do not count after it
