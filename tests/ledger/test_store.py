"""The ledger store on SQLite and PostgreSQL: outbox idempotency, batch lifecycle, nonces, migrations.

Every test runs once per backend (``backend`` fixture in ``tests/ledger/conftest.py``);
PostgreSQL tests each get a private schema that is dropped afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from secureflow.ledger.errors import (
    BatchConflictError,
    DuplicateJobError,
    InvalidStateError,
    RecordConflictError,
    StoreConflictError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnknownBatchError,
    UnknownJobError,
    UnknownRecordError,
)
from secureflow.ledger.store import NewJob, NewStepRecord, SqlLedgerStore, open_store
from secureflow.ledger.store.migrate import current_revision, head_revision
from secureflow.ledger.store.models import Base, utcnow
from secureflow.ledger.store.schemas import JOB_STATUSES, MAX_JOB_REASON, NewModel, job_is_stuck

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
CHAIN_ID = 1337


def h(n: int) -> str:
    """A distinct 32-byte hex value."""
    return "0x" + f"{n:064x}"


def new_job(n: int = 1) -> NewJob:
    return NewJob(job_id=h(n), manifest_hash=h(1000 + n), creator=ALICE, parties=[ALICE, BOB])


def new_record(job: int, seq: int, *, variant: int = 0) -> NewStepRecord:
    body = json.dumps(
        {"job": job, "seq": seq, "variant": variant, "outputs": {"alice": h(seq)}}, sort_keys=True
    )
    return NewStepRecord(
        job_id=h(job),
        seq=seq,
        record_json=body,
        record_hash=h(10_000 * job + 100 * seq + variant),
        leaf=h(20_000_000 + 10_000 * job + 100 * seq + variant),
    )


class TestLedgerStore:
    # -- schema -------------------------------------------------------------------------------------
    def test_migrated_schema_matches_the_models(self, store: SqlLedgerStore, ledger_db_url: str) -> None:
        with store.engine.connect() as connection:
            diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diffs == []
        assert current_revision(ledger_db_url) == head_revision() == store.schema_revision()
        store.check()

    def test_reopening_migrates_nothing_and_keeps_every_record(self, ledger_db_url: str) -> None:
        with open_store(ledger_db_url) as first:
            first.create_job(new_job())
            accepted = [first.accept_record(new_record(1, seq)) for seq in range(5)]
            batch = first.create_batch(h(77), h(78), [accepted[0].id, accepted[1].id])
        with open_store(ledger_db_url) as second:
            again = second.records_for_job(h(1))
            assert [r.id for r in again] == [r.id for r in accepted]
            assert [r.record_hash for r in again] == [r.record_hash for r in accepted]
            assert [r.status for r in again] == ["submitted"] * 2 + ["pending"] * 3
            assert second.get_batch(batch.batch_id) == batch
            assert second.accept_record(new_record(1, 3)) == accepted[3]  # still idempotent after reopen

    # -- job change listeners (live status) ----------------------------------------------------------
    def test_listeners_hear_every_committed_change_of_a_job_or_its_records_and_nothing_rolled_back(
        self, store: SqlLedgerStore
    ) -> None:
        heard: list[dict[str, str | None]] = []
        remove = store.add_job_listener(lambda changes: heard.append(dict(changes)))
        store.create_job(new_job(1))
        store.create_job(new_job(2))
        assert heard == [{h(1): "created"}, {h(2): "created"}]
        heard.clear()
        first = store.accept_record(new_record(1, 0))  # ORM path: the job becomes running
        store.accept_records([new_record(1, 1), new_record(2, 0)])  # bulk path
        assert heard == [{h(1): "running"}, {h(1): None, h(2): None}]
        heard.clear()
        with pytest.raises(RecordConflictError):  # rolled back: nobody hears of it
            store.accept_record(new_record(1, 0, variant=1))
        assert heard == []
        batch = store.create_batch(h(90), h(91), [first.id])
        store.mark_batch_submitted(batch.batch_id, h(92), ALICE, 0)
        store.mark_batch_confirmed(batch.batch_id, 5, h(93))
        store.update_job(h(2), status="completed")
        store.mark_job_close(h(2), "submitted", tx_hash=h(94))
        assert heard == [{h(1): None}] * 3 + [{h(2): "completed"}] * 2
        heard.clear()
        assert store.get_job(h(1)) is not None and store.records_for_job(h(1))  # reads: nothing
        remove()
        store.update_job(h(1), status="failed", reason="r")
        assert heard == []

    def test_a_failing_listener_does_not_fail_the_write(self, store: SqlLedgerStore) -> None:
        def broken(_changes: object) -> None:
            raise RuntimeError("listener down")

        store.add_job_listener(broken)
        store.create_job(new_job(3))
        assert store.get_job(h(3)) is not None

    # -- jobs ---------------------------------------------------------------------------------------
    def test_job_is_created_with_normalised_fields_and_utc_times(self, store: SqlLedgerStore) -> None:
        before = utcnow()
        job = store.create_job(
            NewJob(
                job_id=h(1).upper().replace("0X", "0x"),
                manifest_hash=h(2),
                creator=ALICE.lower(),
                parties=[BOB],
            )
        )
        assert job.job_id == h(1) and job.creator == ALICE and job.parties == [BOB]
        assert (job.status, job.chain_status, job.created_tx_hash) == ("created", "pending", None)
        assert job.created_at.tzinfo is not None and job.created_at.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= job.created_at <= utcnow() + timedelta(seconds=1)
        assert store.get_job(h(1)) == job
        assert store.get_job(h(2)) is None

    def test_duplicate_job_is_refused_with_a_hint(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        with pytest.raises(DuplicateJobError, match="already exists") as info:
            store.create_job(new_job())
        assert isinstance(info.value, StoreConflictError) and "new job id" in str(info.value)

    def test_list_jobs_pages_newest_first(self, store: SqlLedgerStore) -> None:
        for n in range(1, 6):
            store.create_job(new_job(n))
        page1, page2 = store.list_jobs(limit=3), store.list_jobs(limit=3, offset=3)
        assert len(page1) == 3 and len(page2) == 2
        assert {j.job_id for j in page1 + page2} == {h(n) for n in range(1, 6)}
        times = [j.created_at for j in page1 + page2]
        assert times == sorted(times, reverse=True)

    def test_update_job_and_terminal_states(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        job = store.update_job(h(1), chain_status="confirmed", created_tx_hash=h(99))
        assert (job.chain_status, job.created_tx_hash) == ("confirmed", h(99))
        assert store.update_job(h(1), status="completed").status == "completed"
        with pytest.raises(InvalidStateError, match="completed"):
            store.update_job(h(1), status="running")
        with pytest.raises(UnknownJobError):
            store.update_job(h(404), status="running")

    def test_a_held_close_waits_until_the_executor_releases_it(self, store: SqlLedgerStore) -> None:
        for n in (1, 2):
            store.create_job(new_job(n))
        # cancelled while its executor still runs a step: not closed on chain before that step is recorded
        held = store.update_job(h(1), status="cancelled", reason="cancelled by alice", hold_close=True)
        assert (held.status, held.close_status) == ("cancelled", None)
        assert store.jobs_to_close("pending") == []
        store.release_close(h(1))
        assert store.get_job(h(1)).close_status == "pending"  # type: ignore[union-attr]
        store.release_close(h(2))  # a job still running has nothing to release
        assert store.get_job(h(2)).close_status is None  # type: ignore[union-attr]

    def test_no_new_record_joins_a_job_whose_close_is_under_way(self, store: SqlLedgerStore) -> None:
        """A record accepted after the job's close was requested would be anchored after the close proved
        the job's last record: the chain's step count would then disagree with the job's records."""
        for n in (1, 2):
            store.create_job(new_job(n))
        store.accept_record(new_record(1, 0))
        store.update_job(h(1), status="completed")
        for accept in (
            lambda: store.accept_record(new_record(1, 1)),
            lambda: store.accept_records([new_record(1, 1)]),
            lambda: store.accept_records([new_record(2, 0), new_record(1, 1)]),  # all or nothing
        ):
            with pytest.raises(InvalidStateError, match="close on chain is under way"):
                accept()
        assert [r.seq for r in store.records_for_job(h(1))] == [0]
        assert store.records_for_job(h(2)) == []
        # a settlement's contribution record follows the job's end by design (anchored on its own)
        assert store.accept_record(new_record(1, 1), after_close=True).seq == 1
        # the same record again is an idempotent retry, not a new record
        assert store.accept_record(new_record(1, 0)).seq == 0
        assert [r.seq for r in store.accept_records([new_record(1, 0), new_record(1, 1)])] == [0, 1]
        # a held close (cancelled mid-step) takes that step's record, and refuses once released
        store.update_job(h(2), status="cancelled", reason="cancelled by alice", hold_close=True)
        store.accept_records([new_record(2, 0)])
        store.release_close(h(2))
        with pytest.raises(InvalidStateError):
            store.accept_record(new_record(2, 1))

    def test_a_job_that_did_not_complete_keeps_why(self, store: SqlLedgerStore) -> None:
        for n in (1, 2, 3, 4):
            store.create_job(new_job(n))
        store.accept_record(new_record(1, 0))
        failed = store.update_job(
            h(1), status="failed", reason="step 0 (psi) failed:\n  EmptyResultError: no common 'id'"
        )
        assert (failed.status, failed.reason) == (
            "failed",
            "step 0 (psi) failed: EmptyResultError: no common 'id'",
        )
        assert store.get_job(h(1)) == failed
        # the first reason stays; a job that ended without one gets the one given later
        assert store.update_job(h(1), status="failed", reason="the job could not run").reason == failed.reason
        assert store.update_job(h(2), status="cancelled").reason is None
        assert (
            store.update_job(h(2), status="cancelled", reason="cancelled by alice").reason
            == "cancelled by alice"
        )
        # a job its parties' nodes refused is rejected with their reasons; it never opened on chain, so
        # there is nothing to close there
        rejected = store.update_job(h(4), status="rejected", reason="party 'bob' refuses job 0x…: policy")
        assert (rejected.status, rejected.reason, rejected.close_status) == (
            "rejected",
            "party 'bob' refuses job 0x…: policy",
            None,
        )
        # a reason goes only with a failed, cancelled or rejected job; a long one is cut, not refused
        with pytest.raises(ValueError, match="failed, cancelled or rejected"):
            store.update_job(h(3), status="completed", reason="why")
        with pytest.raises(ValueError, match="failed, cancelled or rejected"):
            store.update_job(h(3), reason="why")
        long = store.update_job(h(3), status="failed", reason="x" * 5000).reason
        assert long is not None and len(long) == MAX_JOB_REASON and long.endswith("…")
        # the on-chain close keeps its own reason
        store.update_job(h(1), chain_status="confirmed")
        closed = store.mark_job_close(h(1), "failed", reason="JobNotOpen(0x…)")
        assert (closed.reason, closed.close_reason) == (failed.reason, "JobNotOpen(0x…)")

    def test_running_jobs_that_stopped_moving_are_stuck(self, store: SqlLedgerStore) -> None:
        for n in (1, 2, 3, 4):
            store.create_job(new_job(n))
        store.accept_record(new_record(1, 0))  # running
        store.update_job(h(2), status="running")
        store.update_job(h(3), status="failed", reason="no")  # ended: never stuck
        # job 4 is created, not running: never stuck
        now = utcnow()
        assert [j.job_id for j in store.stuck_jobs(now)] == [h(1), h(2)]  # longest idle first
        assert store.count_stuck_jobs(now) == 2
        assert [j.job_id for j in store.stuck_jobs(now, job_ids=[h(2), h(3)])] == [h(2)]
        assert [j.job_id for j in store.stuck_jobs(now, limit=1)] == [h(1)]
        assert all(job_is_stuck(j, now) for j in store.stuck_jobs(now))
        # a new step record moves job 1: it is no longer idle since `now`
        store.accept_record(new_record(1, 1))
        assert [j.job_id for j in store.stuck_jobs(now)] == [h(2)]
        assert not job_is_stuck(store.get_job(h(1)), now)  # type: ignore[arg-type]
        # a status change moves job 2
        store.update_job(h(2), chain_status="confirmed")
        assert store.stuck_jobs(now) == [] and store.count_stuck_jobs(now) == 0
        assert store.count_stuck_jobs(now - timedelta(days=1)) == 0

    def test_jobs_by_status_and_the_oldest_record_waiting_for_its_anchor(self, store: SqlLedgerStore) -> None:
        assert store.oldest_unconfirmed_accepted_at() is None
        assert store.count_jobs_by_status() == dict.fromkeys(JOB_STATUSES, 0)
        for n in (1, 2, 3):
            store.create_job(new_job(n))
        first = store.accept_record(new_record(1, 0))
        second = store.accept_record(new_record(2, 0))
        store.update_job(h(3), status="failed", reason="no")
        assert store.count_jobs_by_status() == {**dict.fromkeys(JOB_STATUSES, 0), "running": 2, "failed": 1}
        assert store.oldest_unconfirmed_accepted_at() == first.accepted_at
        batch = store.create_batch(h(77), h(78), [first.id])  # submitted: still waiting for its anchor
        assert store.oldest_unconfirmed_accepted_at() == first.accepted_at
        store.mark_batch_submitted(batch.batch_id, h(79), ALICE, 0)
        store.mark_batch_confirmed(batch.batch_id, 5, h(80))
        assert store.oldest_unconfirmed_accepted_at() == second.accepted_at
        store.mark_record_failed(second.id, "cannot be anchored")
        assert store.oldest_unconfirmed_accepted_at() is None

    def test_a_finished_job_waits_for_its_close_on_chain(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job(1))
        store.create_job(new_job(2))
        store.create_job(new_job(3))
        assert store.get_job(h(1)).close_status is None  # type: ignore[union-attr]
        store.update_job(h(1), chain_status="confirmed")
        store.update_job(h(1), status="running")
        assert store.jobs_to_close() == []  # running: nothing to close yet
        with pytest.raises(InvalidStateError, match="running"):
            store.mark_job_close(h(1), "submitted", tx_hash=h(50))
        store.update_job(h(1), status="completed")
        store.update_job(h(2), status="failed")  # never created on chain: never closed there
        store.update_job(h(3), chain_status="confirmed")
        store.update_job(h(3), status="cancelled")
        assert [j.job_id for j in store.jobs_to_close()] == [h(1), h(3)]
        assert store.get_job(h(2)).close_status == "pending"  # type: ignore[union-attr]

        submitted = store.mark_job_close(h(1), "submitted", tx_hash=h(50))
        assert (submitted.close_status, submitted.close_tx_hash, submitted.close_block) == (
            "submitted",
            h(50),
            None,
        )
        assert [j.job_id for j in store.jobs_to_close("submitted")] == [h(1)]
        confirmed = store.mark_job_close(h(1), "confirmed", tx_hash=h(50), block=12)
        assert (confirmed.close_status, confirmed.close_block) == ("confirmed", 12)
        assert [j.job_id for j in store.jobs_closed_after(11)] == [h(1)] and store.jobs_closed_after(12) == []
        assert store.update_job(h(1), status="completed").close_status == "confirmed"  # not reset

        with pytest.raises(ValueError, match="reason"):
            store.mark_job_close(h(3), "failed")
        failed = store.mark_job_close(h(3), "failed", reason="JobNotOpen(0x…): a party has not consented")
        assert (failed.close_status, failed.close_reason) == (
            "failed",
            "JobNotOpen(0x…): a party has not consented",
        )
        assert store.jobs_to_close() == []
        with pytest.raises(ValueError, match="close status"):
            store.mark_job_close(h(3), "done")  # type: ignore[arg-type]

    def test_a_refused_model_is_failed_with_its_reason(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        store.accept_model(NewModel(model_id="credit_lr", version=1, job_id=h(1), model_hash=h(7)))
        with pytest.raises(ValueError, match="reason"):
            store.mark_model("credit_lr", 1, "failed", tx_hash=None, block=None)
        failed = store.mark_model(
            "credit_lr", 1, "failed", tx_hash=None, block=None, reason="NotAnchorService"
        )
        assert (failed.status, failed.failure_reason) == ("failed", "NotAnchorService")
        assert store.models(status="failed") == [failed] and store.models(status="pending") == []
        again = store.mark_model("credit_lr", 1, "pending", tx_hash=None, block=None)
        assert (again.status, again.failure_reason) == ("pending", None)

    # -- outbox -------------------------------------------------------------------------------------
    def test_accept_record_is_idempotent_and_starts_the_job(self, store: SqlLedgerStore) -> None:
        created = store.create_job(new_job())
        first = store.accept_record(new_record(1, 0))
        assert (first.status, first.batch_id, first.confirmed_at) == ("pending", None, None)
        job = store.get_job(h(1))
        assert job is not None and job.status == "running" and job.updated_at >= created.updated_at
        again = store.accept_record(new_record(1, 0))
        assert again == first
        assert store.records_for_job(h(1)) == [first]
        assert store.count_records_by_status() == {"pending": 1, "submitted": 0, "confirmed": 0, "failed": 0}

    def test_concurrent_identical_accepts_store_one_row(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        with ThreadPoolExecutor(8) as pool:
            rows = list(pool.map(lambda _: store.accept_record(new_record(1, 7)), range(16)))
        assert len({r.id for r in rows}) == 1
        assert len(store.records_for_job(h(1))) == 1

    def test_different_record_under_same_seq_is_a_conflict(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        original = store.accept_record(new_record(1, 0))
        with pytest.raises(RecordConflictError, match=original.record_hash) as info:
            store.accept_record(new_record(1, 0, variant=1))
        assert "next sequence number" in str(info.value)
        assert store.get_record(h(1), 0) == original

    def test_unknown_job_is_an_error_not_an_empty_answer(self, store: SqlLedgerStore) -> None:
        with pytest.raises(UnknownJobError, match=h(404)) as info:
            store.accept_record(new_record(404, 0))
        assert isinstance(info.value, StoreNotFoundError) and "create the job first" in str(info.value)
        with pytest.raises(UnknownJobError):
            store.records_for_job(h(404))
        assert store.get_record(h(404), 0) is None
        assert store.count_records_by_status()["pending"] == 0

    def test_records_are_listed_by_seq_and_claimed_oldest_first(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job(1))
        store.create_job(new_job(2))
        order = [(1, 2), (2, 0), (1, 0), (1, 1)]
        accepted = [store.accept_record(new_record(j, s)) for j, s in order]
        assert [r.seq for r in store.records_for_job(h(1))] == [0, 1, 2]
        assert [r.id for r in store.claim_pending(10)] == [r.id for r in accepted]
        assert [r.id for r in store.claim_pending(2)] == [r.id for r in accepted[:2]]

    # -- batches ------------------------------------------------------------------------------------
    def test_batch_lifecycle_to_confirmed(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        recs = [store.accept_record(new_record(1, s)) for s in range(3)]
        batch = store.create_batch(h(500), h(501), [r.id for r in recs[:2]])
        assert (batch.status, batch.record_count, batch.tx_hash) == ("built", 2, None)
        assert [r.id for r in store.claim_pending(10)] == [recs[2].id]
        assert {r.status for r in store.records_for_batch(h(500))} == {"submitted"}

        submitted = store.mark_batch_submitted(h(500), h(502), SENDER.lower(), 7)
        assert (submitted.status, submitted.tx_hash, submitted.sender, submitted.nonce) == (
            "submitted",
            h(502),
            SENDER,
            7,
        )
        confirmed = store.mark_batch_confirmed(h(500), 12, h(503))
        assert (confirmed.status, confirmed.block_number, confirmed.block_hash) == ("confirmed", 12, h(503))
        rows = store.records_for_batch(h(500))
        assert [r.status for r in rows] == ["confirmed", "confirmed"]
        assert all(r.confirmed_at is not None and r.confirmed_at.tzinfo == timezone.utc for r in rows)
        assert store.count_records_by_status() == {"pending": 1, "submitted": 0, "confirmed": 2, "failed": 0}
        with pytest.raises(InvalidStateError):
            store.mark_record_failed(recs[0].id, "too late")

    def test_reorg_returns_records_to_pending_and_they_can_be_rebatched(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        ids = [store.accept_record(new_record(1, s)).id for s in range(2)]
        store.create_batch(h(600), h(601), ids)
        store.mark_batch_submitted(h(600), h(602), SENDER, 0)
        store.mark_batch_confirmed(h(600), 5, h(603))

        reorged = store.mark_batch_reverted_to_pending(h(600), "block 5 replaced by a reorg")
        assert (reorged.status, reorged.failure_reason) == ("reorged", "block 5 replaced by a reorg")
        back = store.records_for_job(h(1))
        assert [(r.status, r.batch_id, r.confirmed_at) for r in back] == [("pending", None, None)] * 2
        assert [r.id for r in store.claim_pending(10)] == ids
        with pytest.raises(InvalidStateError):
            store.mark_batch_confirmed(h(600), 6, h(604))

        # Rebuilt from the same records: same id and root, so the old batch starts over.
        rebuilt = store.create_batch(h(600), h(601), ids)
        assert (rebuilt.status, rebuilt.tx_hash, rebuilt.block_number, rebuilt.failure_reason) == (
            "built",
            None,
            None,
            None,
        )
        store.mark_batch_confirmed(h(600), 6, h(604))
        assert store.count_records_by_status()["confirmed"] == 2

    def test_failed_batch_releases_its_records(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        rid = store.accept_record(new_record(1, 0)).id
        store.create_batch(h(700), h(701), [rid])
        failed = store.mark_batch_failed(h(700), "anchorBatch reverted: RootAlreadyAnchored")
        assert failed.status == "failed"
        assert [r.id for r in store.claim_pending(5)] == [rid]
        new = store.create_batch(h(710), h(711), [rid])
        assert new.status == "built"

    def test_create_batch_is_all_or_nothing(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        a, b, c = (store.accept_record(new_record(1, s)).id for s in range(3))
        store.create_batch(h(800), h(801), [a])
        with pytest.raises(InvalidStateError, match=rf"\[{a}, 999999\]"):
            store.create_batch(h(810), h(811), [b, a, 999999])
        assert store.get_batch(h(810)) is None
        assert [r.id for r in store.claim_pending(10)] == [b, c]
        with pytest.raises(BatchConflictError):
            store.create_batch(h(800), h(899), [b])
        with pytest.raises(BatchConflictError):
            store.create_batch(h(820), h(801), [b])
        with pytest.raises(UnknownBatchError):
            store.mark_batch_submitted(h(404), h(1), SENDER, 0)

    def test_mark_record_failed(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        rid = store.accept_record(new_record(1, 0)).id
        failed = store.mark_record_failed(rid, "leaf does not match the record")
        assert (failed.status, failed.failure_reason) == ("failed", "leaf does not match the record")
        assert store.claim_pending(5) == []
        with pytest.raises(UnknownRecordError):
            store.mark_record_failed(123456, "x")

    # -- nonces -------------------------------------------------------------------------------------
    def test_concurrent_nonce_allocation_is_unique_and_consecutive(self, store: SqlLedgerStore) -> None:
        threads, per_thread = 8, 25
        barrier = threading.Barrier(threads)

        def allocate(_: int) -> list[int]:
            barrier.wait()
            return [store.allocate_nonce(CHAIN_ID, SENDER, 3) for _ in range(per_thread)]

        with ThreadPoolExecutor(threads) as pool:
            nonces = [n for chunk in pool.map(allocate, range(threads)) for n in chunk]
        assert sorted(nonces) == list(range(3, 3 + threads * per_thread))
        assert store.peek_nonce(CHAIN_ID, SENDER) == 3 + threads * per_thread

    def test_nonce_allocation_across_processes(self, store: SqlLedgerStore, ledger_db_url: str) -> None:
        script = (
            "import json, sys\n"
            "from secureflow.ledger.store import SqlLedgerStore\n"
            "s = SqlLedgerStore(sys.argv[1])\n"
            "s.peek_nonce(1, '0x' + '0' * 40)\n"  # connected and warm
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"  # start together
            f"print(json.dumps([s.allocate_nonce({CHAIN_ID}, {SENDER!r}, 0) for _ in range(40)]))\n"
        )
        root = Path(__file__).resolve().parents[2]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, ledger_db_url],
                cwd=root,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        local = [store.allocate_nonce(CHAIN_ID, SENDER, 0) for _ in range(40)]
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
        assert all(proc.returncode == 0 for proc in procs)
        nonces = local + [n for out in outputs for n in json.loads(out)]
        assert sorted(nonces) == list(range(120))

    def test_nonce_follows_the_chain_and_can_be_reset(self, store: SqlLedgerStore) -> None:
        assert store.peek_nonce(CHAIN_ID, SENDER) is None
        assert store.allocate_nonce(CHAIN_ID, SENDER, 0) == 0
        assert store.allocate_nonce(CHAIN_ID, SENDER.lower(), 0) == 1  # same sender, any spelling
        assert store.allocate_nonce(CHAIN_ID, SENDER, 10) == 10  # chain is ahead: catch up
        assert store.allocate_nonce(CHAIN_ID, SENDER, 4) == 11  # chain is behind: keep our count
        assert store.allocate_nonce(1, SENDER, 0) == 0  # other chain, own counter
        store.reset_nonce(CHAIN_ID, SENDER, 5)  # "nonce too low" resync
        assert store.peek_nonce(CHAIN_ID, SENDER) == 5
        assert store.allocate_nonce(CHAIN_ID, SENDER, 0) == 5

    # -- checkpoints --------------------------------------------------------------------------------
    def test_checkpoints(self, store: SqlLedgerStore) -> None:
        assert store.get_checkpoint("indexer") is None
        store.set_checkpoint("indexer", 10, h(10))
        moved = store.set_checkpoint("indexer", 11, h(11))
        got = store.get_checkpoint("indexer")
        assert got is not None and (got.block_number, got.block_hash) == (11, h(11)) == (
            moved.block_number,
            moved.block_hash,
        )

    # -- connection errors --------------------------------------------------------------------------
    def test_unreachable_database_error_names_url_without_password(
        self, backend: str, tmp_path: Path
    ) -> None:
        if backend == "postgresql":
            url = "postgresql+psycopg://auditor:s3cr3t-pw@127.0.0.1:1/ledger?connect_timeout=2"
        else:
            blocker = tmp_path / "not-a-dir"
            blocker.write_text("")
            url = f"sqlite:///{blocker.as_posix()}/secureflow.db"
        with pytest.raises(StoreUnavailableError) as info:
            open_store(url)
        message = str(info.value)
        assert "s3cr3t-pw" not in message
        expected = make_url(url).render_as_string(hide_password=True)
        assert expected in message and "SECUREFLOW_DATABASE_URL" in message
        if backend == "postgresql":
            assert "auditor:***@127.0.0.1:1" in message

    # -- opening ------------------------------------------------------------------------------------
    def test_open_store_uses_env_url_else_a_local_sqlite_file(
        self, ledger_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SECUREFLOW_DATABASE_URL", ledger_db_url)
        with open_store() as from_env:
            assert from_env.url == ledger_db_url
            from_env.check()
        monkeypatch.delenv("SECUREFLOW_DATABASE_URL")
        monkeypatch.chdir(tmp_path)
        with open_store() as default:
            assert (tmp_path / ".secureflow" / "secureflow.db").is_file()
            with default.engine.connect() as connection:
                pragmas = [
                    connection.exec_driver_sql(f"PRAGMA {p}").scalar()
                    for p in ("journal_mode", "foreign_keys")
                ]
            assert pragmas == ["wal", 1]
            default.check()

    # -- anchoring pipeline -------------------------------------------------------------------------
    def test_bulk_accept_is_all_or_nothing_and_idempotent(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        first = store.accept_records([new_record(1, seq) for seq in range(50)])
        assert [r.seq for r in first] == list(range(50))
        assert {r.status for r in first} == {"pending"}
        again = store.accept_records([new_record(1, seq) for seq in range(45, 55)])
        assert [r.id for r in again[:5]] == [r.id for r in first[45:]]
        with pytest.raises(RecordConflictError):
            store.accept_records([new_record(1, 60), new_record(1, 3, variant=1)])
        assert store.get_record(h(1), 60) is None  # nothing of the refused call was written
        assert len(store.records_for_job(h(1))) == 55
        assert [p.id for p in store.pending_leaves(100)] == [r.id for r in store.claim_pending(100)]

    def test_requeued_batch_keeps_its_records_until_resent(self, store: SqlLedgerStore) -> None:
        store.create_job(new_job())
        ids = [r.id for r in store.accept_records([new_record(1, seq) for seq in range(3)])]
        store.accept_record(new_record(1, 3))
        store.create_batch(h(900), h(901), ids)
        store.mark_batch_submitted(h(900), h(902), SENDER, 4)
        store.mark_batch_mined(h(900), 10, h(903))
        requeued = store.requeue_batch(h(900), "block 10 was reorganised away")
        assert (requeued.status, requeued.tx_hash, requeued.block_number) == ("built", None, None)
        back = store.records_for_batch(h(900))
        assert {(r.status, r.batch_id) for r in back} == {("pending", h(900))}
        # A new batch cannot take them: they belong to the re-sent batch.
        assert [p.seq for p in store.claim_pending(10)] == [3]
        store.mark_batch_submitted(h(900), h(904), SENDER, 5)
        assert {r.status for r in store.records_for_batch(h(900))} == {"submitted"}
        store.mark_batch_mined(h(900), 12, h(905))
        with pytest.raises(InvalidStateError, match="mined in block 12"):
            store.mark_batch_confirmed(h(900), 10, h(903))  # stale view of the batch
        store.mark_batch_confirmed(h(900), 12, h(905))
        assert {r.status for r in store.records_for_batch(h(900))} == {"confirmed"}
        assert [b.batch_id for b in store.batches_anchored_after(11)] == [h(900)]
        assert store.batches_anchored_after(12) == []

    def test_event_index_rolls_back_above_the_fork(self, store: SqlLedgerStore) -> None:
        from secureflow.ledger.store.schemas import IndexedBlock, NewChainEvent

        def block(n: int) -> IndexedBlock:
            return IndexedBlock(block_number=n, block_hash=h(5000 + n), parent_hash=h(4999 + n))

        def event(n: int, batch: int) -> NewChainEvent:
            return NewChainEvent(
                name="BatchAnchored",
                block_number=n,
                block_hash=h(5000 + n),
                tx_hash=h(6000 + n),
                log_index=0,
                batch_id=h(batch),
                root=h(batch + 1),
                args={"recordCount": 3},
            )

        store.index_events([event(5, 700), event(9, 710)], [block(5), block(9), block(12)], "idx")
        checkpoint = store.get_checkpoint("idx")
        assert checkpoint is not None and checkpoint.block_number == 12
        assert [b.block_number for b in store.indexed_blocks(12)] == [12, 9, 5]
        assert [e.batch_id for e in store.events(name="BatchAnchored")] == [h(700), h(710)]
        assert store.rollback_events(6, "idx", block(5)) == [h(710)]
        assert [e.batch_id for e in store.events()] == [h(700)]
        assert [b.block_number for b in store.indexed_blocks(100)] == [5]
        assert store.get_checkpoint("idx").block_number == 5  # type: ignore[union-attr]
