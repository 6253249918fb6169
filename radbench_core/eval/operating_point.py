"""Sensitivity and specificity at a stated operating point, from a cell's test predictions.

Why: AUROC says how well scores rank; a radiology reader also asks what the classifier does at one
threshold. Scores are probabilities (sigmoid, softmax or P(positive), see the protocols), so the
operating point is stated, not tuned on the test set: a positive call is a score >= THRESHOLD
(binary, each finding of a multilabel set), the arg-max class (multiclass, each class one-vs-rest).
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.5
OPERATING_POINT = (f"score >= {THRESHOLD} (binary and each multilabel finding); the arg-max class "
                   "(multiclass, one-vs-rest)")


def calls(scores: np.ndarray, label_kind: str) -> np.ndarray:
    """Positive calls (N, C) from one run's scores (N,) or (N, C)."""
    scores = np.asarray(scores, dtype=float)
    if label_kind == "multiclass":
        return np.eye(scores.shape[1], dtype=bool)[np.argmax(scores, axis=1)]
    return (scores >= THRESHOLD).reshape(len(scores), -1)


def truths(labels: np.ndarray, label_kind: str, n_classes: int) -> np.ndarray:
    """Labels as (N, C) floats, NaN where a multilabel finding is unknown."""
    labels = np.asarray(labels)
    if label_kind == "multiclass":
        return np.eye(n_classes)[labels.astype(int)]
    return labels.astype(float).reshape(len(labels), -1)


def sensitivity_specificity(labels: np.ndarray, scores: np.ndarray,
                            label_kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per class (C,): sensitivity TP / (TP + FN) and specificity TN / (TN + FP) at the operating
    point; NaN where a class has no positive (sensitivity) or no negative (specificity)."""
    called = calls(scores, label_kind)
    truth = truths(labels, label_kind, called.shape[1])
    known = ~np.isnan(truth)
    pos, neg = known & (truth == 1), known & (truth == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (called & pos).sum(0) / pos.sum(0)
        spec = (~called & neg).sum(0) / neg.sum(0)
    return np.where(pos.sum(0) > 0, sens, np.nan), np.where(neg.sum(0) > 0, spec, np.nan)


def prevalence(labels: np.ndarray, label_kind: str, n_classes: int) -> np.ndarray:
    """Share of positives per class among the items whose label is known."""
    truth = truths(labels, label_kind, n_classes)
    with np.errstate(invalid="ignore"):
        return np.nanmean(truth, axis=0)
