"""Benchmark of the evaluation step's work on the label party: SecretFlow's BiClassificationEval core
(``gen_all_reports``, what ``BiClassificationEval.get_all_reports`` runs on the PYU) against this product's
`secureflow.compute.algorithms.bin_metrics.summary_metrics` (the same summary), on the same labels and
scores, in this process: first call (jax compiles) and warm calls, with the load average.

Run: ``.venv/bin/python scripts/bench_eval.py [--rows 10000] [--bins 10] [--repeat 3]``. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.compute.algorithms.bin_metrics import summary_metrics


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, args.rows).astype(np.float64).reshape(-1, 1)
    scores = np.clip(labels * 0.3 + rng.random((args.rows, 1)) * 0.7, 0, 1)
    print(f"load average before: {os.getloadavg()}")
    from secretflow.stats.core.biclassification_eval_core import gen_all_reports

    rows = []
    for name, fn in (
        ("secretflow gen_all_reports", lambda: gen_all_reports(labels, scores, args.bins).summary_report.auc),
        ("secureflow summary_metrics", lambda: summary_metrics(labels, scores, args.bins)["auc"]),
    ):
        first, _ = _timed(fn)
        warm = [_timed(fn)[0] for _ in range(args.repeat)]
        rows.append((name, first, min(warm), float(np.median(warm))))
    print(f"{args.rows} rows, {args.bins} bins")
    print(f"{'':28} {'first call':>12} {'warm min':>10} {'warm median':>12}")
    for name, first, best, median in rows:
        print(f"{name:28} {first * 1e3:10.1f}ms {best * 1e3:8.1f}ms {median * 1e3:10.1f}ms")
    print(f"speed-up (warm median): {rows[0][3] / rows[1][3]:.0f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
