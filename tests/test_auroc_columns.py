"""The column-at-once AUROC (multi-label without unknown targets, multi-class) equals the
class-by-class Mann-Whitney value bit for bit and scikit-learn's per class, ties and unscorable
classes included (property-based)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings, strategies as st
from sklearn.metrics import roc_auc_score

from radbench_core.eval.metrics import _binary_auroc, auroc_per_class


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), c=st.integers(1, 6), decimals=st.integers(0, 2))
def test_multilabel_columns_equal_the_per_class_loop_and_sklearn(seed, n, c, decimals):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.0, 1.0, c)).astype(np.float64)
    s = np.round(rng.normal(size=(n, c)) + y, decimals)
    got = auroc_per_class(y, s, "multilabel")
    loop = np.asarray([_binary_auroc(y[:, k] > 0.5, s[:, k]) for k in range(c)])
    np.testing.assert_array_equal(got, loop)                         # bit for bit, NaN where unscorable
    for k in range(c):
        if 0 < y[:, k].sum() < n:
            assert math.isclose(got[k], roc_auc_score(y[:, k], s[:, k]), abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), c=st.integers(2, 5))
def test_multiclass_columns_equal_the_per_class_loop(seed, n, c):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    s = np.round(rng.random((n, c)), 1)
    got = auroc_per_class(y, s, "multiclass")
    np.testing.assert_array_equal(got, [_binary_auroc(y == k, s[:, k]) for k in range(c)])


def test_unknown_targets_and_non_finite_scores_keep_the_per_class_rules():
    y = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]], dtype=np.float64)
    s = np.array([[0.9, 0.1], [0.2, 0.5], [0.8, 0.7], [0.1, np.inf]])
    got = auroc_per_class(y, s, "multilabel")
    assert got[0] == 1.0 and math.isnan(got[1])                     # an infinite score voids its class
    y2 = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]], dtype=np.float64)
    s2 = np.array([[0.9, 0.1], [0.2, 0.5], [0.8, 0.7], [0.1, 0.3]])
    assert auroc_per_class(y2, s2, "multilabel")[1] == 1.0          # the unknown item is skipped
