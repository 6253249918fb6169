"""AUROC, Dice/Jaccard and bootstrap confidence intervals; every metric declares its direction.

Implemented directly in numpy (rank statistics, confusion counts) so that bootstrap resampling
stays cheap and the tests can compare against scikit-learn as an *independent* reference.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.stats import rankdata

from radbench_core.core.errors import ConfigError
from radbench_core.core.results import Metric

# Direction of every metric name radbench reports; the gate and the report read it from here.
HIGHER_IS_BETTER: dict[str, bool] = {
    "auroc": True,
    "auroc_val": True,
    "accuracy": True,
    "dice": True,
    "jaccard": True,
    "dice_jaccard": True,
    "dice_study": True,
    "jaccard_study": True,
    "dice_jaccard_study": True,
    "hd95": False,                   # mm or px; a record's clinical detail (extra), not a gated metric
    "loss": False,
    "wall_time_s": False,
    "peak_memory_mb": False,
    "throughput": True,
}

LABEL_KINDS = ("binary", "multiclass", "multilabel")


def _binary_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUROC with tied scores counted half; NaN when one label value is missing."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(s)):
        return math.nan
    ranks = rankdata(s)  # average ranks for ties = sklearn's trapezoidal ROC area
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _columns_auroc(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``_binary_auroc`` of every column at once (one ``rankdata`` over the columns); NaN where a
    column has no positive or no negative. Ranks are multiples of 1/2, so the sums are exact and
    equal the column-by-column values bit for bit."""
    y = np.asarray(y, dtype=bool)
    n_pos = y.sum(axis=0).astype(np.float64)
    n_neg = y.shape[0] - n_pos
    ranks = rankdata(s, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.where(y, ranks, 0.0).sum(axis=0) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = math.nan
    return out


def _check(y_true: np.ndarray, scores: np.ndarray, label_kind: str) -> tuple[np.ndarray, np.ndarray]:
    where = f"metrics.auroc(label_kind={label_kind!r})"
    if label_kind not in LABEL_KINDS:
        raise ConfigError(where, f"unknown label kind, expected one of {LABEL_KINDS}",
                          "pass the dataset spec's label_kind")
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if label_kind == "binary":
        if s.ndim == 2 and s.shape[1] == 2:
            s = s[:, 1]
        if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
            raise ConfigError(where, f"expected labels (N,) and scores (N,) or (N, 2), got "
                              f"{y.shape} and {np.shape(scores)}",
                              "pass one positive-class score per item")
    elif label_kind == "multiclass":
        if y.ndim != 1 or s.ndim != 2 or len(y) != len(s):
            raise ConfigError(where, f"expected labels (N,) and scores (N, C), got {y.shape} "
                              f"and {s.shape}", "pass one probability per class and item")
        if y.size and (y.min() < 0 or y.max() >= s.shape[1]):
            raise ConfigError(where, f"labels must lie in 0..{s.shape[1] - 1}, got "
                              f"{y.min()}..{y.max()}", "check num_classes against the labels")
    else:
        if y.ndim != 2 or s.shape != y.shape:
            raise ConfigError(where, f"expected labels and scores of the same (N, C) shape, got "
                              f"{y.shape} and {s.shape}", "pass one score per class and item")
    return y, s


def auroc_per_class(y_true: np.ndarray, scores: np.ndarray, label_kind: str) -> np.ndarray:
    """One AUROC per class (binary: a single value); NaN for a class that cannot be scored.

    multiclass: class c is scored one-vs-rest from ``scores[:, c]``. multilabel: class c uses only
    items whose target is not NaN. A class is *not scorable* (NaN) when its targets hold only one
    value (no positives or no negatives) or its scores are not finite.
    """
    y, s = _check(y_true, scores, label_kind)
    if label_kind == "binary":
        return np.asarray([_binary_auroc(y, s)])
    if label_kind == "multiclass":
        if np.isfinite(s).all():
            return _columns_auroc(y[:, None] == np.arange(s.shape[1])[None, :], s)
        return np.asarray([_binary_auroc(y == c, s[:, c]) for c in range(s.shape[1])])
    if not np.isnan(y.astype(np.float64)).any() and np.isfinite(s).all():
        return _columns_auroc(y > 0.5, s)
    out = []
    for c in range(y.shape[1]):
        known = ~np.isnan(y[:, c].astype(np.float64))
        out.append(_binary_auroc(y[known, c] > 0.5, s[known, c]))
    return np.asarray(out)


def auroc(y_true: np.ndarray, scores: np.ndarray, label_kind: str) -> float:
    """The study's headline metric: plain (binary), one-vs-rest macro (multiclass), macro over
    classes with NaN targets ignored (multilabel).

    Classes that are not scorable (only one label value present, see :func:`auroc_per_class`) are
    skipped from the macro average, so a rare class missing from a small split does not void the
    whole metric; when no class is scorable the result is NaN. With every class present this equals
    ``sklearn.metrics.roc_auc_score`` (``multi_class="ovr", average="macro"`` for multiclass).
    """
    per_class = auroc_per_class(y_true, scores, label_kind)
    finite = per_class[np.isfinite(per_class)]
    return float(finite.mean()) if finite.size else math.nan


def cluster_members(groups) -> list[np.ndarray]:
    """Item positions of each distinct group (patient), in first-seen order of the sorted ids."""
    _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds) if len(order) else []


def bootstrap_ci(metric_fn: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000,
                 seed: int = 0, alpha: float = 0.05, groups=None) -> tuple[float, float]:
    """Percentile bootstrap CI: ``metric_fn(indices)`` on ``resamples`` seeded draws.

    Without ``groups`` a draw is n items of 0..n-1 with replacement. With ``groups`` (the patient of
    each item) a draw is G patients with replacement, each bringing all its items: images of one
    patient are correlated, so resampling images narrows the CI below its coverage (issue 21).
    Resamples where the metric is NaN (e.g. a draw without positives) are skipped; if all are NaN
    the interval is ``(nan, nan)``.
    """
    if n <= 0 or resamples <= 0 or not 0.0 < alpha < 1.0:
        raise ConfigError("metrics.bootstrap_ci", f"need n > 0, resamples > 0 and 0 < alpha < 1, got "
                          f"n={n}, resamples={resamples}, alpha={alpha}",
                          "score a non-empty split with a positive number of resamples")
    members = None
    if groups is not None:
        if len(groups) != n:
            raise ConfigError("metrics.bootstrap_ci", f"{len(groups)} patient ids for {n} items",
                              "pass one patient id per test item, in the items' order")
        members = cluster_members(groups)
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for r in range(resamples):
        if members is None:
            idx = rng.integers(0, n, size=n)
        else:
            idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        values[r] = metric_fn(idx)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def ci_counts(n: int, groups=None) -> dict[str, object]:
    """What a record says about its CI: the resampling unit and the item and patient counts."""
    if groups is None:
        return {"ci_unit": "item", "n_items": int(n), "n_patients": None}
    return {"ci_unit": "patient", "n_items": int(n),
            "n_patients": int(len(np.unique(np.asarray(groups).astype(str))))}


def auroc_metric(y_true: np.ndarray, scores: np.ndarray, label_kind: str, *,
                 resamples: int = 1000, seed: int = 0, groups=None) -> Metric:
    """AUROC with its seeded bootstrap 95% CI: what every classification record carries.

    ``groups``: the patient of each test item; the CI then resamples patients."""
    y, s = _check(y_true, scores, label_kind)
    value = auroc(y, s, label_kind)
    ci = None
    if resamples > 0 and len(y) > 0:
        ci = bootstrap_ci(lambda idx: auroc(y[idx], s[idx], label_kind), len(y),
                          resamples=resamples, seed=seed, groups=groups)
        return metric("auroc", value, ci, **ci_counts(len(y), groups))
    return metric("auroc", value, ci)


def dice_jaccard(pred: np.ndarray, target: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-foreground-class Dice and Jaccard (classes 1..num_classes-1) of two integer label maps.

    Convention (as nnU-Net): a class absent from both prediction and target gives NaN, so it is
    excluded from means instead of counting as a perfect 1. Perfect overlap = 1, disjoint = 0.
    """
    where = "metrics.dice_jaccard"
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise ConfigError(where, f"prediction {p.shape} and target {t.shape} differ in shape",
                          "resample the prediction to the target's grid before scoring")
    if num_classes < 2:
        raise ConfigError(where, f"num_classes={num_classes}, need >= 2 (background + a class)",
                          "count the background class in num_classes")
    if not (np.issubdtype(p.dtype, np.integer) and np.issubdtype(t.dtype, np.integer)):
        raise ConfigError(where, f"label maps must be integer, got {p.dtype} and {t.dtype}",
                          "argmax the logits into class indices first")
    for name, arr in (("prediction", p), ("target", t)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ConfigError(where, f"{name} values must lie in 0..{num_classes - 1}, got "
                              f"{arr.min()}..{arr.max()}", "check num_classes (background included)")
    joint = np.bincount((p.ravel().astype(np.int64) * num_classes + t.ravel()),
                        minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    inter = np.diag(joint)[1:].astype(np.float64)
    size_p = joint.sum(axis=1)[1:].astype(np.float64)
    size_t = joint.sum(axis=0)[1:].astype(np.float64)
    total = size_p + size_t
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2.0 * inter / total, np.nan)
        jaccard = np.where(total > 0, inter / (total - inter), np.nan)
    return dice, jaccard


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` pixel counts, rows = true class, columns = predicted class (int64)."""
    p = np.asarray(pred).ravel().astype(np.int64)
    t = np.asarray(target).ravel().astype(np.int64)
    if p.shape != t.shape:
        raise ConfigError("metrics.confusion_matrix", f"{p.size} predicted and {t.size} true pixels",
                          "score a prediction against the mask of the same slice and size")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_classes):
        raise ConfigError("metrics.confusion_matrix", f"labels outside 0..{num_classes - 1}",
                          "check num_classes (background included)")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def study_dice(confmat: np.ndarray) -> float:
    """The study's Dice: torchmetrics ``Dice(average="macro", ignore_index=0)`` on pooled pixels.

    Per foreground class 2TP / (2TP + FP + FN) over every pixel of every slice pooled, averaged over
    the foreground classes that occur in prediction or truth; 0 when none does (torchmetrics 1.0.3).
    """
    cm = np.asarray(confmat, dtype=np.float64)
    tp = np.diag(cm)[1:]
    fp = cm.sum(axis=0)[1:] - tp
    fn = cm.sum(axis=1)[1:] - tp
    seen = (tp + fp + fn) > 0
    if not seen.any():
        return 0.0
    return float(np.mean(2.0 * tp[seen] / (2.0 * tp[seen] + fp[seen] + fn[seen])))


def study_jaccard(confmat: np.ndarray) -> float:
    """The study's Jaccard: torchmetrics ``MulticlassJaccardIndex(average="macro", ignore_index=0)``.

    torchmetrics (>= 0.11, the study pins 1.0.3) drops every pixel whose TRUE class is the ignored
    background before counting, so a foreground prediction on background is never a false positive:
    per class TP / (TP + FN + FP from other foreground classes), i.e. recall for a one-class task.
    Macro over foreground classes present in the kept pixels; NaN when none is.
    """
    cm = np.asarray(confmat, dtype=np.float64).copy()
    cm[0, :] = 0.0                                 # pixels whose truth is background are dropped
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1) - tp
    weights = ((cm.sum(axis=0) + cm.sum(axis=1)) > 0).astype(np.float64)
    weights[0] = 0.0
    if weights.sum() == 0:
        return math.nan
    jac = np.divide(tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float((weights * jac).sum() / weights.sum())


def metric(name: str, value: float, ci: tuple[float, float] | None = None, *,
           ci_unit: str | None = None, n_items: int | None = None,
           n_patients: int | None = None) -> Metric:
    """A :class:`Metric` whose direction comes from :data:`HIGHER_IS_BETTER`, never typed by hand."""
    if name not in HIGHER_IS_BETTER:
        raise ConfigError(f"metric {name!r}", "unknown metric name",
                          f"use one of {sorted(HIGHER_IS_BETTER)} or add it to HIGHER_IS_BETTER")
    low, high = (None, None) if ci is None else (float(ci[0]), float(ci[1]))
    return Metric(value=float(value), higher_is_better=HIGHER_IS_BETTER[name], ci_low=low, ci_high=high,
                  ci_unit=ci_unit if ci is not None else None, n_items=n_items, n_patients=n_patients)
