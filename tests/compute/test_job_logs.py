"""Job logs kept per party (local mode, the session's warm workers): one file per job and party, scrubbed
with the party's own cells when written.

Two jobs run one after the other on the same warm workers; each job's steps carry a fill value of their
own, so a line of one job in the other's file would show. One step's parameter is a cell of alice's own
data (a user's copy-paste): no party's log holds it, as a step's start names its parameters only, and the
leak scanner of the tests (the same one the worker applies) finds none of a party's cells in that
party's job logs. The rolling worker log never gets the step lines.
"""

from __future__ import annotations

import os
import time

from cf_helpers import manifest, put, vertical_data
from leaks import scan_sinks, table_renderings

from secureflow.compute.runner import run_job

MARK_A, MARK_B = -12345.5, -54321.5
PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}


def _fillna(value: float, out: str) -> dict[str, object]:
    return {
        "algorithm": "fillna",
        "params": {"strategy": "constant", "fill_value": value, "columns": ["a0", "b0"]},
        "inputs": {"table": "j"},
        "outputs": {"table": out},
    }


def test_each_job_has_its_own_log_per_party_scrubbed_at_write_time(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    alice, bob = vertical_data(200, seed=41)
    a, b = put(engine, "alice", "jl_a.csv", alice), put(engine, "bob", "jl_b.csv", bob)
    raw = {"raw": {"alice": a, "bob": b}}
    planted = float(alice["a1"].iloc[7])  # one cell of alice's own data
    steps_a = [PSI, _fillna(MARK_A, "fa"), _fillna(planted, "fp")]
    job_a = run_job(engine, manifest(engine, raw, steps_a), recorder)
    job_b = run_job(engine, manifest(engine, raw, [PSI, _fillna(MARK_B, "fb")]), recorder)
    assert job_a.succeeded and job_b.succeeded

    own = {"alice": alice, "bob": bob}
    for party in ("alice", "bob"):
        text_a = engine.job_log_path(party, job_a.job_id).read_text()
        text_b = engine.job_log_path(party, job_b.job_id).read_text()
        # each job's lines in its own file, never the other's (job a has a step 2, job b none)
        assert "step 1 (fillna) started" in text_a and "step 2 (fillna) started" in text_a
        assert f"party {party}: step 1 (fillna) done" in text_b and "step 2" not in text_b
        # a step's start names its parameters, never their values (review: a value may be another party's
        # cell, which this party's scrubber cannot recognise): neither job's fill values, nor alice's cell
        assert "started with parameters columns, fill_value, strategy" in text_a
        for value in (str(MARK_A), str(MARK_B), repr(planted)):
            assert value not in text_a and value not in text_b, (party, value)
        # the scanner finds none of the party's own cells in its job logs
        assert scan_sinks({"job a": text_a, "job b": text_b}, table_renderings([own[party]])) == {}
    # the step lines go to the job's log only: the rolling worker log has neither the value nor the lines
    worker_log = engine.log_path("alice").read_text()
    assert repr(planted) not in worker_log and "started with parameters" not in worker_log


def test_retention_removes_expired_job_logs_and_keeps_fresh_ones(engine) -> None:  # type: ignore[no-untyped-def]
    """The clock is the files' mtimes: one log changed 40 days ago, one 2 days ago (retention 30 days)."""
    old, fresh = "0x" + "0e" * 32, "0x" + "f5" * 32
    for job, days in ((old, 40), (fresh, 2)):
        path = engine.job_log_path("bob", job)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a line\n")
        when = time.time() - days * 86400
        os.utime(path, (when, when))
    assert engine.log_retention_days == 30
    assert engine.prune_logs() == 1
    assert not engine.job_log_path("bob", old).exists()
    assert engine.job_log_path("bob", fresh).read_text() == "a line\n"
