"""Benchmark of the compute engine: two warm party workers on 127.0.0.1 (SecretFlow production mode).

Measures, on this machine:

* cold start (spawn + import + ``sf.init`` + SPU links) vs a warm step (a tiny PSI job run
  on the cold engine and then again on the warm one);
* PSI of 100k x 100k rows (default 80% overlap);
* the pipeline PSI -> Fillna -> StandardScaler -> SS-LR -> secure prediction ->
  BiClassificationEval at 10k rows, per step, with the AUC against scikit-learn's;
* VIF at ~50k rows on the ``precise`` SPU profile against the plaintext VIF
  (18 fraction bits made VIF return 0.0 at ~51k rows);
* time spent anchoring (``LedgerRecorder`` calls into a SQLite outbox) as a percentage
  of job time, and peak RSS of each worker and of the coordinator.

Run: ``.venv/bin/python scripts/bench_compute.py [--psi-rows 100000] [--rows 10000] [--vif-rows 50000]``.
Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.compute.runner import JobResult, run_job
from secureflow.compute.worker.engine import Engine
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store import open_store

PARTIES = ("alice", "bob")


def manifest(
    engine: Engine, datasets: dict[str, dict[str, str]], steps: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": "bench",
        "parties": [{"name": p, "address": engine.addresses[p]} for p in PARTIES],
        "datasets": datasets,
        "steps": steps,
    }


def put(engine: Engine, party: str, name: str, df: pd.DataFrame) -> str:
    path = engine.data_dir(party) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return name


def data(n: int, seed: int, overlap: float = 0.8) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x @ np.array([0.8, -0.4, 1.2, 0.3, -0.9, 0.5]) + rng.logistic(size=n) > 0).astype(int)
    ids = rng.permutation(10 * n)[:n]
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "a2": x[:, 2], "y": y})
    alice.loc[rng.random(n) < 0.01, "a1"] = np.nan
    keep = rng.random(n) < overlap
    bob_ids = np.concatenate([ids[keep], 10 * n + np.arange(n - keep.sum())])
    bob_x = np.concatenate([x[keep, 3:], rng.normal(size=(n - keep.sum(), 3))])
    bob = pd.DataFrame({"id": bob_ids, "b0": bob_x[:, 0], "b1": bob_x[:, 1], "b2": bob_x[:, 2]})
    return alice.sample(frac=1, random_state=seed), bob.sample(frac=1, random_state=seed + 1)


def steps_table(res: JobResult) -> str:
    lines = [f"    {s.seq:>2} {s.algorithm:<24} {s.seconds:8.2f} s  {s.record.status}" for s in res.steps]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--psi-rows", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--vif-rows", type=int, default=50_000, help="0 to skip")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()

    with TemporaryDirectory(prefix="bench-compute-") as tmp:
        root = Path(tmp)
        store = open_store(f"sqlite:///{root / 'ledger.db'}")
        recorder = OutboxRecorder(store)
        engine = Engine(PARTIES, root / "engine", step_timeout=3600)
        figures: dict[str, Any] = {}
        try:
            t0 = time.monotonic()
            engine.start()
            figures["cold_start_s"] = round(engine.last_start_s, 2)
            figures["worker_import_s"] = {
                p: round(w.timings["import_s"], 2) for p, w in engine.workers.items()
            }
            figures["worker_sf_init_s"] = {
                p: round(w.timings["init_s"], 2) for p, w in engine.workers.items()
            }
            small_a, small_b = data(1000, 1)
            tiny = manifest(
                engine,
                {
                    "t": {
                        "alice": put(engine, "alice", "t_a.csv", small_a),
                        "bob": put(engine, "bob", "t_b.csv", small_b),
                    }
                },
                [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "t"}}],
            )
            first = run_job(engine, tiny, recorder)
            figures["cold_session_psi_1k_job_s"] = round(time.monotonic() - t0, 2)
            t = time.monotonic()
            warm = run_job(engine, tiny, recorder)
            figures["warm_session_psi_1k_job_s"] = round(time.monotonic() - t, 3)
            assert first.succeeded and warm.succeeded
            t = time.monotonic()
            for _ in range(20):
                engine.ping()
            figures["warm_ipc_round_trip_ms"] = round((time.monotonic() - t) / 20 * 1000, 2)
            print(json.dumps(figures, indent=2), flush=True)

            # PSI 100k x 100k
            a, b = data(args.psi_rows, 2)
            m = manifest(
                engine,
                {
                    "p": {
                        "alice": put(engine, "alice", "psi_a.csv", a),
                        "bob": put(engine, "bob", "psi_b.csv", b),
                    }
                },
                [{"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "p"}}],
            )
            res = run_job(engine, m, recorder)
            figures["psi_rows"] = args.psi_rows
            figures["psi_step_s"] = round(res.steps[0].seconds, 2)
            figures["psi_job_s"] = round(res.seconds, 2)
            print(f"PSI {args.psi_rows} x {args.psi_rows}: step {res.steps[0].seconds:.2f} s", flush=True)

            # the pipeline at 10k rows
            a, b = data(args.rows, 3)
            feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
            m = manifest(
                engine,
                {"r": {p: put(engine, p, f"pl_{p}.csv", df) for p, df in (("alice", a), ("bob", b))}},
                [
                    {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "r"},
                     "outputs": {"table": "j"}},
                    {"algorithm": "fillna", "inputs": {"table": "j"}, "outputs": {"table": "f"}},
                    {"algorithm": "standard_scaler", "params": {"columns": feats}, "inputs": {"table": "f"},
                     "outputs": {"table": "s"}},
                    {"algorithm": "ss_lr", "params": {"label": "y", "features": feats, "epochs": args.epochs,
                                                      "learning_rate": 0.3, "batch_size": 1024},
                     "inputs": {"table": "s"}, "outputs": {"model": "lr"}},
                    {"algorithm": "secure_predict", "params": {"receiver": "alice"},
                     "inputs": {"table": "s", "model": "lr"}, "outputs": {"table": "pred"}},
                    {"algorithm": "biclassification_eval", "params": {"label": "y"},
                     "inputs": {"labels": "s", "scores": "pred"}, "outputs": {"report": "eval"}},
                ],
            )  # fmt: skip
            res = run_job(engine, m, recorder)
            assert res.succeeded, res.error_message
            report = res.report("eval", "alice") or {}
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import roc_auc_score

            j = a.merge(b, on="id")
            xj = j[feats].fillna(j[feats].mean())
            xj = (xj - xj.mean()) / xj.std(ddof=0)
            sk_auc = roc_auc_score(j["y"], LogisticRegression().fit(xj, j["y"]).predict_proba(xj)[:, 1])
            figures["pipeline_rows"] = args.rows
            figures["pipeline_job_s"] = round(res.seconds, 2)
            figures["pipeline_steps_s"] = {f"{s.seq}:{s.algorithm}": round(s.seconds, 2) for s in res.steps}
            figures["pipeline_auc"] = round(float(report.get("auc", float("nan"))), 4)
            figures["sklearn_auc"] = round(float(sk_auc), 4)
            figures["anchoring_s"] = round(res.anchoring_seconds, 4)
            figures["anchoring_pct_of_job"] = round(100 * res.anchoring_seconds / res.seconds, 3)
            print(f"pipeline at {args.rows} rows: {res.seconds:.2f} s\n{steps_table(res)}", flush=True)

            if args.vif_rows:
                rng = np.random.default_rng(4)
                n = args.vif_rows
                x = rng.normal(size=(n, 4))
                x[:, 3] = x[:, 3] * 0.5 + 0.8 * x[:, 0]
                ids = np.arange(n)
                va = pd.DataFrame({"id": ids, "v0": x[:, 0], "v1": x[:, 1]})
                vb = pd.DataFrame({"id": ids, "v2": x[:, 2], "v3": x[:, 3]})
                m = manifest(
                    engine,
                    {"v": {p: put(engine, p, f"v_{p}.csv", df) for p, df in (("alice", va), ("bob", vb))}},
                    [
                        {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "v"},
                         "outputs": {"table": "vj"}},
                        {"algorithm": "vif", "inputs": {"table": "vj"}, "outputs": {"report": "vif"}},
                    ],
                )  # fmt: skip
                res = run_job(engine, m, recorder)
                from sklearn.linear_model import LinearRegression

                ref = []
                for i in range(4):
                    o = np.delete(x, i, axis=1)
                    ref.append(1 / (1 - LinearRegression().fit(o, x[:, i]).score(o, x[:, i])))
                got = (res.report("vif", "alice") or {}).get("vif")
                figures["vif_rows"] = n
                figures["vif_step_s"] = round(res.steps[-1].seconds, 2)
                figures["vif_secure"] = got
                figures["vif_plaintext"] = [round(v, 6) for v in ref]
            figures["peak_rss_mib"] = {
                k: round(v / 2**20) for k, v in engine.rss_bytes().items() if "peak" in k
            }
            figures["coordinator_peak_rss_mib"] = round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            )
        finally:
            engine.shutdown()
            store.close()
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
