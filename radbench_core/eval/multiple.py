"""Multiple-comparison correction across the comparisons of one table column or matrix.

Holm's step-down (Holm 1979): sort the m p-values, multiply the k-th smallest by (m - k + 1), take
the running maximum, cap at 1. It controls the family-wise error rate like Bonferroni under any
dependence between the tests (ours share test images) and rejects at least as much.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values in the input order; NaN stays NaN and is not counted in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="mergesort")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()
