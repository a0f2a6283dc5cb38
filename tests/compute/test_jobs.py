"""Bad input gives a clear error before anything runs, or a failed step record; never a hang."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from cf_helpers import manifest, put, vertical_data

from secureflow.compute.consents import request_consents
from secureflow.compute.errors import (
    DatasetError,
    ManifestError,
    ParameterError,
    SchemaError,
    UnknownAlgorithmError,
)
from secureflow.compute.manifest import JobManifest
from secureflow.compute.models import model_id_for
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.runner import run_job
from secureflow.ledger.records import StepRecord, job_id_for
from secureflow.ledger.signing import signature_problems


@pytest.fixture(scope="module")
def raw(engine) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    alice, bob = vertical_data(300, seed=21)
    alice["cat"] = np.where(alice["a0"] > 0, "p", "n")
    return {
        "raw": {"alice": put(engine, "alice", "j_a.csv", alice), "bob": put(engine, "bob", "j_b.csv", bob)}
    }


PSI = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}


def _lr(**params: object) -> dict[str, object]:
    return {"algorithm": "ss_lr", "params": {"label": "y", **params}, "inputs": {"table": "j"}}


@pytest.mark.parametrize(
    ("step", "error"),
    [
        ({"algorithm": "no_such_algorithm", "inputs": {"table": "j"}}, UnknownAlgorithmError),
        (_lr(epochs=0), ParameterError),
        (_lr(learning_rate=-1.0), ParameterError),
        (_lr(unknown_param=1), ParameterError),
        (_lr(features=["a0", "missing_col"]), SchemaError),
        (_lr(features=["a0", "cat"]), SchemaError),
        (
            {"algorithm": "secure_predict", "params": {"receiver": "carol"}, "inputs": {"table": "j"}},
            ManifestError,
        ),
        ({"algorithm": "fillna", "inputs": {"table": "nowhere"}}, ManifestError),
    ],
)
def test_invalid_step_fails_before_anything_runs(engine, recorder, raw, step, error) -> None:  # type: ignore[no-untyped-def]
    m = manifest(engine, raw, [PSI, step])
    with pytest.raises(error) as info:
        run_job(engine, m, recorder)
    assert info.value.hint  # every error says what to do
    assert recorder.store.list_jobs() == []  # nothing was opened on the ledger, no step ran


def test_mismatched_key_column(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    a = pd.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"uid": [1, 2, 3], "z": [0.5, 0.6, 0.7]})
    m = manifest(
        engine,
        {"t": {"alice": put(engine, "alice", "k_a.csv", a), "bob": put(engine, "bob", "k_b.csv", b)}},
        [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "t"}}],
    )
    with pytest.raises(SchemaError, match="key column 'id' is missing from party 'bob'"):
        run_job(engine, m, recorder)
    # the same tables with a key per party are fine at validation time
    m["steps"][0]["params"] = {"key": {"alice": "id", "bob": "uid"}}
    assert run_job(engine, m, recorder).succeeded


def test_missing_dataset_and_wrong_address(engine, recorder, raw) -> None:  # type: ignore[no-untyped-def]
    m = manifest(engine, {"raw": {"alice": "no_such.csv", "bob": raw["raw"]["bob"]}}, [PSI])
    with pytest.raises(DatasetError, match="not found"):
        run_job(engine, m, recorder)
    m = manifest(engine, raw, [PSI])
    m["parties"][1]["address"] = "0x" + "11" * 20
    with pytest.raises(ManifestError, match="member key"):
        run_job(engine, m, recorder)
    m = manifest(engine, {"raw": {"alice": "../../etc/passwd", "bob": raw["raw"]["bob"]}}, [PSI])
    with pytest.raises(ManifestError, match="relative"):
        run_job(engine, m, recorder)


def test_empty_intersection_is_a_failed_step_record(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    a = pd.DataFrame({"id": [1, 2, 3], "x": [0.1, 0.2, 0.3]})
    b = pd.DataFrame({"id": [7, 8, 9], "z": [0.5, 0.6, 0.7]})
    m = manifest(
        engine,
        {"t": {"alice": put(engine, "alice", "e_a.csv", a), "bob": put(engine, "bob", "e_b.csv", b)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "t"},
                "outputs": {"table": "j"},
            },
            {"algorithm": "fillna", "inputs": {"table": "j"}},
        ],
    )
    res = run_job(engine, m, recorder)
    assert not res.succeeded and res.error_class == "EmptyResultError"
    assert len(res.steps) == 1  # the job stopped at the failed step
    rows = recorder.store.records_for_job(res.job_id)
    assert len(rows) == 1
    rec = StepRecord.model_validate_json(rows[0].record_json)
    assert rec.status == "failed" and rec.error_class == "EmptyResultError"
    assert all(not p.outputs for p in rec.parties)
    job = recorder.store.get_job(res.job_id)
    assert job.status == "failed"
    # the job keeps why: the step, its error class and its message (which names no values); the record
    # anchors only the class
    assert job.reason.startswith("step 0 (psi) failed: EmptyResultError: "), job.reason
    assert res.error_message and res.error_message in job.reason
    assert engine.healthy  # a failure on both sides before SecretFlow diverged keeps the workers


def test_worker_killed_mid_step_fails_the_step_and_restarts(engine, recorder, raw) -> None:  # type: ignore[no-untyped-def]
    m = manifest(engine, raw, [PSI, _lr(epochs=200, batch_size=16, features=["a0", "a1", "b0"])])
    pids = {p: w.proc.pid for p, w in engine.workers.items()}
    box: dict[str, object] = {}
    runner = threading.Thread(target=lambda: box.update(res=run_job(engine, m, recorder)))
    runner.start()
    # the event, not a duration: PSI's record is in the outbox, so SS-LR (200 epochs) is what runs now
    deadline = time.monotonic() + 300
    while not any(recorder.store.records_for_job(j.job_id) for j in recorder.store.list_jobs()):
        assert runner.is_alive() and time.monotonic() < deadline, "PSI's record never arrived"
        time.sleep(0.05)
    os.kill(pids["bob"], signal.SIGKILL)
    runner.join(300)  # a generous deadline: the runner must notice the dead worker, not hang
    assert not runner.is_alive(), "the runner hung after a worker died"
    res = box["res"]
    assert not res.succeeded and res.error_class == "WorkerError"  # type: ignore[attr-defined]
    assert [s.record.status for s in res.steps] == ["succeeded", "failed"]  # type: ignore[attr-defined]
    rec = res.steps[-1].record  # type: ignore[attr-defined]
    assert rec.status == "failed" and rec.error_class == "WorkerError"
    for pid in pids.values():  # no orphan: the surviving worker was shut down too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # the next job restarts the workers (new processes, same member keys)
    res2 = run_job(engine, manifest(engine, raw, [PSI]), recorder)
    assert res2.succeeded
    assert {p: w.proc.pid for p, w in engine.workers.items()} != pids


def test_one_party_failing_alone_does_not_hang_the_other(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    """alice fails (row counts differ) while bob waits inside SecretFlow for the report she never sends."""
    rng = np.random.default_rng(4)
    a = pd.DataFrame({"id": np.arange(100), "y": rng.integers(0, 2, 100)})
    b = pd.DataFrame({"id": np.arange(100), "b0": rng.normal(size=100)})
    a2 = pd.DataFrame({"id": np.arange(100), "s": rng.random(100)})
    b2 = pd.DataFrame({"id": np.arange(50)})
    m = manifest(
        engine,
        {
            "r": {"alice": put(engine, "alice", "g_a.csv", a), "bob": put(engine, "bob", "g_b.csv", b)},
            "r2": {"alice": put(engine, "alice", "g_a2.csv", a2), "bob": put(engine, "bob", "g_b2.csv", b2)},
        },
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "r"},
                "outputs": {"table": "j"},
            },
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "r2"},
                "outputs": {"table": "k"},
            },
            {
                "algorithm": "biclassification_eval",
                "params": {"label": "y", "score": "s", "reveal_to": ["alice", "bob"]},
                "inputs": {"labels": "j", "scores": "k"},
            },
        ],
    )
    engine.failure_grace = 3.0
    try:
        res = run_job(engine, m, recorder)  # returns (pytest-timeout fails a hang)
    finally:
        engine.failure_grace = 30.0
    assert not res.succeeded and res.error_class == "SchemaError"  # the cause, not the timeout
    assert res.steps[-1].record.status == "failed"
    assert engine.workers == {}  # bob was stuck: both workers stopped, the next job restarts them


def test_a_consented_job_runs_only_its_consented_steps_data_and_records(  # type: ignore[no-untyped-def]
    engine, recorder, raw
) -> None:
    """Both parties consented to a PSI on ``raw`` (key ``id``). Under that job id, a coordinator then asks
    for another step (PSI on another key column: other parameters), for a dataset that is not the job's,
    and for a signature on a record with another parameter commitment: each party's worker refuses all
    three; the consented PSI itself runs, and its record is signed by both."""
    consented = manifest(engine, raw, [PSI])
    creator, salt, secret = engine.addresses["alice"], "0x" + "5a" * 32, "0x" + "3c" * 32
    job_id = job_id_for(creator, JobManifest.parse(consented).manifest_hash(secret), salt)
    parties = [engine.addresses[p] for p in ("alice", "bob")]
    for party, other in (("alice", "bob"), ("bob", "alice")):  # each may show the other the PSI result
        write_policy(engine.party_dir(party), PartyPolicy(reveal={"psi": (engine.addresses[other],)}))
    request_consents(
        engine,
        consented,
        job_id=job_id,
        creator=creator,
        salt=salt,
        job_secret=secret,
        parties=parties,
        chain_id=1337,
        ledger="0x" + "11" * 20,
    )
    res = run_job(engine, consented, recorder, job_id=job_id, salt=salt, creator=creator, job_secret=secret)
    assert res.succeeded, res
    record = StepRecord.model_validate_json(recorder.store.records_for_job(job_id)[0].record_json)
    assert signature_problems(record, parties) == []

    # what run_job sent for step 0, as a coordinator would send it, with other parameters
    step = {
        "op": "run_step",
        "job_id": job_id,
        "seq": 0,
        "algorithm": "psi",
        "params": {"key": "a0"},
        "inputs": {"table": "raw"},
        "outputs": {"table": "j"},
        "input_infos": {},
        "output_infos": {},
        "reveal_reports": True,
        "save": {},
    }
    datasets = {"raw": "payroll.csv"}  # a file of the party that is not the job's dataset
    for request in (
        step,
        {**step, "seq": 1},  # a step the job does not have
        {"op": "open_job", "job_id": job_id, "datasets": datasets, "models": {}},
        {
            "op": "sign",
            "record": record.model_copy(update={"params_hash": "0x" + "ee" * 32}).model_dump_json(),
        },
    ):
        replies = engine.all(request, timeout=60.0, what=str(request["op"]))
        assert all(not r["ok"] and "did not consent" in r["message"] for r in replies.values()), (
            request,
            replies,
        )


def test_worker_signs_only_the_step_it_ran_and_writes_models_only_in_its_folder(  # type: ignore[no-untyped-def]
    engine, recorder, raw, tmp_path
) -> None:
    """The attacks of issue 11 (6) through the worker's own queue: told ``expect_own_digests: false``, a
    worker signed an invented record (a signing oracle for whoever writes its queue), and wrote model
    metadata outside its models folder for ``model_id: "../../x"``. Each party's worker now signs only the
    step it ran last, with exactly its own digests, and keeps model ids to one folder name."""
    res = run_job(engine, manifest(engine, raw, [PSI]), recorder)
    assert res.succeeded
    record = StepRecord.model_validate_json(recorder.store.records_for_job(res.job_id)[0].record_json)
    assert signature_problems(record, [p.party for p in record.parties]) == []  # each party signed its part
    invented = record.model_copy(
        update={
            "parties": tuple(
                p.model_copy(update={"outputs": {"j": "0x" + "ab" * 32}, "signature": None})
                for p in record.parties
            )
        }
    )
    for request in (
        {"op": "sign", "record": invented.model_dump_json(), "expect_own_digests": False},
        {"op": "sign", "record": record.model_dump_json()},  # even the real record, once signed, is done
    ):
        replies = engine.all(request, timeout=60.0, what="sign")
        assert all(not r["ok"] and "refusing to sign" in r["message"] for r in replies.values()), replies
    escape = {"op": "write_model_meta", "model_id": "../../x", "meta": {"planted": True}}
    replies = engine.all(escape, timeout=60.0, what="write_model_meta")
    assert all(not r["ok"] and "not a folder name" in r["message"] for r in replies.values()), replies
    for party in ("alice", "bob"):
        root = engine.party_dir(party)
        assert not any("planted" in p.read_text() for p in root.parent.rglob("meta.json")), party
        assert not (root.parent / "x").exists() and not (root / "x").exists()

    # a model's metadata names its own id, which is that of the job step that trained it, and is written once
    model_id = model_id_for(res.job_id, 0, "m")
    meta = {"model_id": model_id, "name": "m", "lineage": {"job_id": res.job_id, "seq": 0}, "v": 1}
    for bad, why in (
        ({**meta, "model_id": "other-model"}, "names another model"),
        ({**meta, "lineage": {"job_id": "0x" + "ab" * 32, "seq": 0}}, "not that of the job step"),
    ):
        replies = engine.all(
            {"op": "write_model_meta", "model_id": model_id, "meta": bad}, timeout=60.0, what="meta"
        )
        assert all(not r["ok"] and why in r["message"] for r in replies.values()), replies
    written = engine.all(
        {"op": "write_model_meta", "model_id": model_id, "meta": meta}, timeout=60.0, what="meta"
    )
    assert all(r["ok"] for r in written.values()), written
    again = engine.all(
        {"op": "write_model_meta", "model_id": model_id, "meta": meta}, timeout=60.0, what="meta"
    )
    assert all(r["ok"] for r in again.values()), again  # the same metadata again: a retry
    other = {**meta, "v": 2}
    replaced = engine.all(
        {"op": "write_model_meta", "model_id": model_id, "meta": other}, timeout=60.0, what="meta"
    )
    assert all(not r["ok"] and "written once" in r["message"] for r in replaced.values()), replaced
