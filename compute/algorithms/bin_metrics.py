"""The summary of a binary classification evaluation (counts, AUC, KS, F1) in numpy, on the label party.

SecretFlow's ``stats.BiClassificationEval(...).get_all_reports()`` computes, on the label party's PYU, the
summary this product reports and much it does not: equal-range bins, precision/recall heads, per-bin
statistics, each as a Python loop of small jax operations (dispatched and compiled one by one: ~5 s for
10k scores on 2 cores). `summary_metrics` computes the summary only, by the same rules as
``secretflow.stats.core.biclassification_eval_core.gen_all_reports`` (the equivalence is tested against
it on random and tied scores), in float64 where SecretFlow computes in jax's float32:

* pairs sorted by score, decreasing (a stable ascending sort, reversed: ties in reverse input order);
* ``bucket_size`` equal-frequency bins: split points ``interp(linspace(0, n, b + 1), arange(n),
  sort(score))`` in decreasing order, a bin ending where the scores are no longer above its split point,
  then a last bin to the end. An empty bin contributes zeros and, as in SecretFlow, restarts the
  cumulative counts;
* per bin, from the cumulative counts before it plus the bin's own: F1 of "score in or above this bin is
  positive" and KS ``|cum_pos / pos - cum_neg / neg|``; the summary takes the maximum of each (NaN if a
  bin's F1 is undefined, as in SecretFlow);
* AUC by the trapezoidal rule over the ROC curve at the distinct scores (scikit-learn's
  ``roc_auc_score``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def summary_metrics(y_true: Any, y_score: Any, bucket_size: int) -> dict[str, Any]:
    """``total_samples``, ``positive_samples``, ``negative_samples``, ``auc``, ``ks``, ``f1_score`` of
    binary labels ``y_true`` (0/1) and scores ``y_score`` (one column each; DataFrames or arrays)."""
    labels = np.asarray(y_true, dtype=np.float64).reshape(-1)
    scores = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError("labels and scores have different lengths")
    if np.isnan(labels).any():
        raise ValueError("NaN value found in y_true")
    order = np.argsort(scores, kind="stable")[::-1]
    label_sorted, score_sorted = labels[order], scores[order]
    n = len(score_sorted)
    pos_total = float(label_sorted.sum())
    neg_total = n - pos_total

    splits = np.interp(np.linspace(0, n, bucket_size + 1), np.arange(n), np.sort(scores))[::-1]
    ends = [int(np.sum(score_sorted > split)) for split in splits] + [n]
    ks_values, f1_values = [], []
    positives = negatives = 0.0
    cum_pos = cum_neg = 0.0
    start = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for end in ends:
            if end == start:  # an empty bin: zeros, and the cumulative counts start again (as SecretFlow)
                ks_values.append(0.0)
                f1_values.append(0.0)
                cum_pos = cum_neg = 0.0
                continue
            pos = float(label_sorted[start:end].sum())
            neg = (end - start) - pos
            tp, fp, fn = cum_pos + pos, cum_neg + neg, pos_total - cum_pos - pos
            precision = np.float64(tp) / (tp + fp)
            recall = np.float64(tp) / (tp + fn)
            f1_values.append(float(2 * precision * recall / (precision + recall)))
            cum_pos, cum_neg = cum_pos + pos, cum_neg + neg
            ks_values.append(abs(float(np.float64(cum_pos) / pos_total - np.float64(cum_neg) / neg_total)))
            positives, negatives = positives + pos, negatives + neg
            start = end
        auc = _roc_auc(label_sorted, score_sorted)
    return {
        "total_samples": int(positives + negatives),
        "positive_samples": int(positives),
        "negative_samples": int(negatives),
        "auc": auc,
        "ks": float(np.max(ks_values)),
        "f1_score": float(np.max(f1_values)),
    }


def _roc_auc(label_sorted: NDArray[np.float64], score_sorted: NDArray[np.float64]) -> float:
    """AUC of pairs sorted by decreasing score: the ROC curve at each distinct score, trapezoids."""
    distinct = np.where(np.diff(score_sorted))[0]
    thresholds = np.hstack((distinct, [len(score_sorted) - 1]))
    tps = np.cumsum(label_sorted)[thresholds]
    fps = (1 + thresholds) - tps
    tpr = np.r_[0, tps] / tps[-1]
    fpr = np.r_[0, fps] / fps[-1]
    order = np.argsort(fpr, kind="stable")
    return float(abs(np.trapz(tpr[order], fpr[order])))
