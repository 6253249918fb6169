"""Cell-vs-cell significance for reports: the pairwise matrix and "not different from the best".

Tables mark every entry whose paired difference to its column's best is not significant after
Holm's correction across that column (mark ``TIED_MARK``): the study ranks models by gaps of
0.002-0.01 AUROC that a single test set often cannot resolve.

The pairwise matrix corrects p-values that can reach significance at the study's block sizes: with
1,000 resamples a bootstrap p is at least 0.001 and Holm over 78 pairs lifts it to 0.078, so 13 cells
with +0.50 AUROC gaps gave 0 significant pairs (issue 21). Each pair's p is DeLong's where it applies
(binary single-run AUROC, one item per patient: independent items), else the normal p of the paired
patient bootstrap (z = d / SD(d*)); the bootstrap's own p and its Monte Carlo error are kept beside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from radbench_core.core.errors import ConfigError
from radbench_core.eval.delong import delong_test
from radbench_core.eval.multiple import holm
from radbench_core.eval.paired import PairedResult, align, paired_bootstrap

TIED_MARK = "≈"
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    result: PairedResult
    p_holm: float
    delong_p: float | None = None      # binary single-run AUROC only
    p_method: str = "bootstrap normal"  # what p_holm corrects: "DeLong" or "bootstrap normal"

    @property
    def significant(self) -> bool:
        return math.isfinite(self.p_holm) and self.p_holm < ALPHA


def delong_p(a, b) -> float | None:
    """DeLong's p for two single-run binary-AUROC predictions on the same items; else None."""
    if a.kind != "classification" or a.label_kind != "binary" or len(a.scores) != 1 or len(b.scores) != 1:
        return None
    b = align(a, b)
    pick = (lambda s: s[:, 1] if s.ndim == 2 else s)
    y = np.asarray(a.labels).astype(bool)
    if y.all() or not y.any():
        return None
    return delong_test(y, pick(a.scores[0]), pick(b.scores[0])).p_value


def _one_item_per_patient(pred) -> bool:
    return len(np.unique(pred.groups)) == pred.n_items


def pairwise(predictions: Mapping[str, object], metric: str, *, resamples: int = 2000,
             seed: int = 0) -> list[Comparison]:
    """Every pair (a, b), a before b in the given order, Holm-corrected across all pairs (module
    docstring: DeLong where it applies, else the bootstrap's normal p)."""
    ids = list(predictions)
    pairs = [(x, y) for i, x in enumerate(ids) for y in ids[i + 1:]]
    cache: dict = {}                   # each cell's bootstrap values computed once for the block
    results = [paired_bootstrap(predictions[x], predictions[y], metric, resamples=resamples, seed=seed,
                                cache=cache) for x, y in pairs]
    delong = [delong_p(predictions[x], predictions[y]) if metric == "auroc" else None for x, y in pairs]
    exact = [d is not None and _one_item_per_patient(predictions[x]) for d, (x, _) in zip(delong, pairs)]
    chosen = [d if e else r.p_normal for d, e, r in zip(delong, exact, results)]
    adjusted = holm(chosen)
    return [Comparison(x, y, r, p, d, "DeLong" if e else "bootstrap normal")
            for (x, y), r, p, d, e in zip(pairs, results, adjusted, delong, exact)]


def tied_with_best(best: str, predictions: Mapping[str, object], metric: str, *,
                   resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """cell -> Holm-adjusted p of (best vs cell) for every other cell; comparisons whose test
    sets differ from the best's are left out (no pairing is possible)."""
    if best not in predictions:
        raise ConfigError("stats.tied_with_best", f"no predictions for the best cell {best!r}",
                          "pass the best cell's predictions too")
    others, results, cache = [], [], {}
    for cell, pred in predictions.items():
        if cell == best:
            continue
        try:
            results.append(paired_bootstrap(predictions[best], pred, metric, resamples=resamples,
                                            seed=seed, cache=cache))
        except ConfigError:                   # a different test set: not comparable
            continue
        others.append(cell)
    return dict(zip(others, holm([r.p_value for r in results])))
