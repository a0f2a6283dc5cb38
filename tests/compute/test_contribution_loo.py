"""Leave-one-party-out contribution measured on real SecretFlow (secureflow.compute.contribution).

The coalitions (all parties, without alice, without bob) run as real jobs on
the session's warm party workers; their metrics are compared with scikit-learn
trained on the same feature subsets, every coalition's steps must be in the
ledger outbox, and bad manifests must fail before anything runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cf_helpers import joined, manifest, put
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from secureflow.compute.contribution import Progress, _metadata, measure_leave_one_out, plan_leave_one_out
from secureflow.compute.errors import ContributionManifestError, NoFeaturesLeftError, UnknownAlgorithmError
from secureflow.compute.manifest import JobManifest
from secureflow.ledger.records import StepRecord
from secureflow.ledger.settlement.contribution import compute_weights, parse_inputs
from secureflow.ledger.signing import verify_party_signature

REPO_ROOT = Path(__file__).resolve().parents[2]
ALICE_FEATURES = ["a0", "a1"]
BOB_FEATURES = ["b0", "b1", "b2"]
FEATURES = ALICE_FEATURES + BOB_FEATURES


def bob_heavy_data(n: int = 1200, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Alice: id, a0, a1 (weak signal), y; bob: id, b0..b2 (most of the signal); ~90% overlap."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    logits = x @ np.array([0.35, -0.25, 1.6, -1.2, 0.9]) + 0.2
    y = (logits + rng.logistic(size=n) > 0).astype(int)
    ids = rng.permutation(n * 3)[:n] + 5_000
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "y": y})
    keep = rng.random(n) < 0.9
    bob = pd.DataFrame({"id": ids[keep], "b0": x[keep, 2], "b1": x[keep, 3], "b2": x[keep, 4]})
    return alice, bob.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def data(engine) -> tuple[pd.DataFrame, pd.DataFrame]:  # type: ignore[no-untyped-def]
    alice, bob = bob_heavy_data()
    put(engine, "alice", "loo_a.csv", alice)
    put(engine, "bob", "loo_b.csv", bob)
    return alice, bob


def steps(features: list[str] | None = None, *, evaluate: bool = True) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}},  # default name s0.table
        {
            "algorithm": "standard_scaler",
            "params": {"columns": FEATURES},
            "inputs": {"table": "s0.table"},
            "outputs": {"table": "scaled"},
        },
        {  # not needed by the evaluation: the coalitions leave it out
            "algorithm": "table_statistics",
            "params": {"columns": ["a0", "b0"]},
            "inputs": {"table": "scaled"},
            "outputs": {"report": "stats"},
        },
        {
            "algorithm": "ss_lr",
            "params": {
                "label": "y",
                **({} if features is None else {"features": features}),
                "epochs": 4,
                "learning_rate": 0.3,
                "batch_size": 128,
            },
            "inputs": {"table": "scaled"},
            "outputs": {"model": "lr"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "scaled", "model": "lr"},
            "outputs": {"table": "scores"},
            "save": {"table": "out/loo/scores.csv"},
        },
    ]
    if evaluate:
        out.append(
            {
                "algorithm": "biclassification_eval",
                "params": {"label": "y", "reveal_to": ["alice", "bob"]},
                "inputs": {"labels": "scaled", "scores": "scores"},
                "outputs": {"report": "evaluation"},
                "save": {"report": "out/loo/evaluation.json"},
            }
        )
    return out


def _manifest(engine, step_list: list[dict[str, Any]]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return manifest(engine, {"raw": {"alice": "loo_a.csv", "bob": "loo_b.csv"}}, step_list)


def _sklearn_auc(ref: pd.DataFrame, features: list[str]) -> float:
    x = StandardScaler().fit_transform(ref[FEATURES])[:, [FEATURES.index(f) for f in features]]
    model = LogisticRegression(max_iter=1000).fit(x, ref["y"])
    return float(roc_auc_score(ref["y"], model.predict_proba(x)[:, 1]))


def test_leave_one_out_on_secretflow(engine, recorder, data) -> None:  # type: ignore[no-untyped-def]
    events: list[Progress] = []
    m = _manifest(engine, steps())  # features default: every numeric column but the label and the key
    measured = measure_leave_one_out(engine, m, recorder, progress=events.append)

    assert [c.coalition for c in measured.coalitions] == ["all", "without alice", "without bob"]
    assert measured.full.features == {"alice": ALICE_FEATURES, "bob": BOB_FEATURES}
    assert measured.without("alice").features == {"bob": BOB_FEATURES}
    assert measured.without("bob").features == {"alice": ALICE_FEATURES}
    assert (measured.metric, measured.higher_is_better, measured.label_party) == ("auc", True, "alice")

    # each coalition's AUC equals scikit-learn's on the same features (the SS-LR tolerance: 0.02)
    ref = joined(*data)
    for coalition in measured.coalitions:
        features = [c for cols in coalition.features.values() for c in cols]
        expected = _sklearn_auc(ref, features)
        assert abs(coalition.metric - expected) <= 0.02, (coalition.coalition, coalition.metric, expected)

    # bob carries most of the signal, so leaving him out costs more, and his weight is larger
    inputs = measured.to_inputs()
    assert parse_inputs(measured.inputs_document()) == inputs
    assert inputs.full == measured.full.metric
    assert [p.party for p in inputs.parties] == [engine.addresses["alice"], engine.addresses["bob"]]
    weights = dict(zip(inputs.members, compute_weights(inputs).bps, strict=True))
    assert sum(weights.values()) == 10_000
    assert weights[engine.addresses["bob"]] > weights[engine.addresses["alice"]], weights

    # every coalition ran as a recorded job: the 5 steps the evaluation needs, co-signed, in the outbox
    needed = ["psi", "standard_scaler", "ss_lr", "secure_predict", "biclassification_eval"]
    assert len({c.job_id for c in measured.coalitions}) == 3
    for coalition in measured.coalitions:
        rows = recorder.store.records_for_job(coalition.job_id)
        records = [StepRecord.model_validate_json(r.record_json) for r in rows]
        assert [r.algorithm for r in records] == needed
        assert [r.seq for r in records] == list(range(5))
        assert all(r.status == "succeeded" for r in records)
        assert all(p.signature and verify_party_signature(r, p) for r in records for p in r.parties)
        job = recorder.store.get_job(coalition.job_id)
        assert job is not None and job.status == "completed"
        assert job.manifest_hash == coalition.manifest_hash
        # the evaluation went to its owner (alice) only: bob holds no digest of a report
        evaluation = {p.party: p for p in records[-1].parties}
        assert evaluation[engine.addresses["bob"]].outputs == {}
        assert evaluation[engine.addresses["alice"]].outputs
    assert len(recorder.store.models()) == 3  # one model per coalition, recorded like any job's

    # nothing was saved into the parties' data folders; only the chosen metric left the label party
    for party in ("alice", "bob"):
        assert not (engine.data_dir(party) / "out" / "loo").exists()
    dumped = measured.model_dump_json()
    assert "total_samples" not in dumped and "ks" not in dumped and "f1_score" not in dumped

    # progress: start, one event per recorded step, finish, for each coalition
    assert [e.event for e in events] == (["started"] + ["step"] * 5 + ["finished"]) * 3
    assert events[-1].completed_steps == events[-1].total_steps == 15
    assert [e.algorithm for e in events if e.event == "step"][:5] == needed


def _scores_from_the_table() -> list[dict[str, Any]]:
    """An evaluation of a table column instead of a trained model's scores."""
    out = steps()
    out[-1] = {
        **out[-1],
        "params": {"label": "y", "score": "a0"},
        "inputs": {"labels": "scaled", "scores": "scaled"},
    }
    return out


@pytest.mark.parametrize(
    ("step_list", "error", "match"),
    [
        (steps(evaluate=False), ContributionManifestError, "no evaluation step"),
        (steps(ALICE_FEATURES), NoFeaturesLeftError, "without party 'alice'"),
        (steps(BOB_FEATURES), NoFeaturesLeftError, "without party 'bob'"),
        (_scores_from_the_table(), ContributionManifestError, "secure_predict"),
        ([*steps(), {"algorithm": "no_such", "inputs": {}}], UnknownAlgorithmError, "no_such"),
    ],
)
def test_bad_manifest_fails_before_any_compute(  # type: ignore[no-untyped-def]
    engine, recorder, data, step_list, error, match
) -> None:
    job_manifest = _manifest(engine, step_list)  # starts the session's workers if a test stopped them
    pids = {p: w.proc.pid for p, w in engine.workers.items()}
    assert set(pids) == {"alice", "bob"}
    with pytest.raises(error, match=match) as info:
        measure_leave_one_out(engine, job_manifest, recorder)
    assert info.value.hint  # every error says what to do
    assert recorder.store.list_jobs() == []  # no coalition was opened, no step ran
    assert engine.healthy and {p: w.proc.pid for p, w in engine.workers.items()} == pids  # none restarted


def test_unknown_metric_names_the_choices(engine, recorder, data) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContributionManifestError, match="choose one of auc, ks, f1_score"):
        measure_leave_one_out(engine, _manifest(engine, steps()), recorder, metric="r2_score")
    assert recorder.store.list_jobs() == []


def test_compute_contribution_does_not_import_web3() -> None:
    code = (
        "import sys, secureflow.compute.contribution; "
        "print([m for m in sys.modules if m.split('.')[0] in ('web3', 'secretflow', 'spu')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_shapley_coalition_without_features_runs_nothing(engine, recorder, data) -> None:  # type: ignore[no-untyped-def]
    """Planned on metadata only: when the model takes only bob's features, the coalition {alice} (the
    label party alone) brings none, so it is planned without a job (its value is the baseline), where
    leave-one-out refuses the manifest; a metric without a baseline is refused before anything runs."""
    job_manifest = JobManifest.parse(_manifest(engine, steps(BOB_FEATURES)))
    infos, model_infos = _metadata(engine, job_manifest)
    plan = plan_leave_one_out(job_manifest, infos, model_infos, method="shapley")
    assert [(c.name, c.members, c.manifest is None) for c in plan.coalitions] == [
        ("all", ("alice", "bob"), False),
        ("{alice}", ("alice",), True),
    ]
    assert plan.coalitions[0].features == {"bob": BOB_FEATURES}
    with pytest.raises(ContributionManifestError, match="not defined for f1_score"):
        measure_leave_one_out(engine, job_manifest, recorder, method="shapley", metric="f1_score")
    assert recorder.store.list_jobs() == []
