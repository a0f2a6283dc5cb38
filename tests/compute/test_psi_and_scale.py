"""PSI semantics (duplicate and missing keys, text keys), VIF at a realistic size, and a step timeout."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from cf_helpers import manifest, put, read
from sklearn.linear_model import LinearRegression

from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import StepRecord
from secureflow.ledger.store import LedgerStore
from secureflow.ledger.store.schemas import StepRecordRow


def test_psi_is_the_set_intersection_with_duplicates_and_missing_keys(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(8)
    a_keys = [f"u{k:04d}" for k in rng.integers(0, 400, 500)] + [None] * 7  # duplicates and missing keys
    b_keys = [f"u{k:04d}" for k in rng.integers(200, 700, 450)] + [None] * 3
    a = pd.DataFrame({"key": a_keys, "x": rng.normal(size=len(a_keys))})
    b = pd.DataFrame({"uid": b_keys, "z": rng.normal(size=len(b_keys))})
    m = manifest(
        engine,
        {"t": {"alice": put(engine, "alice", "d_a.csv", a), "bob": put(engine, "bob", "d_b.csv", b)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": {"alice": "key", "bob": "uid"}, "receiver": "bob"},
                "inputs": {"table": "t"},
                "save": {"table": "out/d/out.csv"},
            }
        ],
    )
    res = run_job(engine, m, recorder)
    assert res.succeeded, res.error_message
    expected = sorted(set(a["key"].dropna()) & set(b["uid"].dropna()))
    out_b = read(engine, "bob", "out/d/out.csv")
    out_a = read(engine, "alice", "out/d/out.csv")
    assert out_b["uid"].tolist() == expected  # the receiver keeps the key; each key exactly once
    assert list(out_a.columns) == ["x"]  # alice's key column is dropped
    first_a = a.dropna().drop_duplicates("key").set_index("key")
    first_b = b.dropna().drop_duplicates("uid").set_index("uid")
    np.testing.assert_allclose(out_a["x"], first_a.loc[expected, "x"], atol=1e-12)
    np.testing.assert_allclose(out_b["z"], first_b.loc[expected, "z"], atol=1e-12)


def test_vif_at_realistic_size(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    """18 fraction bits made VIF return 0.0 for every column at ~51k rows; the precise profile does not."""
    n = 51_000
    rng = np.random.default_rng(9)
    x = rng.normal(size=(n, 4)) * [1.0, 50.0, 0.01, 3.0] + [0.0, 1000.0, 0.0, -5.0]
    x[:, 3] += 0.05 * x[:, 1]
    ids = np.arange(n)
    a = pd.DataFrame({"id": ids, "v0": x[:, 0], "v1": x[:, 1]})
    b = pd.DataFrame({"id": ids, "v2": x[:, 2], "v3": x[:, 3]})
    m = manifest(
        engine,
        {"v": {"alice": put(engine, "alice", "v_a.csv", a), "bob": put(engine, "bob", "v_b.csv", b)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "v"},
                "outputs": {"table": "j"},
            },
            {"algorithm": "vif", "inputs": {"table": "j"}, "outputs": {"report": "vif"}},
        ],
    )
    res = run_job(engine, m, recorder)
    assert res.succeeded, res.error_message
    report = res.report("vif", "bob")
    assert report is not None and report["columns"] == [
        "v0",
        "v1",
        "v2",
        "v3",
    ]  # the PSI key is not a feature
    ref = []
    for i in range(4):
        others = np.delete(x, i, axis=1)
        ref.append(1 / (1 - LinearRegression().fit(others, x[:, i]).score(others, x[:, i])))
    np.testing.assert_allclose(report["vif"], ref, rtol=1e-3, atol=1e-3)


class _ShortTimeoutAfterPsi(OutboxRecorder):
    """The real outbox recorder; once PSI's record is stored (the event, not a duration) the engine's step
    timeout drops to 4 s for the next step: SS-LR with 200 epochs at batch size 8 over 20,000 rows, made
    slow by its parameters (without a timeout, 2,000 rows took about 20 s on 2 cores; this is 10 times
    the work), so the timeout is what ends it."""

    def __init__(self, store: LedgerStore, engine: Engine) -> None:
        super().__init__(store)
        self.engine = engine

    def record_step(self, record: StepRecord) -> StepRecordRow:
        row = super().record_step(record)
        if record.algorithm == "psi":
            self.engine.step_timeout = 4.0
        return row


def test_step_timeout_fails_the_step_without_hanging(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(10)
    n = 20_000
    a = pd.DataFrame({"id": np.arange(n), "a0": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    b = pd.DataFrame({"id": np.arange(n), "b0": rng.normal(size=n)})
    m = manifest(
        engine,
        {"t": {"alice": put(engine, "alice", "to_a.csv", a), "bob": put(engine, "bob", "to_b.csv", b)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "t"},
                "outputs": {"table": "j"},
            },
            {
                "algorithm": "ss_lr",
                "params": {"label": "y", "features": ["a0", "b0"], "epochs": 200, "batch_size": 8},
                "inputs": {"table": "j"},
            },
        ],
    )
    old = engine.step_timeout  # the session's generous timeout: PSI runs under it
    results: list[JobResult] = []
    runner = threading.Thread(
        target=lambda: results.append(run_job(engine, m, _ShortTimeoutAfterPsi(recorder.store, engine))),
        daemon=True,
    )
    try:
        runner.start()
        runner.join(timeout=300)  # a generous deadline for "does not hang", not a duration
        assert not runner.is_alive(), "the job outlived its step timeout"
    finally:
        engine.step_timeout = old
    (res,) = results
    assert not res.succeeded and res.error_class == "WorkerTimeoutError"
    assert [s.record.status for s in res.steps] == ["succeeded", "failed"]
    assert (
        res.steps[1].record.algorithm == "ss_lr" and res.steps[1].record.error_class == "WorkerTimeoutError"
    )
    assert engine.workers == {}  # the stuck workers were stopped; the next job starts fresh ones
