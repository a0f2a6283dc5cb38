"""`secureflow settle measure` end to end: real anvil, SQLite ledger, SecretFlow workers started by the CLI.

The command runs the three coalitions of a manifest (all, without alice, without bob) on its own local
engine, opens each coalition job on chain with the consent of every party's own worker (the member's node
creates it), records every step in the
outbox, and writes the inputs file that `settle propose --inputs` takes. The real anchoring worker then
anchors the coalitions' steps and records their models on chain.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from stack import ALICE, BOB, LedgerStack, make_anchorer, run_until_settled
from typer.testing import CliRunner, Result

from secureflow.api.cli.settle import settle_app
from secureflow.api.dev.devstack import provision_party, seed_dev_policy
from secureflow.compute.policy import PartyPolicy, write_policy
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.contracts import JobStatus
from secureflow.ledger.deploy import write_deployment
from secureflow.ledger.devchain import DEV_CHAIN_ID, DEV_PRIVATE_KEYS
from secureflow.ledger.settlement.contribution import LeaveOneOutInputs, compute_weights, load_inputs
from secureflow.ledger.settlement.shapley import ShapleyInputs
from secureflow.ledger.store.sql import open_store

KEYS = {"alice": DEV_PRIVATE_KEYS[1], "bob": DEV_PRIVATE_KEYS[2]}


def _data(n: int = 600, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x @ np.array([0.3, 1.5, -1.2, 0.8]) + rng.logistic(size=n) > 0).astype(int)
    ids = rng.permutation(n * 2)[:n]
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "y": y})
    bob = pd.DataFrame({"id": ids, "b0": x[:, 1], "b1": x[:, 2], "b2": x[:, 3]}).sample(
        frac=1.0, random_state=1
    )
    return alice, bob


def _manifest(*, evaluate: bool = True) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}},
        {
            "algorithm": "ss_lr",
            "params": {"label": "y", "epochs": 3, "learning_rate": 0.3, "batch_size": 128},
            "inputs": {"table": "j"},
            "outputs": {"model": "lr"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice"},
            "inputs": {"table": "j", "model": "lr"},
            "outputs": {"table": "scores"},
        },
    ]
    if evaluate:
        steps.append(
            {
                "algorithm": "biclassification_eval",
                "params": {"label": "y"},
                "inputs": {"labels": "j", "scores": "scores"},
                "outputs": {"report": "evaluation"},
            }
        )
    return {
        "name": "loo-cli",
        "parties": [{"name": "alice", "address": ALICE}, {"name": "bob", "address": BOB}],
        "datasets": {"raw": {"alice": "customers.csv", "bob": "customers.csv"}},
        "steps": steps,
    }


@pytest.fixture
def env(ledger_stack: LedgerStack, tmp_path: Path, chain_snapshot: None) -> dict[str, str]:
    deployment = tmp_path / "deployment.json"
    write_deployment(ledger_stack.deployment, deployment)
    return {
        "SECUREFLOW_RPC_URL": ledger_stack.rpc_url,
        "SECUREFLOW_CHAIN_ID": str(DEV_CHAIN_ID),
        "SECUREFLOW_DEPLOYMENT": str(deployment),
        "SECUREFLOW_DATABASE_URL": f"sqlite:///{(tmp_path / 'ledger.db').as_posix()}",
        "SECUREFLOW_MEMBER_KEY": KEYS["alice"],
    }


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "parties"
    layout = Engine(("alice", "bob"), root)  # only its folder layout: nothing is started here
    for party, table in zip(("alice", "bob"), _data(), strict=True):
        provision_party(layout, party, KEYS[party], table)
        # each party's worker checks every coalition job against its own policy before it consents
        seed_dev_policy(layout, party, [a for p, a in {"alice": ALICE, "bob": BOB}.items() if p != party])
    return root


def _measure(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(settle_app, ["measure", *args], env=env)
    print(result.output)  # shown when the test fails
    return result


def test_measure_runs_records_and_anchors_the_coalitions(  # type: ignore[no-untyped-def]
    ledger_stack, env, data_dir, tmp_path
) -> None:
    manifest, out = tmp_path / "manifest.json", tmp_path / "inputs.json"
    manifest.write_text(json.dumps(_manifest()))
    result = _measure(env, str(manifest), "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "without bob" in result.output and "settle propose" in result.output

    inputs = load_inputs(out)  # what `settle propose --inputs` reads
    assert isinstance(inputs, LeaveOneOutInputs) and inputs.metric == "auc"
    assert [p.party for p in inputs.parties] == [ALICE, BOB]
    weights = dict(zip(inputs.members, compute_weights(inputs).bps, strict=True))
    assert weights[BOB] > weights[ALICE], weights

    store = open_store(env["SECUREFLOW_DATABASE_URL"])
    try:
        jobs = store.list_jobs()
        assert len(jobs) == 3
        reader = ledger_stack.ledger(ledger_stack.client())
        # each coalition job was opened on chain before its first step, created by alice's node, with the
        # consent of every party signed by that party's own worker (never by the measuring member alone)
        assert {j.job_id for j in jobs} == {inputs.full_job, *(p.job_id for p in inputs.parties)}
        for job in jobs:
            on_chain = reader.get_job(bytes.fromhex(job.job_id[2:]))
            assert list(on_chain.parties) == [ALICE, BOB] and on_chain.creator == ALICE
            assert on_chain.status == JobStatus.OPEN, on_chain.status
            assert reader.has_consented(bytes.fromhex(job.job_id[2:]), ALICE)
            assert reader.has_consented(bytes.fromhex(job.job_id[2:]), BOB)
            assert [r.seq for r in store.records_for_job(job.job_id)] == [0, 1, 2, 3]
        anchorer = make_anchorer(ledger_stack, store)
        run_until_settled(anchorer)  # the real anchoring worker: every coalition step confirmed on chain
        records = [r for job in jobs for r in store.records_for_job(job.job_id)]
        assert len(records) == 12 and {r.status for r in records} == {"confirmed"}
        assert len(store.models()) == 3  # each coalition's model handed to the ledger like any job's
        for job in jobs:  # and closed on chain with its step count, as any job every party consented to
            on_chain = reader.get_job(bytes.fromhex(job.job_id[2:]))
            assert on_chain.status == JobStatus.CLOSED and on_chain.step_count == 4, on_chain
    finally:
        store.close()


def test_measure_refuses_a_manifest_without_evaluation(env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest, out = tmp_path / "manifest.json", tmp_path / "inputs.json"
    manifest.write_text(json.dumps(_manifest(evaluate=False)))
    result = _measure(env, str(manifest), "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no evaluation step" in result.output and "biclassification_eval" in result.output
    # refused before any SecretFlow worker started: a worker's first act is to make its party's
    # private `tmp` and `work` folders, so each party's folder still holds only what was provisioned
    assert {p: sorted(c.name for c in (data_dir / p).iterdir()) for p in ("alice", "bob")} == {
        "alice": ["data", "policy.json", "secrets"],
        "bob": ["data", "policy.json", "secrets"],
    }
    assert not out.exists()


def test_a_party_whose_policy_refuses_keeps_the_coalitions_off_chain(  # type: ignore[no-untyped-def]
    ledger_stack, env, data_dir, tmp_path
) -> None:
    """Nobody consents for anybody: bob's policy lets alice receive nothing, so bob's own worker refuses the
    first coalition job; the command stops with bob's reasons, and nothing is created on chain or recorded
    (alice's consent alone opens nothing)."""
    write_policy(data_dir / "bob", PartyPolicy())  # bob reveals nothing to anybody
    manifest, out = tmp_path / "manifest.json", tmp_path / "inputs.json"
    manifest.write_text(json.dumps(_manifest()))
    result = _measure(env, str(manifest), "--data-dir", str(data_dir), "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "ConsentRefusedError" in result.output and "party 'bob' refuses job" in result.output
    assert "party 'alice' refuses" not in result.output
    store = open_store(env["SECUREFLOW_DATABASE_URL"])
    try:
        jobs = store.list_jobs()
        reader = ledger_stack.ledger(ledger_stack.client())
        assert all(reader.get_job(bytes.fromhex(j.job_id[2:])).status == JobStatus.NONE for j in jobs)
        assert all(store.records_for_job(j.job_id) == [] for j in jobs)
        assert [j.status for j in jobs] == ["rejected"] and "bob" in str(jobs[0].reason)
    finally:
        store.close()
    assert not out.exists()


def test_shapley_limits_are_checked_before_anything_starts(env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest, out = tmp_path / "manifest.json", tmp_path / "inputs.json"
    manifest.write_text(json.dumps(_manifest()))
    args = (str(manifest), "--data-dir", str(data_dir), "--out", str(out))
    bogus = _measure(env, *args, "--method", "banzhaf")
    assert bogus.exit_code == 1 and "unknown method 'banzhaf'" in bogus.output
    assert "leave_one_out or shapley" in bogus.output
    f1 = _measure(env, *args, "--method", "shapley", "--metric", "f1_score")
    assert f1.exit_code == 1 and "not defined for f1_score" in f1.output and "auc, ks, r2_score" in f1.output
    # nothing started: a worker's first act is to make its party's private folders
    assert sorted(c.name for c in (data_dir / "bob").iterdir()) == ["data", "policy.json", "secrets"]
    assert not out.exists()


def test_measure_shapley_runs_only_coalitions_with_features(  # type: ignore[no-untyped-def]
    ledger_stack, env, data_dir, tmp_path
) -> None:
    """`--method shapley` with a model on bob's features only: the coalitions holding alice (the label
    party) are {alice, bob}, one real job both parties consented to, and {alice}, which brings no feature
    and runs nothing (its value is AUC 0.5). Label and features are complements, so they split equally."""
    document = _manifest()
    document["steps"][1]["params"]["features"] = ["b0", "b1", "b2"]
    manifest, out = tmp_path / "manifest.json", tmp_path / "inputs.json"
    manifest.write_text(json.dumps(document))
    result = _measure(
        env, str(manifest), "--data-dir", str(data_dir), "--out", str(out), "--method", "shapley"
    )
    assert result.exit_code == 0, result.output
    assert "{alice}" in result.output and "no feature: no model, no job (value 0.5)" in result.output
    inputs = load_inputs(out)
    assert isinstance(inputs, ShapleyInputs) and inputs.label_party == ALICE and inputs.baseline == 0.5
    assert [(c.parties, c.job_id is None) for c in inputs.coalitions] == [
        ((ALICE, BOB), False),
        ((ALICE,), True),
    ]
    assert compute_weights(inputs).bps == (5000, 5000)
    job_id = inputs.coalitions[0].job_id
    assert job_id is not None
    reader = ledger_stack.ledger(ledger_stack.client())
    assert reader.get_job(bytes.fromhex(job_id[2:])).status == JobStatus.OPEN
    assert all(reader.has_consented(bytes.fromhex(job_id[2:]), p) for p in (ALICE, BOB))
