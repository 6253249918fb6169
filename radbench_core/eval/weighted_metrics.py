"""The headline metrics of a cell under item weights: one value per bootstrap resample, vectorised.

Why weights rather than index draws: a bootstrap resample is a multiset of test items, i.e. an
integer weight per item (its count), and the patient-clustered bootstrap gives every item of a drawn
patient that patient's count. Weights may therefore be given per *unit* (B, U) with each item's unit
(``item_units``): AUROC then never expands them to (B, N). Per class, the weighted Mann-Whitney
statistic is one sparse (2K + 1, U) matrix built from one sort of the scores (K the distinct scores
of the rarer label), so a chunk of resamples costs one sparse product and a cumulative sum over K
rows; one NIH-size pair at B = 2,000 takes seconds instead of about 80 s (docs/performance.md). Counts
are integers, so every sum is exact in float64 and the values equal the previous per-item
vectorisation bit for bit. With all weights 1 each function equals its plain metric in
``radbench_core.eval.metrics`` (tested against it and scikit-learn).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import sparse

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import study_dice, study_jaccard

# metric name -> the Predictions kind it is computed from
METRIC_KIND = {"auroc": "classification", "dice": "segmentation", "jaccard": "segmentation",
               "dice_jaccard": "segmentation", "dice_study": "segmentation",
               "jaccard_study": "segmentation", "dice_jaccard_study": "segmentation"}


def _auroc_plan(y: np.ndarray, s: np.ndarray, item_rows: np.ndarray, n_rows: int) -> tuple[int, Any]:
    """The weighted Mann-Whitney statistic of one class as a sparse map from unit weights.

    Rows of the (2K + 1, n_rows) matrix, K the distinct scores of the minority label (the
    "levels"): 0 sums the other label's items, 1..K the minority items at each level, K+1..2K the
    increments of twice the other label's weight below each level (ties count half), so one sparse
    product per chunk of resamples and a cumulative sum over K rows give every resample's AUROC.
    Swapping the labels and negating the scores leaves AUROC unchanged; it keeps K small.
    """
    if len(np.unique(s[~y])) < len(np.unique(s[y])):
        y, s = ~y, -s
    levels = np.unique(s[y])
    k = len(levels)
    other = s[~y]
    at = np.searchsorted(levels, other, "left")            # levels strictly below each other item
    tied = (at < k) & (levels[np.minimum(at, max(k - 1, 0))] == other) if k else np.zeros(len(other), bool)
    rows_other = item_rows[~y]
    rows = np.concatenate([np.zeros(len(other), np.int64), 1 + np.searchsorted(levels, s[y]),
                           1 + k + at[~tied], 1 + k + at[tied], 2 + k + at[tied]])
    cols = np.concatenate([rows_other, item_rows[y], rows_other[~tied], rows_other[tied], rows_other[tied]])
    vals = np.concatenate([np.ones(len(other) + int(y.sum())), np.full(int((~tied).sum()), 2.0),
                           np.ones(2 * int(tied.sum()))])
    keep = rows <= 2 * k                                   # a tie at the top level adds nothing above it
    return k, sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(2 * k + 1, n_rows))


def _auroc_from_plan(plan: tuple[int, Any], unit_weights_t: np.ndarray) -> np.ndarray:
    """AUROC per column of ``unit_weights_t`` (n_rows, B); NaN where one label has no weight.

    float32 weights are taken as exact integer counts (``_exact_in_float32``): the sparse product
    and the cumulative sum then stay below 2**24 and are exact; the products are taken in float64."""
    k, matrix = plan
    sums = np.asarray(matrix.astype(unit_weights_t.dtype, copy=False) @ unit_weights_t)
    twice_below = np.cumsum(sums[k + 1:], axis=0).astype(np.float64, copy=False)
    sums = sums.astype(np.float64, copy=False)
    other_total, minority = sums[0], sums[1:k + 1]
    numerator = np.einsum("kb,kb->b", minority, twice_below) / 2.0
    denominator = minority.sum(axis=0) * other_total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def _exact_in_float32(w: np.ndarray, units: np.ndarray) -> bool:
    """Whether integer unit counts ``w`` keep every AUROC partial sum (at most twice a resample's
    total item weight) exactly representable in float32 (2**24): 3x faster sparse products."""
    if w.dtype.kind not in "iu" or w.size == 0:
        return False
    items_per_unit = np.bincount(units, minlength=w.shape[1]).astype(np.float64)
    return bool(w.min() >= 0 and 2.0 * float(np.max(w @ items_per_unit)) < 2.0 ** 24)


def weighted_binary_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count half) of one score vector under each row of ``weights``.

    ``y`` (N,) bool, ``s`` (N,) finite scores, ``weights`` (B, N) >= 0 -> (B,), NaN where a row
    has no positive or no negative weight.
    """
    y = np.asarray(y, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    plan = _auroc_plan(y, np.asarray(s, dtype=np.float64), np.arange(len(y)), len(y))
    return _auroc_from_plan(plan, np.ascontiguousarray(w.T))


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


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, label_kind: str, weights: np.ndarray,
                   item_units: np.ndarray | None = None, chunk: int = 250) -> np.ndarray:
    """Macro AUROC (unscorable classes skipped, as ``metrics.auroc``) per weight row: (B,).

    ``weights`` (B, N) per item, or (B, U) per unit with ``item_units`` (N,) each item's unit;
    resamples are taken ``chunk`` at a time (memory: one (2K + 1, chunk) block per class)."""
    w = np.atleast_2d(np.asarray(weights))
    units = np.arange(w.shape[1]) if item_units is None else np.asarray(item_units)
    plans = []
    for known, y, s in _columns(labels, scores, label_kind):
        finite = bool(np.all(np.isfinite(s[known])))
        plans.append(_auroc_plan(y[known], s[known], units[known], w.shape[1]) if finite else None)
    per_class = np.full((len(w), len(plans)), np.nan)
    dtype = np.float32 if _exact_in_float32(w, units) else np.float64
    for i in range(0, len(w), chunk):
        block = np.ascontiguousarray(w[i:i + chunk].T, dtype=dtype)
        for c, plan in enumerate(plans):
            if plan is not None:
                per_class[i:i + chunk, c] = _auroc_from_plan(plan, block)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_class, axis=1)


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


def weighted_values(pred, metric: str, weights: np.ndarray, item_units: np.ndarray | None = None,
                    chunk: int = 250) -> np.ndarray:
    """``metric`` of a :class:`~radbench_core.eval.predictions.Predictions` per weight row, averaged over
    its runs (a few-shot cell's headline is the mean over its seeds). ``weights`` (B, N) per item,
    or (B, U) per unit (patient) with ``item_units`` (N,) each item's unit."""
    if METRIC_KIND.get(metric) != pred.kind:
        raise ConfigError(f"metric {metric!r}", f"not computable from {pred.kind} predictions",
                          f"use one of {sorted(k for k, v in METRIC_KIND.items() if v == pred.kind)}")
    w = np.atleast_2d(np.asarray(weights))
    if item_units is None and w.shape[1] != pred.n_items:
        raise ConfigError("stats.weighted_values", f"weights for {w.shape[1]} items, predictions "
                                                   f"hold {pred.n_items}", "draw weights per test item")
    units = None if item_units is None else np.asarray(item_units)
    if units is not None and (len(units) != pred.n_items
                              or (len(units) and not 0 <= units.min() <= units.max() < w.shape[1])):
        raise ConfigError("stats.weighted_values", f"{len(units)} item units into {w.shape[1]} unit "
                                                   f"weights, predictions hold {pred.n_items} items",
                          "give every test item the index of its unit's weight column")
    if metric == "auroc":
        runs = [weighted_auroc(pred.labels, s, pred.label_kind, w, units, chunk) for s in pred.scores]
    else:
        runs = [np.concatenate([_item_metric(pred, metric, w[i:i + chunk] if units is None
                                             else w[i:i + chunk][:, units], r)
                                for i in range(0, len(w), chunk)]) for r in range(_runs(pred, metric))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(runs, axis=0), axis=0)


def _runs(pred, metric: str) -> int:
    return len(pred.dice) if metric in ("dice", "jaccard", "dice_jaccard") else len(pred.confmats)


def _item_metric(pred, metric: str, w: np.ndarray, run: int) -> np.ndarray:
    """A segmentation metric of run ``run`` under item weights ``w`` (B, N)."""
    w = np.asarray(w, dtype=np.float64)
    if metric in ("dice", "jaccard", "dice_jaccard"):
        d, j = pred.dice[run], pred.jaccard[run]
        arr = {"dice": d, "jaccard": j, "dice_jaccard": (np.asarray(d) + np.asarray(j)) / 2.0}[metric]
        return _weighted_item_mean(np.asarray(arr, dtype=np.float64), w)
    return _study_values(pred.confmats[run], w, metric)
