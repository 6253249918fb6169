"""ROC and precision-recall curves of one class from test scores, and the operating point on them.

The points are those of ``sklearn.metrics.roc_curve(drop_intermediate=False)`` and
``precision_recall_curve`` (one point per distinct score, the tests compare them), computed here in
numpy from one sort so a report can draw many curves cheaply. Average precision is sklearn's step
sum (no interpolation). Classes are one-vs-rest: multiclass class c is ``y == c`` scored by
``scores[:, c]``; a multilabel finding uses only the items whose label is known (not NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radbench_core.eval.operating_point import calls, truths


@dataclass(frozen=True)
class Curves:
    fpr: np.ndarray                      # ROC, increasing, from (0, 0) to (1, 1)
    tpr: np.ndarray
    precision: np.ndarray                # PR, recall decreasing to 0 (precision 1 appended)
    recall: np.ndarray
    auroc: float
    average_precision: float
    prevalence: float
    point: tuple[float, float, float]    # the operating point: (FPR, TPR = recall, precision)


def _counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when calling every item scoring >= each distinct score (descending)."""
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]          # last item of each distinct score
    tps = np.cumsum(y)[last].astype(np.float64)
    return tps, (last + 1) - tps


def class_curves(y: np.ndarray, s: np.ndarray, called: np.ndarray) -> Curves | None:
    """Curves of one binary class (``y`` 0/1, ``s`` scores, ``called`` the operating point's
    positive calls); None when the class has no positive or no negative item."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    called = np.asarray(called, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        return None
    tps, fps = _counts(y, s)
    fpr, tpr = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    ap = float(-np.sum(np.diff(recall) * precision[:-1]))
    tp, fp = int((called & y).sum()), int((called & ~y).sum())
    point = (fp / (len(y) - n_pos), tp / n_pos, tp / (tp + fp) if tp + fp else 1.0)
    return Curves(fpr, tpr, precision, recall, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0), ap, n_pos / len(y), point)


def curves_per_class(labels: np.ndarray, scores: np.ndarray, label_kind: str) -> list[Curves | None]:
    """One :class:`Curves` per class (binary: one) of one run's scores ``(N,)`` or ``(N, C)``."""
    scores = np.asarray(scores, dtype=np.float64)
    if label_kind == "binary" and scores.ndim == 2:
        scores = scores[:, -1]
    called = calls(scores, label_kind)
    truth = truths(labels, label_kind, called.shape[1])
    s = scores.reshape(len(scores), -1)
    out = []
    for c in range(called.shape[1]):
        known = ~np.isnan(truth[:, c])
        out.append(class_curves(truth[known, c] == 1, s[known, c], called[known, c]))
    return out
