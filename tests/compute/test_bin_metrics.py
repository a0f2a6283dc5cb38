"""The evaluation step's summary (`secureflow.compute.algorithms.bin_metrics.summary_metrics`) equals what
SecretFlow's own evaluation computes (``secretflow.stats.core.biclassification_eval_core.gen_all_reports``,
the function ``BiClassificationEval.get_all_reports`` runs on the label party) on the same labels and
scores — random, tied, few rows, many bins — and its AUC equals scikit-learn's. SecretFlow computes in
jax's float32, this module in float64: they agree to float32 precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from secureflow.compute.algorithms.bin_metrics import summary_metrics

CASES = [
    ("random 1000, 10 bins", 1000, 10, None, 1),
    ("random 997, 3 bins", 997, 3, None, 2),
    ("ties: scores of 5 values, 10 bins", 600, 10, 5, 3),
    ("ties: scores of 2 values, 4 bins", 200, 4, 2, 4),
    ("few rows, many bins", 9, 20, None, 5),
    ("random 10000, 50 bins", 10_000, 50, None, 6),
]


def _data(n: int, distinct: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.float64)
    labels[:2] = [0.0, 1.0]  # both classes present
    scores = np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1)
    if distinct is not None:
        scores = np.round(scores * (distinct - 1)) / (distinct - 1)
    return labels, scores.astype(np.float32).astype(np.float64)


@pytest.mark.parametrize(("name", "n", "bins", "distinct", "seed"), CASES, ids=[c[0] for c in CASES])
def test_the_summary_is_secretflow_s(name: str, n: int, bins: int, distinct: int | None, seed: int) -> None:
    from secretflow.stats.core.biclassification_eval_core import gen_all_reports

    labels, scores = _data(n, distinct, seed)
    ours = summary_metrics(labels.reshape(-1, 1), scores.reshape(-1, 1), bins)
    theirs = gen_all_reports(labels.reshape(-1, 1), scores.reshape(-1, 1), bins).summary_report
    assert (ours["total_samples"], ours["positive_samples"], ours["negative_samples"]) == (
        int(theirs.total_samples),
        int(theirs.positive_samples),
        int(theirs.negative_samples),
    )
    for key, value in (("auc", theirs.auc), ("ks", theirs.ks), ("f1_score", theirs.f1_score)):
        expected = float(value)
        assert math.isnan(ours[key]) == math.isnan(expected), (key, ours[key], expected)
        if not math.isnan(expected):
            assert ours[key] == pytest.approx(expected, abs=2e-6), (name, key)
    assert ours["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
