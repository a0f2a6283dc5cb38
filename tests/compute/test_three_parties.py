"""Jobs of three parties (issue 15, item 1): three SecretFlow party processes (SEMI2K over three SPU nodes).

A vertical split: alice holds the label and two features, bob and carol two features each; every table
has ids the others lack. PSI runs with the N-party protocols (the default ECDH_NPC, and ECDH_3PC and
KKRT_NPC) and gives exactly the plaintext intersection; SS-LR trained over the three parties' features,
then secure prediction to alice and its evaluation, reaches the AUC of plaintext logistic regression on
the same rows. A two-party PSI protocol is refused before anything runs. Contribution of three parties:
leave-one-party-out (four jobs) and exact Shapley values (the four coalitions holding the label
party). The three workers start once for this module (~0.5 GB each) and are shut down at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest

from secureflow.compute.consents import request_consents
from secureflow.compute.contribution import measure_leave_one_out
from secureflow.compute.errors import ConsentRefusedError, ManifestError, ParameterError
from secureflow.compute.manifest import JobManifest
from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.records import StepRecord, job_id_for
from secureflow.ledger.settlement.contribution import LeaveOneOutInputs, compute_weights
from secureflow.ledger.settlement.shapley import ShapleyInputs, party_shapley_values
from secureflow.ledger.signing import signature_problems

PARTIES = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def engine3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(PARTIES, tmp_path_factory.mktemp("engine3"), step_timeout=600.0)
    engine.start()
    try:
        yield engine
    finally:
        engine.shutdown()


def _tables(n: int = 1200, seed: int = 3) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x @ np.array([1.1, -0.7, 0.9, 0.6, -1.0, 0.8]) + rng.logistic(size=n) * 0.6 > 0).astype(int)
    ids = rng.permutation(n * 3)[:n] + 5000
    keep_b, keep_c = rng.random(n) < 0.9, rng.random(n) < 0.85
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "y": y})
    bob = pd.DataFrame({"id": ids[keep_b], "b0": x[keep_b, 2], "b1": x[keep_b, 3]})
    carol = pd.DataFrame({"id": ids[keep_c], "c0": x[keep_c, 4], "c1": x[keep_c, 5]})
    bob = pd.concat([bob, pd.DataFrame({"id": np.arange(50) + 9_000_000, "b0": 0.0, "b1": 0.0})])
    carol = pd.concat([carol, pd.DataFrame({"id": np.arange(40) + 8_000_000, "c0": 0.0, "c1": 0.0})])
    return {
        "alice": alice.sample(frac=1, random_state=1).reset_index(drop=True),
        "bob": bob.sample(frac=1, random_state=2).reset_index(drop=True),
        "carol": carol.sample(frac=1, random_state=3).reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def data(engine3: Engine) -> dict[str, pd.DataFrame]:
    tables = _tables()
    for party, table in tables.items():
        path = engine3.data_dir(party) / "t3.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    return tables


def _manifest(engine: Engine, steps: list[dict[str, Any]]) -> dict[str, Any]:
    engine.ensure_healthy()
    return {
        "name": "three",
        "parties": [{"name": p, "address": engine.addresses[p]} for p in PARTIES],
        "datasets": {"raw": {p: "t3.csv" for p in PARTIES}},
        "steps": steps,
    }


def _psi(protocol: str | None = None, out: str = "j") -> dict[str, Any]:
    params: dict[str, Any] = {"key": "id"}
    if protocol is not None:
        params["protocol"] = protocol
    return {"algorithm": "psi", "params": params, "inputs": {"table": "raw"}, "outputs": {"table": out}}


@pytest.mark.parametrize("protocol", [None, "PROTOCOL_ECDH_3PC", "PROTOCOL_KKRT_NPC"])
def test_psi_of_three_parties_is_the_true_intersection(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder, protocol: str | None
) -> None:
    name = f"psi-{protocol or 'default'}.csv"
    step = dict(_psi(protocol), save={"table": f"out/{name}"})
    result = run_job(engine3, _manifest(engine3, [step]), recorder)
    assert result.succeeded, (result.error_class, result.error_message)
    common = set(data["alice"]["id"]) & set(data["bob"]["id"]) & set(data["carol"]["id"])
    alice = pd.read_csv(engine3.data_dir("alice") / "out" / name)
    assert sorted(alice["id"]) == sorted(common)  # the receiver (alice) keeps the key column
    for party in ("bob", "carol"):
        rows = pd.read_csv(engine3.data_dir(party) / "out" / name)
        assert len(rows) == len(common) and "id" not in rows.columns
    record = StepRecord.model_validate_json(recorder.store.records_for_job(result.job_id)[0].record_json)
    addresses = [engine3.addresses[p] for p in PARTIES]
    assert signature_problems(record, addresses) == []  # all three parties signed their own part


def test_ss_lr_over_three_parties_matches_plaintext(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    features = ["a0", "a1", "b0", "b1", "c0", "c1"]
    steps = [
        _psi(),
        {
            "algorithm": "ss_lr",
            "params": {"label": "y", "features": features, "epochs": 8, "batch_size": 128},
            "inputs": {"table": "j"},
            "outputs": {"model": "lr3"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "j", "model": "lr3"},
            "outputs": {"table": "scores"},
        },
        {
            "algorithm": "biclassification_eval",
            "params": {"label": "y"},
            "inputs": {"labels": "j", "scores": "scores"},
            "outputs": {"report": "evaluation"},
        },
    ]
    result = run_job(engine3, _manifest(engine3, steps), recorder)
    assert result.succeeded, (result.error_class, result.error_message)
    report = result.report("evaluation", "alice")
    assert report is not None and result.report("evaluation", "bob") is None  # the metrics: alice's only
    auc = float(report["auc"])
    joined = data["alice"].merge(data["bob"], on="id").merge(data["carol"], on="id")
    reference = LogisticRegression().fit(joined[features], joined["y"])
    plain_auc = roc_auc_score(joined["y"], reference.predict_proba(joined[features])[:, 1])
    assert auc > 0.8 and abs(auc - plain_auc) < 0.03, (auc, plain_auc)
    assert len(recorder.store.records_for_job(result.job_id)) == 4


def test_a_two_party_psi_protocol_is_refused_before_anything_runs(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    with pytest.raises(ParameterError, match="PROTOCOL_RR22 is for two parties"):
        run_job(engine3, _manifest(engine3, [_psi("PROTOCOL_RR22")]), recorder)
    assert recorder.store.list_jobs() == []


def test_ss_xgb_over_three_parties_predicts_well(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    from sklearn.metrics import roc_auc_score

    steps = [
        dict(_psi(), save={"table": "out/xgb3-joined.csv"}),
        {
            "algorithm": "ss_xgb",
            "params": {"label": "y", "num_boost_round": 3, "max_depth": 3},
            "inputs": {"table": "j"},
            "outputs": {"model": "xgb3"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "j", "model": "xgb3"},
            "outputs": {"table": "scores"},
            "save": {"table": "out/xgb3-scores.csv"},
        },
    ]
    result = run_job(engine3, _manifest(engine3, steps), recorder)
    assert result.succeeded, (result.error_class, result.error_message)
    scores = pd.read_csv(engine3.data_dir("alice") / "out" / "xgb3-scores.csv")
    labels = pd.read_csv(engine3.data_dir("alice") / "out" / "xgb3-joined.csv")["y"].to_numpy()
    assert (
        len(scores)
        == len(labels)
        == len(data["alice"].merge(data["bob"], on="id").merge(data["carol"], on="id"))
    )
    assert roc_auc_score(labels, scores.iloc[:, -1]) > 0.8  # 3 trees over six features held by three parties
    for party in ("bob", "carol"):  # the scores went to alice only
        assert not (engine3.data_dir(party) / "out" / "xgb3-scores.csv").exists()


def test_an_aby3_job_is_refused_by_parties_running_semi2k(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    """The engine's SPU runs SEMI2K: a manifest naming ABY3 is refused before anything runs, and each
    party's worker asked directly (as a coordinator that skipped the check would) refuses its consent."""
    manifest = {**_manifest(engine3, [_psi()]), "spu_protocol": "ABY3"}
    with pytest.raises(ManifestError, match="SPU protocol is ABY3 but this engine's parties run SEMI2K"):
        run_job(engine3, manifest, recorder)
    assert recorder.store.list_jobs() == []
    creator, salt, secret = engine3.addresses["alice"], "0x" + "5a" * 32, "0x" + "3c" * 32
    job_id = job_id_for(creator, JobManifest.parse(manifest).manifest_hash(secret), salt)
    with pytest.raises(ConsentRefusedError) as refused:
        request_consents(
            engine3,
            manifest,
            job_id=job_id,
            creator=creator,
            salt=salt,
            job_secret=secret,
            parties=[engine3.addresses[p] for p in PARTIES],
            chain_id=1337,
            ledger="0x" + "11" * 20,
        )
    for party in PARTIES:
        assert f"party {party!r} refuses" in str(refused.value), refused.value
    assert str(refused.value).count("names SPU protocol ABY3 but this party's SPU runs SEMI2K") == 3


def _contribution_steps() -> list[dict[str, Any]]:
    """PSI, SS-LR over every party's features (few epochs: the coalitions only need to differ), secure
    prediction to alice and its evaluation."""
    return [
        _psi(),
        {
            "algorithm": "ss_lr",
            "params": {"label": "y", "epochs": 3, "batch_size": 128},
            "inputs": {"table": "j"},
            "outputs": {"model": "lr"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "j", "model": "lr"},
            "outputs": {"table": "scores"},
        },
        {
            "algorithm": "biclassification_eval",
            "params": {"label": "y"},
            "inputs": {"labels": "j", "scores": "scores"},
            "outputs": {"report": "evaluation"},
        },
    ]


def test_leave_one_party_out_of_three(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    """Leave-one-party-out with a label holder (alice, also two features) and two feature holders: four
    real jobs (every party, without each party's features; alice's label stays the target), each
    co-signed by all three parties; every party's features help, so each gets a share."""
    measured = measure_leave_one_out(engine3, _manifest(engine3, _contribution_steps()), recorder)
    assert [c.coalition for c in measured.coalitions] == [
        "all",
        "without alice",
        "without bob",
        "without carol",
    ]
    assert measured.without("alice").features == {"bob": ["b0", "b1"], "carol": ["c0", "c1"]}
    assert measured.without("carol").features == {"alice": ["a0", "a1"], "bob": ["b0", "b1"]}
    inputs = measured.to_inputs()
    assert isinstance(inputs, LeaveOneOutInputs) and inputs.full_job == measured.full.job_id
    assert measured.full.metric is not None and measured.full.metric > 0.9
    for party in PARTIES:  # each party's features add to the model
        without = measured.without(party).metric
        assert without is not None and without < measured.full.metric, (party, without)
    bps = compute_weights(inputs).bps
    assert sum(bps) == 10_000 and all(b > 0 for b in bps), bps
    addresses = [engine3.addresses[p] for p in PARTIES]
    for coalition in measured.coalitions:
        assert coalition.job_id is not None
        rows = recorder.store.records_for_job(coalition.job_id)
        assert len(rows) == 4
        for row in rows:  # every step co-signed by the three parties
            assert signature_problems(StepRecord.model_validate_json(row.record_json), addresses) == []


def test_exact_shapley_values_of_three_parties(
    engine3: Engine, data: dict[str, pd.DataFrame], recorder: OutboxRecorder
) -> None:
    """Shapley over the four coalitions that hold the label party ({alice, bob, carol}, {alice, bob},
    {alice, carol}, {alice}), each a real recorded job; the values sum to AUC(all) - 0.5 (efficiency) and
    every party's features are worth something."""
    measured = measure_leave_one_out(
        engine3, _manifest(engine3, _contribution_steps()), recorder, method="shapley"
    )
    assert measured.method == "shapley" and measured.baseline == 0.5
    assert [c.members for c in measured.coalitions] == [
        ("alice", "bob", "carol"),
        ("alice", "bob"),
        ("alice", "carol"),
        ("alice",),
    ]
    assert measured.coalitions[3].features == {"alice": ["a0", "a1"]}
    inputs = measured.to_inputs()
    assert isinstance(inputs, ShapleyInputs) and inputs.label_party == engine3.addresses["alice"]
    values = party_shapley_values(inputs)
    full = measured.full.metric
    assert full is not None and sum(values) == Fraction(repr(full)) - Fraction(1, 2)  # efficiency, exactly
    assert all(v > 0 for v in values), values
    result = compute_weights(inputs)
    assert result.method == "shapley" and sum(result.bps) == 10_000
    jobs = {c.job_id for c in measured.coalitions}
    assert None not in jobs and len(jobs) == 4
    assert {j for _, j in inputs.evidence_jobs()} == jobs
    for job_id in jobs:
        assert job_id is not None and len(recorder.store.records_for_job(job_id)) == 4
