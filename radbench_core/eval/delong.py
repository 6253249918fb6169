"""DeLong's test for two correlated AUROCs on the same items (DeLong, DeLong & Clarke-Pearson 1988).

Structural components via mid-ranks (Sun & Xu 2014): for model r, positive i and negative j,
V10[r, i] = mean_j psi(X_ri, Y_rj) and V01[r, j] = mean_i psi(X_ri, Y_rj) with psi = 1 (X > Y),
1/2 (tie), 0; AUROC_r = mean V10[r]. Cov(AUROC) = S10 / m + S01 / n (m positives, n negatives),
S10, S01 the sample covariances of the components; z = (A1 - A2) / sqrt(Var(A1 - A2)).
Single-label AUROC only: per class, one class at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from radbench_core.core.errors import ConfigError


@dataclass(frozen=True)
class DeLongResult:
    auroc_a: float
    auroc_b: float
    diff: float
    variance: float              # of the difference
    z: float
    p_value: float


def structural_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(aurocs (R,), V10 (R, m), V01 (R, n)) of R score rows on binary labels ``y``."""
    y = np.asarray(y).astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    m, n = int(y.sum()), int((~y).sum())
    if m == 0 or n == 0:
        raise ConfigError("stats.delong", f"{m} positives and {n} negatives",
                          "DeLong needs both label values among the items")
    ranks_all = rankdata(s, axis=1)
    ranks_pos = rankdata(s[:, y], axis=1)
    ranks_neg = rankdata(s[:, ~y], axis=1)
    v10 = (ranks_all[:, y] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[:, ~y] - ranks_neg) / m
    return v10.mean(axis=1), v10, v01


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(aurocs (R,), covariance (R, R)) of R correlated AUROCs."""
    aurocs, v10, v01 = structural_components(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aurocs), len(aurocs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aurocs), len(aurocs)))
    return aurocs, s10 / m + s01 / n


def delong_test(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> DeLongResult:
    """Two-sided DeLong test of AUROC(a) = AUROC(b) on the same binary labels."""
    if len(scores_a) != len(y) or len(scores_b) != len(y):
        raise ConfigError("stats.delong_test", f"{len(y)} labels, {len(scores_a)} and {len(scores_b)} "
                                               "scores", "score the same items with both models")
    aurocs, cov = delong_covariance(y, np.stack([scores_a, scores_b]))
    diff = float(aurocs[0] - aurocs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    if var <= 0:
        z, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    else:
        z = diff / math.sqrt(var)
        p = float(2.0 * norm.sf(abs(z)))
    return DeLongResult(float(aurocs[0]), float(aurocs[1]), diff, var, z, p)


def delong_per_class(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                     label_kind: str) -> list[DeLongResult | None]:
    """DeLong per class (binary: one); None for a class without both label values."""
    y, a, b = np.asarray(labels), np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)
    out: list[DeLongResult | None] = []
    if label_kind == "binary":
        pick = (lambda s: s[:, 1] if s.ndim == 2 else s)
        return [delong_test(y.astype(bool), pick(a), pick(b))]
    for c in range(a.shape[1]):
        if label_kind == "multiclass":
            known, yc = np.ones(len(y), bool), y == c
        else:
            known = ~np.isnan(y[:, c].astype(np.float64))
            yc = np.where(known, y[:, c], 0) > 0.5
        yk = yc[known]
        ok = yk.any() and (~yk).any() and np.isfinite(a[known, c]).all() and np.isfinite(b[known, c]).all()
        out.append(delong_test(yk, a[known, c], b[known, c]) if ok else None)
    return out
