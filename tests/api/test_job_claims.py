"""Coordinator claims on a submitted job (`ApiDb.claim_job` / `renew_lease` / `release_job`), on SQLite and
PostgreSQL: a duplicate delivery finds the job busy, a lapsed lease is taken over, and the lease is read
against the database's clock so that coordinators on hosts with different clocks agree on it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

import secureflow.api.server.db as api_db_module
from secureflow.api.server.db import ApiDb
from secureflow.ledger.store import SqlLedgerStore, open_store

JOB = "0x" + "ab" * 32


@pytest.fixture
def db(ledger_db_url: str) -> Iterator[ApiDb]:
    store: SqlLedgerStore = open_store(ledger_db_url)
    db = ApiDb(store.engine)
    db.migrate()
    member = db.create_member("alice", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "member")
    db.put_manifest(JOB, {"name": "t"}, member.id)
    try:
        yield db
    finally:
        store.close()


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
