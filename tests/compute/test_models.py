"""Models: per-party shares + metadata, reload and predict in new worker processes, refuse wrong configs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from cf_helpers import manifest, put, read, vertical_data
from model_chain import anchors, run_on_chain

from secureflow.compute.errors import ModelError, ModelIntegrityError
from secureflow.compute.models import check_runtime_config, model_hash
from secureflow.compute.runner import run_job

FEATS = ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_models_reload_in_new_processes(engine, recorder, ledger_stack, chain_snapshot) -> None:  # type: ignore[no-untyped-def]
    alice, bob = vertical_data(400, seed=31)
    raw = {
        "raw": {"alice": put(engine, "alice", "m_a.csv", alice), "bob": put(engine, "bob", "m_b.csv", bob)}
    }
    psi = {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "raw"}, "outputs": {"table": "j"}}
    scale = {
        "algorithm": "standard_scaler",
        "params": {"columns": FEATS},
        "inputs": {"table": "j"},
        "outputs": {"table": "s"},
    }

    def predict(model: str, out: str) -> dict[str, Any]:
        return {
            "algorithm": "secure_predict",
            "params": {"receiver": "bob"},
            "inputs": {"table": "s", "model": model},
            "save": {"table": out},
        }

    train = manifest(
        engine,
        raw,
        [
            psi,
            scale,
            {
                "algorithm": "ss_lr",
                "params": {"label": "y", "features": FEATS, "epochs": 3},
                "inputs": {"table": "s"},
                "outputs": {"model": "lr"},
            },
            predict("lr", "out/mod/lr0.csv"),
            {
                "algorithm": "ss_xgb",
                "params": {"label": "y", "features": FEATS, "num_boost_round": 2, "max_depth": 2},
                "inputs": {"table": "s"},
                "outputs": {"model": "xgb"},
            },
            predict("xgb", "out/mod/xgb0.csv"),
        ],
    )
    res = run_on_chain(ledger_stack, engine, train, recorder)  # created on chain, models anchored
    ids = {m["algorithm"]: m["model_id"] for m in res.models}
    assert sorted((m.job_id, m.model_id, m.version, m.model_hash) for m in recorder.store.models()) == sorted(
        (res.job_id, m["model_id"], m["version"], m["model_hash"]) for m in res.models
    )
    for meta in res.models:
        assert meta["model_hash"] == model_hash(meta)
        assert meta["lineage"]["job_id"] == res.job_id
        step = res.steps[meta["lineage"]["seq"]]
        assert {d.party: d.outputs[meta["name"]] for d in step.record.parties} == meta["share_digests"]
        for party in ("alice", "bob"):
            on_disk = json.loads((engine.models_dir(party) / meta["model_id"] / "meta.json").read_text())
            assert on_disk == meta
            files = sorted(p.name for p in (engine.models_dir(party) / meta["model_id"]).iterdir())
            assert all(party in f or f == "meta.json" for f in files)  # each party holds only its own shares
    listed = {m["model_id"]: m["lineage"] for m in engine.list_models("alice")}
    assert listed[ids["ss_lr"]]["job_id"] == res.job_id

    # new worker processes: the shares are loaded from each party's own directory
    engine.shutdown()
    engine.start()
    reuse = manifest(
        engine,
        raw,
        [psi, scale, predict("lr", "out/mod/lr1.csv"), predict("xgb", "out/mod/xgb1.csv")],
        models={"lr": ids["ss_lr"], "xgb": ids["ss_xgb"]},
    )
    res2 = run_job(engine, reuse, recorder, model_anchors=anchors(ledger_stack))
    assert res2.succeeded, res2.error_message
    for name in ("lr", "xgb"):
        before = read(engine, "bob", f"out/mod/{name}0.csv")["pred"].to_numpy()
        after = read(engine, "bob", f"out/mod/{name}1.csv")["pred"].to_numpy()
        # the same model on the same rows; SPU's fixed-point truncation is probabilistic (18 fraction bits,
        # fresh randomness per run), so two runs' scores differ by a few 2^-18 per term: measured up to
        # 1.03e-4 on a probability (a full CI run), far below any change of the model
        np.testing.assert_allclose(after, before, atol=5e-4)
        assert not (engine.data_dir("alice") / f"out/mod/{name}1.csv").exists()
    # the loaded model's digest is salted with this job's salt of each party: it does not link this job to
    # the training job (which the workers checked the shares against, with the training job's salt)
    loaded = res2.steps[2].record.parties
    trained = next(m for m in res.models if m["algorithm"] == "ss_lr")["share_digests"]
    used = {d.party: d.inputs["lr"] for d in loaded}
    assert used.keys() == trained.keys()
    assert all(used[p] != trained[p] for p in used)

    # a model trained with another fxp_fraction_bits is refused, before any step runs
    for party in ("alice", "bob"):
        path = engine.models_dir(party) / ids["ss_lr"] / "meta.json"
        meta = json.loads(path.read_text())
        meta["spu_runtime_config"]["fxp_fraction_bits"] = 20
        path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="does not match its model hash"):  # edited metadata
        run_job(
            engine,
            manifest(
                engine, raw, [psi, scale, predict("lr", "out/mod/lr2.csv")], models={"lr": ids["ss_lr"]}
            ),
            recorder,
            model_anchors=anchors(ledger_stack),
        )
    for party in ("alice", "bob"):  # consistent files claiming another precision: not what was anchored
        path = engine.models_dir(party) / ids["ss_lr"] / "meta.json"
        meta = json.loads(path.read_text())
        meta["model_hash"] = model_hash(meta)
        path.write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match=r"differs from the hash .* anchored on chain"):
        run_job(
            engine,
            manifest(
                engine, raw, [psi, scale, predict("lr", "out/mod/lr2.csv")], models={"lr": ids["ss_lr"]}
            ),
            recorder,
            model_anchors=anchors(ledger_stack),
        )


def test_runtime_config_check() -> None:
    meta = {
        "model_id": "m",
        "spu_runtime_config": {"protocol": "SEMI2K", "field": "FM128", "fxp_fraction_bits": 18},
    }
    check_runtime_config(meta, {"protocol": "SEMI2K", "field": "FM128", "fxp_fraction_bits": 18})
    with pytest.raises(ModelError):
        check_runtime_config(meta, {"protocol": "SEMI2K", "field": "FM128", "fxp_fraction_bits": 26})
    with pytest.raises(ModelError):
        check_runtime_config(meta, {"protocol": "SEMI2K", "field": "FM64", "fxp_fraction_bits": 18})
