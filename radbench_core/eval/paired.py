"""Paired bootstrap of the metric difference between two cells scored on the same test items.

Both cells are resampled with the SAME draw (the same patients, each with the same count), so what
varies is only the difference the two models make on identical images; the test set's own
difficulty cancels. Patients are the resampling unit (items of one patient are correlated): a draw
takes G patients with replacement and gives every item the count of its patient.

p-value (two-sided): the centred bootstrap ``(1 + #{|d* - d| >= |d|}) / (1 + B)``, i.e. how often
the resampled difference strays from the observed one as far as the observed one is from zero
(Efron & Tibshirani 1993, ch. 16). CI: percentile interval of d*. Its smallest value is 1/(1 + B),
so with B = 1,000 Holm over the 78 pairs of 13 models can never reach 0.05 (issue 21); hence also
``p_normal``: the two-sided normal p of z = d / SD(d*) (the bootstrap standard error of the paired
difference), which attains any value and is what the significance matrix corrects. ``mc_error``:
the Monte Carlo standard error of the bootstrap p, sqrt(p (1 - p) / B).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from scipy.stats import norm

from radbench_core.core.errors import ConfigError
from radbench_core.eval.weighted_metrics import weighted_values


@dataclass(frozen=True)
class PairedResult:
    metric: str
    value_a: float
    value_b: float
    diff: float                  # a - b
    ci_low: float
    ci_high: float
    p_value: float
    resamples: int               # resamples with a finite difference
    n_items: int
    n_groups: int
    method: str = "paired bootstrap (patients)"
    p_normal: float = math.nan   # two-sided, z = diff / SD of the resampled differences
    mc_error: float = math.nan   # Monte Carlo standard error of p_value

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_counts(groups: np.ndarray, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, G) counts of ``resamples`` bootstrap draws of the G distinct ``groups``, and each item's
    group index (N,): ``counts[:, inverse]`` are the items' counts, expandable chunk by chunk."""
    _, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    if n_groups == 0:                     # no items: every draw is empty (no 1/0 probabilities)
        return np.zeros((resamples, 0), dtype=np.int64), inverse
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=resamples), inverse


def cluster_weights(groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(B, N) item counts of ``resamples`` bootstrap draws of the distinct ``groups``."""
    counts, inverse = cluster_counts(groups, resamples, seed)
    return counts[:, inverse].astype(np.float64)


def align(a, b):
    """``b`` reordered to ``a``'s items; a ConfigError unless both hold the same test items."""
    if a.kind != b.kind:
        raise ConfigError("stats.align", f"cannot pair {a.kind} with {b.kind} predictions",
                          "compare cells of the same task")
    if set(a.ids.tolist()) != set(b.ids.tolist()):
        only_a = len(set(a.ids.tolist()) - set(b.ids.tolist()))
        only_b = len(set(b.ids.tolist()) - set(a.ids.tolist()))
        raise ConfigError("stats.align", f"different test sets ({only_a} items only in the first, "
                                         f"{only_b} only in the second)",
                          "compare cells of the same dataset, split and load options")
    position = {k: i for i, k in enumerate(b.ids.tolist())}
    b = b.take(np.asarray([position[k] for k in a.ids.tolist()], dtype=np.int64))
    if a.kind == "classification":
        la, lb = np.asarray(a.labels, dtype=np.float64), np.asarray(b.labels, dtype=np.float64)
        if la.shape != lb.shape or not np.array_equal(la, lb, equal_nan=True):
            raise ConfigError("stats.align", "same item ids but different labels",
                              "compare cells whose test labels come from the same dataset version")
    return b


def _own_values(pred, metric: str, resamples: int, seed: int, chunk: int,
                cache: dict | None) -> tuple[float, np.ndarray]:
    """``pred``'s metric and its ``resamples`` patient-bootstrap values, in its own item order.

    The draw is a multinomial over the SORTED distinct groups, so every prediction of the same test
    set (the same groups) gets the same draw for the same seed, whatever its item order: a block of
    cells can compute each cell's values once (``cache``) and difference them pair by pair."""
    key = (id(pred), metric, resamples, seed, chunk)
    if cache is not None and key in cache:
        return cache[key][1]
    value = float(weighted_values(pred, metric, np.ones((1, pred.n_items)))[0])
    counts, inverse = cluster_counts(pred.groups, resamples, seed)
    out = (value, weighted_values(pred, metric, counts, inverse, chunk=chunk))
    if cache is not None:
        cache[key] = (pred, out)          # the prediction is kept so its id() is not reused
    return out


def _same_groups(a, b_aligned) -> bool:
    return np.array_equal(np.asarray(a.groups).astype(str), np.asarray(b_aligned.groups).astype(str))


def paired_bootstrap(a, b, metric: str, *, resamples: int = 1000, seed: int = 0,
                     alpha: float = 0.05, chunk: int = 250, cache: dict | None = None) -> PairedResult:
    """Metric difference a - b with its percentile CI and two-sided p-value (module docstring).

    ``cache`` (a dict the caller keeps for one block of cells): each prediction's bootstrap values
    are computed once and reused in every pair it is part of (the same numbers: the draw depends on
    the groups only, see ``_own_values``)."""
    if resamples < 1 or not 0.0 < alpha < 1.0:
        raise ConfigError("stats.paired_bootstrap", f"resamples={resamples}, alpha={alpha}",
                          "use resamples >= 1 and 0 < alpha < 1")
    b_orig, b = b, align(a, b)
    if cache is not None and _same_groups(a, b):
        value_a, vals_a = _own_values(a, metric, resamples, seed, chunk, cache)
        value_b, vals_b = _own_values(b_orig, metric, resamples, seed, chunk, cache)
        diff = value_a - value_b
        d_star = vals_a - vals_b
        return _result(metric, a, value_a, value_b, diff, d_star, alpha)
    ones = np.ones((1, a.n_items))
    value_a = float(weighted_values(a, metric, ones)[0])
    value_b = float(weighted_values(b, metric, ones)[0])
    diff = value_a - value_b
    counts, inverse = cluster_counts(a.groups, resamples, seed)      # b is aligned to a's items
    d_star = (weighted_values(a, metric, counts, inverse, chunk=chunk)
              - weighted_values(b, metric, counts, inverse, chunk=chunk))
    return _result(metric, a, value_a, value_b, diff, d_star, alpha)


def _result(metric: str, a, value_a: float, value_b: float, diff: float, d_star: np.ndarray,
            alpha: float) -> PairedResult:
    d_star = d_star[np.isfinite(d_star)]
    n_groups = len(np.unique(a.groups))
    if not math.isfinite(diff) or d_star.size == 0:
        return PairedResult(metric, value_a, value_b, diff, math.nan, math.nan, math.nan, 0,
                            a.n_items, n_groups)
    low, high = np.quantile(d_star, [alpha / 2.0, 1.0 - alpha / 2.0])
    extreme = int(np.sum(np.abs(d_star - diff) >= abs(diff) - 1e-12))
    p = min(1.0, (1 + extreme) / (1 + d_star.size))
    sd = float(d_star.std(ddof=1)) if d_star.size > 1 else 0.0
    p_normal = float(2.0 * norm.sf(abs(diff) / sd)) if sd > 0 else (1.0 if diff == 0 else 0.0)
    return PairedResult(metric, value_a, value_b, diff, float(low), float(high), float(p),
                        int(d_star.size), a.n_items, n_groups, p_normal=p_normal,
                        mc_error=math.sqrt(p * (1.0 - p) / d_star.size))
