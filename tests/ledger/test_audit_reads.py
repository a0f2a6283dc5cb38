"""The ledger's read interface for the API's audit reads, on SQLite and PostgreSQL.

The API uses it with its own audit index table; here a table of the same shape stands in for it, so
a ledger migration that breaks one of these reads fails here, in the ledger's tests.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, update

from secureflow.ledger.store import NewJob, NewStepRecord, SqlLedgerStore
from secureflow.ledger.store.audit_reads import AuditReads, OutboxEntry, RecordFilter
from secureflow.ledger.store.models import StepRecordOrm

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
CAROL = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"


def h(n: int) -> str:
    return "0x" + f"{n:064x}"


def _index_table() -> Table:
    return Table(
        "test_audit_index",
        MetaData(),
        Column("record_id", BigInteger, primary_key=True, autoincrement=False),
        Column("job_id", String(66)),
        Column("seq", BigInteger),
        Column("algorithm", String(64)),
        Column("started_at_ms", BigInteger),
        Column("finished_at_ms", BigInteger),
    )


@pytest.fixture
def reads(store: SqlLedgerStore) -> AuditReads:
    """Two jobs (alice+bob by alice, bob+carol by carol), 3 and 2 records; job 1's first two batched and
    confirmed; every record but job 1's last one in the index."""
    index = _index_table()
    index.metadata.create_all(store.engine)
    store.create_job(NewJob(job_id=h(1), manifest_hash=h(101), creator=ALICE, parties=[ALICE, BOB]))
    store.create_job(NewJob(job_id=h(2), manifest_hash=h(102), creator=CAROL, parties=[BOB, CAROL]))
    rows = []
    for job, steps in ((1, 3), (2, 2)):
        for seq in range(steps):
            body = {"algorithm": f"algo{seq}", "started_at_ms": 1000 * seq, "finished_at_ms": 1000 * seq + 5}
            rows.append(
                store.accept_record(
                    NewStepRecord(
                        job_id=h(job),
                        seq=seq,
                        record_json=json.dumps(body),
                        record_hash=h(1000 * job + seq),
                        leaf=h(2000 * job + seq),
                    )
                )
            )
    store.create_batch(h(77), h(78), [rows[0].id, rows[1].id])
    store.mark_batch_submitted(h(77), h(79), ALICE, 0)
    store.mark_batch_confirmed(h(77), 12, h(80))
    with store.engine.begin() as connection:
        connection.execute(
            insert(index),
            [
                {
                    "record_id": row.id,
                    "job_id": row.job_id,
                    "seq": row.seq,
                    "algorithm": f"algo{row.seq}",
                    "started_at_ms": 1000 * row.seq,
                    "finished_at_ms": 1000 * row.seq + 5,
                }
                for row in rows
                if (row.job_id, row.seq) != (h(1), 2)
            ],
        )
    return AuditReads(index)


def test_the_index_table_must_have_the_columns_the_reads_use() -> None:
    with pytest.raises(ValueError, match="lacks the columns algorithm, started_at_ms"):
        AuditReads(Table("bad", MetaData(), Column("record_id", Integer), Column("finished_at_ms", Integer)))


def test_steps_page_rows_join_the_index_and_the_batch(store: SqlLedgerStore, reads: AuditReads) -> None:
    with store.engine.connect() as connection:
        page = reads.steps_page_rows(connection, h(1), -1, 10)
        assert [tuple(row[:10]) for row in page] == [
            (0, "algo0", 0, 5, h(1000), h(2000), "confirmed", h(77), h(79), 12),
            (1, "algo1", 1000, 1005, h(1001), h(2001), "confirmed", h(77), h(79), 12),
            (2, None, None, None, h(1002), h(2002), "pending", None, None, None),  # not indexed yet
        ]
        assert page[0][11] is not None and page[2][11] is None  # confirmed_at
        assert [row[0] for row in reads.steps_page_rows(connection, h(1), 0, 1)] == [1]


def test_jobs_pages_and_counts(store: SqlLedgerStore, reads: AuditReads) -> None:
    with store.engine.connect() as connection:
        assert set(reads.jobs_page(connection, visible_to=None, status=None, limit=10, offset=0)) == {
            h(1),
            h(2),
        }
        assert reads.jobs_page(connection, visible_to=ALICE, status=None, limit=10, offset=0) == [h(1)]
        assert reads.jobs_page(connection, visible_to=CAROL, status=None, limit=10, offset=0) == [h(2)]
        assert reads.jobs_page(connection, visible_to=None, status="completed", limit=10, offset=0) == []
        assert reads.job_record_counts(connection, h(1)) == {
            "pending": 1,
            "submitted": 0,
            "confirmed": 2,
            "failed": 0,
        }


def test_audit_records_filter_and_show_the_anchor_only_while_batched(
    store: SqlLedgerStore, reads: AuditReads
) -> None:
    with store.engine.connect() as connection:
        steps = reads.steps(connection, h(1), -1, 10)
        assert [(s.seq, s.algorithm, s.tx_hash, s.block_number) for s in steps] == [
            (0, "algo0", h(79), 12),
            (1, "algo1", h(79), 12),
        ]  # job 1's seq 2 is not in the index: audit records are indexed ones
        everything = reads.records(connection, RecordFilter(), 0, 100)
        assert [(r.job_id, r.seq) for r in everything] == [(h(1), 0), (h(1), 1), (h(2), 0), (h(2), 1)]
        assert [
            r.record_id for r in reads.records(connection, RecordFilter(), everything[1].record_id, 100)
        ] == [r.record_id for r in everything[2:]]
        by = {
            "algorithm": RecordFilter(algorithm="algo1"),
            "time": RecordFilter(since_ms=500, until_ms=1500),
            "status": RecordFilter(status="pending"),
            "member": RecordFilter(member=CAROL),
            "visible": RecordFilter(visible_to=ALICE),
            "jobs": RecordFilter(job_ids=[h(2)]),
        }
        found = {
            name: [(r.job_id, r.seq) for r in reads.records(connection, flt, 0, 100)]
            for name, flt in by.items()
        }
        assert found == {
            "algorithm": [(h(1), 1), (h(2), 1)],
            "time": [(h(1), 1), (h(2), 1)],
            "status": [(h(2), 0), (h(2), 1)],
            "member": [(h(2), 0), (h(2), 1)],
            "visible": [(h(1), 0), (h(1), 1)],
            "jobs": [(h(2), 0), (h(2), 1)],
        }


def test_the_outbox_is_read_in_id_order_to_fill_the_index(store: SqlLedgerStore, reads: AuditReads) -> None:
    with store.engine.connect() as connection:
        newest = reads.newest_record_id(connection)
        entries = reads.records_after(connection, 0, 100)
        assert [e.id for e in entries][-1] == newest and len(entries) == 5
        assert all(isinstance(e, OutboxEntry) for e in entries)
        assert json.loads(entries[0].record_json)["algorithm"] == "algo0"
        assert reads.records_after(connection, entries[2].id, 1) == [entries[3]]
        assert reads.records_after(connection, newest, 100) == []
        reads.analyze(connection)  # PostgreSQL only; a no-op on SQLite


def test_jobs_by_status_anchored_per_minute_and_backlog(store: SqlLedgerStore, reads: AuditReads) -> None:
    """The overview's figures, computed in SQL: per-minute buckets of confirmation times (a record at
    exactly a minute's start falls in that minute), accept-to-confirmed latency per bucket, and the
    backlog with its oldest pending record; each optionally only for the jobs an address is party to."""
    store.update_job(h(2), status="failed", reason="boom")
    base = datetime(2026, 1, 2, 10, 0, 0, tzinfo=timezone.utc)
    times = {  # (job, seq) -> (accepted_at, confirmed_at or None: still pending)
        (1, 0): (base - timedelta(seconds=10), base + timedelta(seconds=5)),  # 15 s, minute 10:00
        (1, 1): (base + timedelta(seconds=20), base + timedelta(seconds=59, microseconds=999_000)),
        (1, 2): (base + timedelta(seconds=30), base + timedelta(minutes=2)),  # exactly 10:02:00, 90 s
        (2, 0): (base + timedelta(seconds=1), base + timedelta(minutes=2, seconds=30)),  # 149 s, 10:02
        (2, 1): (base - timedelta(minutes=5), None),  # the oldest pending
    }
    with store.engine.begin() as connection:
        for (job, seq), (accepted, confirmed) in times.items():
            connection.execute(
                update(StepRecordOrm)
                .where(StepRecordOrm.job_id == h(job), StepRecordOrm.seq == seq)
                .values(
                    accepted_at=accepted,
                    confirmed_at=confirmed,
                    status="confirmed" if confirmed is not None else "pending",
                )
            )
    with store.engine.connect() as connection:
        assert reads.jobs_by_status(connection, visible_to=None) == {"running": 1, "failed": 1}
        assert reads.jobs_by_status(connection, visible_to=ALICE) == {"running": 1}
        buckets = reads.anchored_per_bucket(
            connection, since=base - timedelta(hours=1), bucket_seconds=60, visible_to=None
        )
        assert [(b.start, b.anchored) for b in buckets] == [(base, 2), (base + timedelta(minutes=2), 2)]
        assert buckets[0].latency_avg_seconds == pytest.approx((15 + 39.999) / 2, abs=0.01)
        assert buckets[0].latency_max_seconds == pytest.approx(39.999, abs=0.01)
        assert buckets[1].latency_max_seconds == pytest.approx(149, abs=0.01)
        mine = reads.anchored_per_bucket(
            connection, since=base - timedelta(hours=1), bucket_seconds=60, visible_to=ALICE
        )
        assert [(b.start, b.anchored, b.latency_max_seconds) for b in mine][1] == (
            base + timedelta(minutes=2),
            1,
            pytest.approx(90, abs=0.01),
        )
        later = reads.anchored_per_bucket(
            connection, since=base + timedelta(minutes=1), bucket_seconds=60, visible_to=None
        )
        assert [b.anchored for b in later] == [2]
        backlog = reads.backlog(connection, visible_to=None)
        assert (backlog.pending, backlog.submitted, backlog.failed) == (1, 0, 0)
        assert backlog.oldest_pending_at == base - timedelta(minutes=5)
        assert reads.backlog(connection, visible_to=ALICE).oldest_pending_at is None
