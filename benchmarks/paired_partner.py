"""The comparison partner of the compare-models speed cell: the previous vectorisation of the
patient-bootstrap AUROC, kept verbatim so the ratio is taken in one run.

It expanded every resample to (B, N) item weights, gathered them into score order per class and
summed them per tie group (``np.add.reduceat`` along the items axis), about 80 s of CPU for one
NIH-size pair at B = 2,000. radbench's path (``radbench_core.eval.weighted_metrics``) maps the
patients' counts through one sparse matrix per class instead; both give the same numbers.
"""

from __future__ import annotations

import warnings

import numpy as np

from radbench_core.eval.paired import cluster_counts


def reduceat_binary_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC (ties count half) of one score vector under each row of ``weights``."""
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


def reduceat_multilabel_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro AUROC over the classes of multilabel ``labels`` (NaN = unknown) per weight row."""
    per_class = []
    for c in range(labels.shape[1]):
        known = ~np.isnan(labels[:, c])
        per_class.append(reduceat_binary_auroc(labels[known, c] > 0.5, scores[known, c], weights[:, known]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(per_class, axis=1), axis=1)


def reduceat_differences(a, b, resamples: int, seed: int, chunk: int = 250) -> np.ndarray:
    """The resampled AUROC differences a - b of the previous ``paired_bootstrap`` (same draw)."""
    counts, inverse = cluster_counts(a.groups, resamples, seed)
    labels = np.asarray(a.labels, dtype=np.float64)
    out = []
    for i in range(0, resamples, chunk):
        w = counts[i:i + chunk][:, inverse].astype(np.float64)
        out.append(reduceat_multilabel_auroc(labels, np.asarray(a.scores[0], np.float64), w)
                   - reduceat_multilabel_auroc(labels, np.asarray(b.scores[0], np.float64), w))
    return np.concatenate(out)
