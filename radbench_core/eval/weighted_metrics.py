"""The headline metrics of a cell under item weights: one value per bootstrap resample, vectorised.

Why weights rather than index draws: a bootstrap resample is a multiset of test items, i.e. an
integer weight per item (its count). Ranking the scores once and recomputing only weighted cumulative
sums makes 1,000 paired AUROC resamples cost about as much as a few sorts, and the same code handles
the patient-clustered bootstrap (every item of a drawn patient gets that patient's count), where
resamples differ in length. With all weights 1 each function equals its plain metric in
``radbench_core.eval.metrics`` (tested against it and scikit-learn).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import study_dice, study_jaccard

# metric name -> the Predictions kind it is computed from
METRIC_KIND = {"auroc": "classification", "dice": "segmentation", "jaccard": "segmentation",
               "dice_jaccard": "segmentation", "dice_study": "segmentation",
               "jaccard_study": "segmentation", "dice_jaccard_study": "segmentation"}


def weighted_binary_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count half) of one score vector under each row of ``weights``.

    ``y`` (N,) bool, ``s`` (N,) finite scores, ``weights`` (B, N) >= 0 -> (B,), NaN where a row
    has no positive or no negative weight.
    """
    y = np.asarray(y, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted, w_sorted = np.asarray(s)[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])   # tie groups
    neg = np.add.reduceat(w_sorted * ~y_sorted, starts, axis=1)
    pos = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    numerator = (pos * (below + 0.5 * neg)).sum(axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _columns(labels: np.ndarray, scores: np.ndarray, label_kind: str):
    """(known mask, binary target, score) per class, as ``metrics.auroc_per_class`` scores them."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if label_kind == "binary":
        s = s[:, 1] if s.ndim == 2 and s.shape[1] == 2 else s
        yield np.ones(len(y), bool), y.astype(bool), s
    elif label_kind == "multiclass":
        for c in range(s.shape[1]):
            yield np.ones(len(y), bool), y == c, s[:, c]
    elif label_kind == "multilabel":
        yf = y.astype(np.float64)
        for c in range(yf.shape[1]):
            known = ~np.isnan(yf[:, c])
            yield known, np.where(known, yf[:, c], 0.0) > 0.5, s[:, c]
    else:
        raise ConfigError("stats.weighted_auroc", f"unknown label kind {label_kind!r}",
                          "use binary, multiclass or multilabel")


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, label_kind: str,
                   weights: np.ndarray) -> np.ndarray:
    """Macro AUROC (unscorable classes skipped, as ``metrics.auroc``) per weight row: (B,)."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    per_class = []
    for known, y, s in _columns(labels, scores, label_kind):
        if not np.all(np.isfinite(s[known])):
            per_class.append(np.full(len(w), np.nan))
            continue
        per_class.append(weighted_binary_auroc(y[known], s[known], w[:, known]))
    stacked = np.stack(per_class, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stacked, axis=1)


def _weighted_item_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Class-mean of per-class weighted item means, NaN items skipped (``seg_training.mean_dice``)."""
    finite = np.isfinite(values)
    v = np.where(finite, values, 0.0)
    num = w @ v                                     # (B, K)
    den = w @ finite.astype(np.float64)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan), axis=1)


def _study_values(confmats: np.ndarray, w: np.ndarray, metric: str) -> np.ndarray:
    pooled = np.einsum("bn,nij->bij", w, confmats.astype(np.float64))
    out = np.empty(len(w))
    for b, cm in enumerate(pooled):
        d, j = (study_dice(cm) if metric != "jaccard_study" else math.nan,
                study_jaccard(cm) if metric != "dice_study" else math.nan)
        out[b] = {"dice_study": d, "jaccard_study": j, "dice_jaccard_study": (d + j) / 2.0}[metric]
    return out


def weighted_values(pred, metric: str, weights: np.ndarray) -> np.ndarray:
    """``metric`` of a :class:`~radbench_core.eval.predictions.Predictions` per weight row, averaged over
    its runs (a few-shot cell's headline is the mean over its seeds)."""
    if METRIC_KIND.get(metric) != pred.kind:
        raise ConfigError(f"metric {metric!r}", f"not computable from {pred.kind} predictions",
                          f"use one of {sorted(k for k, v in METRIC_KIND.items() if v == pred.kind)}")
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != pred.n_items:
        raise ConfigError("stats.weighted_values", f"weights for {w.shape[1]} items, predictions "
                                                   f"hold {pred.n_items}", "draw weights per test item")
    runs = []
    if metric == "auroc":
        runs = [weighted_auroc(pred.labels, s, pred.label_kind, w) for s in pred.scores]
    elif metric in ("dice", "jaccard", "dice_jaccard"):
        for d, j in zip(pred.dice, pred.jaccard):
            arr = {"dice": d, "jaccard": j, "dice_jaccard": (d + j) / 2.0}[metric]
            runs.append(_weighted_item_mean(np.asarray(arr, dtype=np.float64), w))
    else:
        runs = [_study_values(cm, w, metric) for cm in pred.confmats]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(runs, axis=0), axis=0)
