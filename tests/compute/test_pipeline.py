"""The main pipeline on real SecretFlow: PSI, Fillna, StandardScaler, SS-LR, secure prediction, eval.

Each step is compared with a plaintext reference (pandas / scikit-learn), and
every step record lands in the ledger outbox, signed by both parties.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from cf_helpers import joined, manifest, put, read, vertical_data
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from secureflow.compute.runner import run_job
from secureflow.ledger.records import StepRecord
from secureflow.ledger.signing import verify_party_signature


def test_pipeline_matches_plaintext(engine, recorder) -> None:  # type: ignore[no-untyped-def]
    alice, bob = vertical_data(1000, seed=3)
    alice.loc[alice.index[:20], "a1"] = np.nan
    bob.loc[bob.index[:15], "b2"] = np.nan
    m = manifest(
        engine,
        {"raw": {"alice": put(engine, "alice", "p_a.csv", alice), "bob": put(engine, "bob", "p_b.csv", bob)}},
        [
            {
                "algorithm": "psi",
                "params": {"key": "id"},
                "inputs": {"table": "raw"},
                "outputs": {"table": "j"},
                "save": {"table": "out/j.csv"},
            },
            {
                "algorithm": "fillna",
                "params": {"strategy": "mean", "columns": ["a1", "b2"]},
                "inputs": {"table": "j"},
                "outputs": {"table": "f"},
                "save": {"table": "out/f.csv"},
            },
            {
                "algorithm": "standard_scaler",
                "params": {"columns": ["a0", "a1", "a2", "b0", "b1", "b2"]},
                "inputs": {"table": "f"},
                "outputs": {"table": "s"},
                "save": {"table": "out/s.csv"},
            },
            {
                "algorithm": "min_max_scaler",
                "params": {"columns": ["a0", "b1"]},
                "inputs": {"table": "f"},
                "outputs": {"table": "mm"},
                "save": {"table": "out/mm.csv"},
            },
            {
                "algorithm": "ss_lr",
                "params": {
                    "label": "y",
                    "features": ["a0", "a1", "a2", "b0", "b1", "b2"],
                    "epochs": 8,
                    "learning_rate": 0.3,
                    "batch_size": 128,
                },
                "inputs": {"table": "s"},
                "outputs": {"model": "lr"},
            },
            {
                "algorithm": "secure_predict",
                "params": {"receiver": "alice"},
                "inputs": {"table": "s", "model": "lr"},
                "outputs": {"table": "pred"},
                "save": {"table": "out/p.csv"},
            },
            {
                "algorithm": "biclassification_eval",
                "params": {"label": "y", "reveal_to": ["alice", "bob"]},
                "inputs": {"labels": "s", "scores": "pred"},
                "outputs": {"report": "auc"},
                "save": {"report": "out/auc.json"},
            },
        ],
    )
    res = run_job(engine, m, recorder)
    assert res.succeeded, (res.error_class, res.error_message)

    # PSI: the set intersection, rows aligned across the parties, key kept by alice only
    ref = joined(alice, bob)
    ja, jb = read(engine, "alice", "out/j.csv"), read(engine, "bob", "out/j.csv")
    assert list(ja.columns) == ["id", "a0", "a1", "a2", "y"] and list(jb.columns) == ["b0", "b1", "b2"]
    assert ja["id"].tolist() == ref["id"].tolist()
    np.testing.assert_allclose(jb.to_numpy(), ref[["b0", "b1", "b2"]].to_numpy(), atol=1e-9)

    # Fillna (mean), StandardScaler, MinMaxScaler: to 1e-6
    filled = ref.copy()
    for col in ("a1", "b2"):
        filled[col] = filled[col].fillna(filled[col].mean())
    fa, fb = read(engine, "alice", "out/f.csv"), read(engine, "bob", "out/f.csv")
    np.testing.assert_allclose(fa["a1"], filled["a1"], atol=1e-6)
    np.testing.assert_allclose(fb["b2"], filled["b2"], atol=1e-6)
    feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
    scaled = pd.DataFrame(StandardScaler().fit_transform(filled[feats]), columns=feats)
    sa, sb = read(engine, "alice", "out/s.csv"), read(engine, "bob", "out/s.csv")
    np.testing.assert_allclose(pd.concat([sa, sb], axis=1)[feats], scaled, atol=1e-6)
    mm = MinMaxScaler().fit_transform(filled[["a0", "b1"]])
    ma, mb = read(engine, "alice", "out/mm.csv"), read(engine, "bob", "out/mm.csv")
    np.testing.assert_allclose(np.c_[ma["a0"], mb["b1"]], mm, atol=1e-6)

    # SS-LR + secure prediction: only alice gets the scores; AUC within 0.02 of sklearn's
    assert (engine.data_dir("alice") / "out/p.csv").exists()
    assert not (engine.data_dir("bob") / "out/p.csv").exists()
    pred = read(engine, "alice", "out/p.csv")["pred"].to_numpy()
    auc = roc_auc_score(ref["y"], pred)
    sk = LogisticRegression(max_iter=1000).fit(scaled, ref["y"])
    sk_auc = roc_auc_score(ref["y"], sk.predict_proba(scaled)[:, 1])
    assert auc >= sk_auc - 0.02, (auc, sk_auc)

    # BiClassificationEval: the metrics match sklearn, revealed to both parties
    report = json.loads((engine.data_dir("bob") / "out/auc.json").read_text())
    assert abs(report["auc"] - auc) < 1e-3
    assert report["total_samples"] == len(ref) and report["positive_samples"] == int(ref["y"].sum())
    assert res.report("auc", "alice") == report

    # records: one per step, in the outbox, co-signed, no statistics in them
    rows = recorder.store.records_for_job(res.job_id)
    assert [r.seq for r in rows] == list(range(7))
    for row, step in zip(rows, res.steps, strict=True):
        rec = StepRecord.model_validate_json(row.record_json)
        assert rec == step.record and rec.status == "succeeded"
        assert all(p.signature and verify_party_signature(rec, p) for p in rec.parties)
    assert len(res.models) == 1 and res.models[0]["algorithm"] == "ss_lr"
    assert res.models[0]["spu_runtime_config"]["fxp_fraction_bits"] == 18
