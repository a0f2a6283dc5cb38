"""Every other algorithm on real SecretFlow against a plaintext reference (pandas / scikit-learn / SciPy).

One job runs the steps (to keep the suite lean); each output is saved by each
party into its own data dir and compared with the reference computed on the
joined plaintext table. The reports the coordinator receives (`JobResult.reports`) come only from each
output's named receivers and hold no cell value of either party beyond what the algorithm reveals to that
receiver by design (tests/sinks.py's allow-list).
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cf_helpers import joined, manifest, put, read, vertical_data
from leaks import scan_sinks, table_renderings
from sinks import report_sinks
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, roc_auc_score
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from secureflow.compute.runner import JobResult, run_job


def _vif_reference(x: np.ndarray) -> np.ndarray:
    out = []
    for i in range(x.shape[1]):
        others = np.delete(x, i, axis=1)
        r2 = LinearRegression().fit(others, x[:, i]).score(others, x[:, i])
        out.append(1.0 / (1.0 - r2))
    return np.array(out)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    alice, bob = vertical_data(800, seed=11)
    rng = np.random.default_rng(5)
    alice["t"] = 2.0 * alice["a0"] - alice["a2"] + rng.normal(scale=0.3, size=len(alice))
    alice["cat_a"] = rng.choice(["red", "green", "blue"], size=len(alice))
    bob["cat_b"] = rng.choice(
        ["u", "v", "w", "x", "y", "z"], size=len(bob), p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05]
    )
    bob["b1"] = bob["b1"] + 0.8 * bob["b0"]  # some collinearity for VIF
    alice["id"] += 7_300_000_000  # distinctive identifiers for the leak scan
    bob["id"] += 7_300_000_000
    alice["cat_a"] = "col_" + alice["cat_a"] + "_qz"
    bob["cat_b"] = "cb_" + bob["cat_b"] + "_qx"
    alice.loc[alice.index[:9], "a1"] = np.nan
    return alice, bob


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_CAPTURE = _Capture()


@pytest.fixture(scope="module")
def captured_logs() -> list[str]:
    return _CAPTURE.lines


@pytest.fixture(scope="module")
def result(engine, data, tmp_path_factory) -> JobResult:  # type: ignore[no-untyped-def]
    alice, bob = data
    store_dir = tmp_path_factory.mktemp("ledger")
    from secureflow.ledger.recorder import OutboxRecorder
    from secureflow.ledger.store import open_store

    store = open_store(f"sqlite:///{store_dir / 'l.db'}")
    feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
    steps = [
        {
            "algorithm": "psi",
            "params": {"key": "id"},
            "inputs": {"table": "raw"},
            "outputs": {"table": "j"},
            "save": {"table": "out/alg/j.csv"},
        },
        {
            "algorithm": "fillna",
            "params": {"strategy": "median", "columns": ["a1"]},
            "inputs": {"table": "j"},
            "outputs": {"table": "jf"},
        },
        {
            "algorithm": "min_max_scaler",
            "params": {"columns": ["a0", "b0"], "feature_min": -1.0, "feature_max": 1.0},
            "inputs": {"table": "jf"},
            "outputs": {"table": "mm"},
            "save": {"table": "out/alg/mm.csv"},
        },
        {
            "algorithm": "label_encoder",
            "params": {"columns": ["cat_a", "cat_b"]},
            "inputs": {"table": "j"},
            "outputs": {"table": "le", "mapping": "le_map"},
            "save": {"table": "out/alg/le.csv", "mapping": "out/alg/le.json"},
        },
        {
            "algorithm": "one_hot_encoder",
            "params": {"columns": ["cat_a", "cat_b"], "max_categories": 4},
            "inputs": {"table": "j"},
            "outputs": {"table": "oh"},
            "save": {"table": "out/alg/oh.csv"},
        },
        {
            "algorithm": "equal_width_binning",
            "params": {"columns": ["a0", "b1"], "bin_num": 5},
            "inputs": {"table": "j"},
            "outputs": {"table": "ew", "rules": "ew_rules"},
            "save": {"table": "out/alg/ew.csv", "rules": "out/alg/ew.json"},
        },
        {
            "algorithm": "quantile_binning",
            "params": {"columns": ["a1", "b2"], "bin_num": 4},
            "inputs": {"table": "j"},
            "outputs": {"table": "qb", "rules": "qb_rules"},
            "save": {"table": "out/alg/qb.csv", "rules": "out/alg/qb.json"},
        },
        {
            "algorithm": "table_statistics",
            "params": {"columns": ["a0", "t", "b0"]},
            "inputs": {"table": "j"},
            "outputs": {"report": "ts"},
            "save": {"report": "out/alg/ts.json"},
        },
        {
            "algorithm": "pearson_correlation",
            "params": {"columns": feats},
            "inputs": {"table": "jf"},
            "outputs": {"report": "pr"},
            "save": {"report": "out/alg/pr.json"},
        },
        {
            "algorithm": "vif",
            "params": {"columns": feats},
            "inputs": {"table": "jf"},
            "outputs": {"report": "vf"},
            "save": {"report": "out/alg/vf.json"},
        },
        {
            "algorithm": "ss_xgb",
            "params": {
                "label": "y",
                "features": feats,
                "num_boost_round": 6,
                "max_depth": 3,
                "sketch_eps": 0.05,
            },
            "inputs": {"table": "jf"},
            "outputs": {"model": "xgb"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice", "score_column": "xs"},
            "inputs": {"table": "jf", "model": "xgb"},
            "outputs": {"table": "xp"},
            "save": {"table": "out/alg/xp.csv"},
        },
        {
            "algorithm": "biclassification_eval",
            "params": {"label": "y", "score": "xs", "bucket_size": 5},
            "inputs": {"labels": "j", "scores": "xp"},
            "outputs": {"report": "xauc"},
        },
        {
            "algorithm": "standard_scaler",
            "params": {"columns": feats},
            "inputs": {"table": "jf"},
            "outputs": {"table": "sc"},
        },
        {
            "algorithm": "ss_lr",
            "params": {
                "label": "t",
                "features": feats,
                "reg_type": "linear",
                "epochs": 10,
                "learning_rate": 0.1,
                "batch_size": 64,
            },
            "inputs": {"table": "sc"},
            "outputs": {"model": "lin"},
        },
        {
            "algorithm": "secure_predict",
            "params": {"receiver": "alice", "score_column": "tp"},
            "inputs": {"table": "sc", "model": "lin"},
            "outputs": {"table": "tpred"},
            "save": {"table": "out/alg/tp.csv"},
        },
        {
            "algorithm": "regression_eval",
            "params": {"label": "t", "score": "tp"},
            "inputs": {"labels": "j", "scores": "tpred"},
            "outputs": {"report": "re"},
            "save": {"report": "out/alg/re.json"},
        },
    ]
    m = manifest(
        engine,
        {
            "raw": {
                "alice": put(engine, "alice", "alg_a.csv", alice),
                "bob": put(engine, "bob", "alg_b.csv", bob),
            }
        },
        steps,
    )
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(_CAPTURE)
    root.setLevel(logging.DEBUG)
    try:
        res = run_job(engine, m, OutboxRecorder(store))
    finally:
        root.removeHandler(_CAPTURE)
        root.setLevel(old_level)
        store.close()
    assert res.succeeded, (res.error_class, res.error_message, len(res.steps))
    return res


def filled(data: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    ref = joined(*data)
    ref["a1"] = ref["a1"].fillna(ref["a1"].median())
    return ref


def _json(engine, party: str, name: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(Path(engine.data_dir(party) / name).read_text())


def test_label_encoder(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    le_a, le_b = read(engine, "alice", "out/alg/le.csv"), read(engine, "bob", "out/alg/le.csv")
    exp = OrdinalEncoder().fit_transform(ref[["cat_a", "cat_b"]])
    np.testing.assert_allclose(np.c_[le_a["cat_a"], le_b["cat_b"]], exp, atol=1e-6)
    # each party's mapping is saved in its own folder and holds only its own column's categories
    assert _json(engine, "alice", "out/alg/le.json") == {"cat_a": sorted(ref["cat_a"].unique())}
    assert _json(engine, "bob", "out/alg/le.json") == {"cat_b": sorted(ref["cat_b"].unique())}
    for party in ("alice", "bob"):  # the mapping never reaches the coordinator
        assert result.report("le_map", party) is None


def test_one_hot_encoder(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    oa, ob = read(engine, "alice", "out/alg/oh.csv"), read(engine, "bob", "out/alg/oh.csv")
    for frame, col in ((oa, "cat_a"), (ob, "cat_b")):
        exp = OneHotEncoder(max_categories=4, sparse_output=False).fit_transform(ref[[col]])
        padded = np.zeros((len(ref), 4))
        padded[:, : exp.shape[1]] = exp
        np.testing.assert_allclose(frame[[f"{col}_{i}" for i in range(4)]].to_numpy(), padded, atol=1e-6)
        assert col not in frame.columns


@pytest.mark.parametrize(
    ("name", "cols", "bins", "cut"), [("ew", ["a0", "b1"], 5, pd.cut), ("qb", ["a1", "b2"], 4, pd.qcut)]
)
def test_binning(engine, data, result, name, cols, bins, cut) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    for party, col in zip(("alice", "bob"), cols, strict=True):
        codes, edges = cut(ref[col], bins, labels=False, retbins=True, duplicates="drop")
        rules = _json(engine, party, f"out/alg/{name}.json")
        np.testing.assert_allclose(rules[col]["split_points"], edges[1:-1], rtol=1e-9, atol=1e-9)
        got = read(engine, party, f"out/alg/{name}.csv")[col].to_numpy()
        np.testing.assert_array_equal(got, np.nan_to_num(codes.to_numpy(dtype=float), nan=-1.0))


def test_table_statistics(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    sa, sb = _json(engine, "alice", "out/alg/ts.json"), _json(engine, "bob", "out/alg/ts.json")
    assert set(sa) == {"a0", "t"} and set(sb) == {"b0"}  # each party sees only its own columns
    for stats, col in ((sa, "a0"), (sa, "t"), (sb, "b0")):
        s = ref[col]
        for key, exp in {
            "mean": s.mean(),
            "var": s.var(),
            "std": s.std(),
            "min": s.min(),
            "max": s.max(),
            "skew": s.skew(),
            "kurtosis": s.kurtosis(),
            "q1": s.quantile(0.25),
            "count": s.count(),
        }.items():
            assert abs(stats[col][key] - exp) < 1e-6, (col, key)


def test_pearson_and_vif(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = filled(data)
    feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
    pr = _json(engine, "bob", "out/alg/pr.json")
    assert pr["columns"] == feats
    np.testing.assert_allclose(np.array(pr["matrix"]), ref[feats].corr().to_numpy(), atol=1e-3)
    vf = _json(engine, "alice", "out/alg/vf.json")
    np.testing.assert_allclose(vf["vif"], _vif_reference(ref[feats].to_numpy()), atol=1e-3, rtol=1e-3)


def test_ss_xgb_auc(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = filled(data)
    feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
    scores = read(engine, "alice", "out/alg/xp.csv")["xs"]
    assert not (engine.data_dir("bob") / "out/alg/xp.csv").exists()
    auc = roc_auc_score(ref["y"], scores)
    sk = HistGradientBoostingClassifier(
        max_iter=6, max_depth=3, learning_rate=0.3, max_bins=20, l2_regularization=0.1, min_samples_leaf=1
    )
    sk_auc = roc_auc_score(ref["y"], sk.fit(ref[feats], ref["y"]).predict_proba(ref[feats])[:, 1])
    assert auc >= sk_auc - 0.02, (auc, sk_auc)


def test_regression_eval(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    pred = read(engine, "alice", "out/alg/tp.csv")["tp"].to_numpy()
    rep = _json(engine, "alice", "out/alg/re.json")
    assert abs(rep["r2_score"] - r2_score(ref["t"], pred)) < 1e-4
    assert abs(rep["mean_abs_err"] - mean_absolute_error(ref["t"], pred)) < 1e-4
    assert abs(rep["mean_squared_errors"] - mean_squared_error(ref["t"], pred)) < 1e-4
    assert rep["r2_score"] > 0.9
    assert not (engine.data_dir("bob") / "out/alg/re.json").exists()


def test_min_max_scaler(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    from sklearn.preprocessing import MinMaxScaler

    ref = filled(data)
    ma, mb = read(engine, "alice", "out/alg/mm.csv"), read(engine, "bob", "out/alg/mm.csv")
    exp = MinMaxScaler(feature_range=(-1, 1)).fit_transform(ref[["a0", "b0"]])
    np.testing.assert_allclose(np.c_[ma["a0"], mb["b0"]], exp, atol=1e-6)
    np.testing.assert_allclose(ma["a1"], ref["a1"], atol=1e-9)  # fillna (median) upstream


def test_biclassification_eval_of_xgb(engine, data, result) -> None:  # type: ignore[no-untyped-def]
    ref = joined(*data)
    scores = read(engine, "alice", "out/alg/xp.csv")["xs"]
    rep = result.report("xauc", "alice")
    assert rep is not None and result.report("xauc", "bob") is None
    assert abs(rep["auc"] - roc_auc_score(ref["y"], scores)) < 1e-3


def test_every_algorithm_ran(result) -> None:  # type: ignore[no-untyped-def]
    from secureflow.compute.registry import algorithm_names

    assert {s.algorithm for s in result.steps} == set(algorithm_names())


def test_no_cell_value_in_records_logs_or_model_metadata(engine, data, result, captured_logs) -> None:  # type: ignore[no-untyped-def]
    """Every cell of both parties (tests/leaks.py's renderings: ids, categories, floats as repr, %g, %.6f)
    against the records, the models' metadata, each worker's log, each party's log of the job (either
    party's cells, not only its own), this process's log records, the steps' error messages and each party's
    model metadata files; a value planted in a copy of each is found."""
    sinks = {f"record {s.seq}": s.record.canonical_json().decode() for s in result.steps}
    sinks["models"] = json.dumps(result.models)
    sinks |= {f"{p} worker log": engine.log_path(p).read_text(errors="replace") for p in ("alice", "bob")}
    sinks |= {f"{p} job log": engine.job_log_path(p, result.job_id).read_text() for p in ("alice", "bob")}
    assert all(f"step {len(result.steps) - 1} (" in sinks[f"{p} job log"] for p in ("alice", "bob"))
    sinks["driver log"] = "\n".join(captured_logs)
    sinks["errors"] = "\n".join(s.error_message or "" for s in result.steps)
    for party in ("alice", "bob"):
        for meta in engine.models_dir(party).glob("*/meta.json"):
            sinks[f"{party} {meta.parent.name}/meta.json"] = meta.read_text()
    assert len(captured_logs) > 10 and any(name.endswith("meta.json") for name in sinks)
    secrets = table_renderings(data)
    assert scan_sinks(sinks, secrets) == {}
    alice, bob = data
    planted = [
        str(int(alice["id"].iloc[3])),
        f"{bob.loc[bob['b2'] != 0, 'b2'].iloc[5]:.6f}",
        str(bob["cat_b"].iloc[0]),
        f"{alice['a2'].iloc[7]:.9f}",  # in no rendering of the list: found as the cell rounded to 9 decimals
    ]
    for index, name in enumerate(sorted(sinks)):
        value = planted[index % len(planted)]
        tampered = {**sinks, name: sinks[name] + f" value={value};"}
        assert scan_sinks(tampered, secrets) == {name: [value]}, name


RECEIVERS = {
    # table_statistics without reveal_to: each column's owner; correlation and VIF: every party by design;
    # evaluations: the label's owner (alice); the encoders' mappings and binning rules are private (nobody)
    "ts": {"alice", "bob"},
    "pr": {"alice", "bob"},
    "vf": {"alice", "bob"},
    "xauc": {"alice"},
    "re": {"alice"},
}


def test_reports_reach_the_coordinator_only_from_receivers_and_hold_no_cell_value(data, result) -> None:  # type: ignore[no-untyped-def]
    alice, bob = data
    visible = {"alice": set(alice.columns), "bob": set(bob.columns)}  # a party sees its own columns
    sinks, unexpected = report_sinks(result.steps, RECEIVERS, visible)
    assert unexpected == []
    assert {name.split(" ")[3] for name in sinks} == set(RECEIVERS)  # every revealing step reported
    secrets = table_renderings(data)
    assert scan_sinks(sinks, secrets) == {}
    # the allow-list is needed: the statistics' min/max of alice's a0 are cells of hers (by design, to her)
    ts_alice = next(n for n in sinks if n.split(" ")[3] == "ts" and n.endswith("alice"))
    raw = {ts_alice: json.dumps(result.report("ts", "alice"))}
    assert scan_sinks(raw, secrets) != {}
    # ... and only to the column's owner: alice's a0 minimum in bob's report is found
    steps = copy.deepcopy(result.steps)
    ts_step = next(s for s in steps if "ts" in s.reports.get("bob", {}))
    ts_step.reports["bob"]["ts"]["a0"] = {"min": float(alice["a0"].min())}
    planted_sinks, _ = report_sinks(steps, RECEIVERS, visible)
    bob_ts = next(n for n in planted_sinks if n.split(" ")[3] == "ts" and n.endswith("bob"))
    assert scan_sinks(planted_sinks, secrets) == {bob_ts: [repr(float(alice["a0"].min()))]}
    # a value planted in a copy of any report is found there; a report from a non-receiver is named
    planted = [str(int(bob["id"].iloc[2])), repr(float(alice["a2"].iloc[4])), str(bob["cat_b"].iloc[1])]
    for index, name in enumerate(sorted(sinks)):
        value = planted[index % len(planted)]
        tampered = {**sinks, name: sinks[name][:-1] + f', "x": {json.dumps(value)}}}'}
        assert scan_sinks(tampered, secrets) == {name: [value]}, name
    steps = copy.deepcopy(result.steps)
    auc_step = next(s for s in steps if "xauc" in s.reports.get("alice", {}))
    auc_step.reports["bob"] = {"xauc": auc_step.reports["alice"]["xauc"]}
    assert report_sinks(steps, RECEIVERS, visible)[1] == [
        f"step {auc_step.seq} (biclassification_eval) xauc from bob"
    ]
