"""Coordinator claims on a submitted job (`ApiDb.claim_job` / `renew_lease` / `release_job`), on SQLite and
PostgreSQL: a duplicate delivery finds the job busy, a lapsed lease is taken over, and the lease is read
against the database's clock so that coordinators on hosts with different clocks agree on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from scrape import wait_for

import secureflow.api.server.db as api_db_module
from secureflow.api.server.db import ApiDb
from secureflow.api.server.watchdog import LeaseWatchdog
from secureflow.ledger.store import SqlLedgerStore, open_store
from secureflow.ledger.store.schemas import NewJob

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
JOB, OTHER, DONE = "0x" + "ab" * 32, "0x" + "ac" * 32, "0x" + "ad" * 32


@pytest.fixture
def store(ledger_db_url: str) -> Iterator[SqlLedgerStore]:
    store = open_store(ledger_db_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def db(store: SqlLedgerStore) -> ApiDb:
    db = ApiDb(store.engine)
    db.migrate()
    member = db.create_member("alice", ALICE, "member")
    for job_id in (JOB, OTHER, DONE):
        store.create_job(
            NewJob(job_id=job_id, manifest_hash="0x" + "01" * 32, creator=ALICE, parties=[ALICE])
        )
        db.put_manifest(job_id, {"name": "t"}, member.id)
    return db


def test_a_job_is_claimed_once_renewed_and_taken_over_only_after_its_lease_lapsed(db: ApiDb) -> None:
    assert db.claim_job("0x" + "cd" * 32, "a", 30) == "unknown"
    assert db.claim_job(JOB, "a", 30) == "claimed"
    assert db.claim_job(JOB, "b", 30) == "busy"  # a duplicate delivery while a runs it
    assert db.renew_lease(JOB, "a", 30) and not db.renew_lease(JOB, "b", 30)
    db.release_job(JOB, "a")  # a is done: its lease ends now
    assert db.claim_job(JOB, "b", 30) == "taken_over"
    assert not db.renew_lease(JOB, "a", 30)  # a lost it


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_coordinator_whose_clock_runs_ahead_does_not_take_over_a_live_lease(
    db: ApiDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coordinator b's host clock runs an hour ahead of a's. A host whose clock is wrong cannot be made
    here, so b's clock is the one stand-in of this module: ``utcnow`` of the API database module moved
    an hour on. The lease a took is still live by the database's clock, so b must find the job busy."""
    assert db.claim_job(JOB, "a", 30) == "claimed"
    real = api_db_module.utcnow

    def an_hour_ahead() -> datetime:
        return real() + timedelta(hours=1)

    monkeypatch.setattr(api_db_module, "utcnow", an_hour_ahead)
    assert db.claim_job(JOB, "b", 30) == "busy"
    assert db.renew_lease(JOB, "a", 30)


def test_the_watchdog_fails_a_job_whose_coordinator_stopped_renewing_its_lease(
    db: ApiDb, store: SqlLedgerStore
) -> None:
    """Coordinator "dead" claimed JOB with a 1 s lease and never renewed it (killed); "live" holds OTHER
    with a long lease; "done" finished DONE and released it. Only JOB is failed, once, and only after its
    lapse was seen for the grace period on the watchdog's own clock; the redelivered task finds it ended."""
    for job_id, runner, lease in ((JOB, "dead", 1.0), (OTHER, "live", 600.0), (DONE, "done", 600.0)):
        assert db.claim_job(job_id, runner, lease) == "claimed"
        store.update_job(job_id, status="running")
    store.update_job(DONE, status="completed")
    db.release_job(DONE, "done")
    clock = [0.0]
    watchdog = LeaseWatchdog(db, store, grace=30.0, clock=lambda: clock[0])
    assert watchdog.sweep() == []  # every lease still holds
    assert wait_for(db.lapsed_leases, 30)  # JOB's lease lapses by the database's clock
    assert watchdog.sweep() == []  # seen lapsed once: not yet (a DB outage makes every lease look lapsed)
    clock[0] = 29.0
    assert watchdog.sweep() == []
    clock[0] = 31.0
    assert watchdog.sweep() == [JOB]
    job = store.get_job(JOB)
    assert job is not None and job.status == "failed" and job.close_status == "pending"
    assert "coordinator running this job (dead) stopped renewing its lease" in (job.reason or "")
    assert [store.get_job(j).status for j in (OTHER, DONE)] == ["running", "completed"]  # type: ignore[union-attr]
    assert watchdog.sweep() == []  # dealt with: not failed or listed again
    assert db.claim_job(JOB, "redelivered", 30) == "taken_over"  # its task comes back, finds it failed


def test_a_lease_renewed_after_it_was_listed_is_not_taken(db: ApiDb, store: SqlLedgerStore) -> None:
    """A coordinator cut off from the database for a while renews its lease just after a watchdog listed it
    lapsed: the watchdog's locked take finds another lease and leaves the job alone."""
    assert db.claim_job(JOB, "slow", 0.5) == "claimed"
    store.update_job(JOB, status="running")
    (listed,) = wait_for(db.lapsed_leases, 30)  # type: ignore[misc]
    assert db.renew_lease(JOB, "slow", 600.0)
    assert not db.take_lapsed(*listed)
    assert LeaseWatchdog(db, store, grace=0.0).sweep() == []
    assert store.get_job(JOB).status == "running"  # type: ignore[union-attr]


def test_a_held_close_is_released_when_its_coordinator_died(db: ApiDb, store: SqlLedgerStore) -> None:
    """Cancelled while a step ran (its close held until that step is recorded), then its coordinator
    died: the watchdog releases the close, so the job is closed on chain now, not when the task returns."""
    assert db.claim_job(JOB, "dead", 0.5) == "claimed"
    store.update_job(JOB, status="running")
    store.update_job(JOB, status="cancelled", reason="cancelled by alice", hold_close=True)
    assert store.get_job(JOB).close_status is None  # type: ignore[union-attr]
    watchdog = LeaseWatchdog(db, store, grace=0.0)
    assert wait_for(lambda: watchdog.sweep() == [] and store.get_job(JOB).close_status, 30) == "pending"  # type: ignore[union-attr]
    assert store.get_job(JOB).status == "cancelled"  # type: ignore[union-attr]
