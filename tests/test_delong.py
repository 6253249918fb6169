"""DeLong's test (eval/delong.py) against a brute-force reference written from the definition
(psi over every positive-negative pair, sample covariances of the components), scikit-learn's AUROC,
and hand cases: the degenerate variances, the edges of the sample sizes, each label kind of
``delong_per_class`` and the one-line errors. Written to kill the mutants that survived
``make mutants MUTANT=eval/delong.py`` (docs/testing.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval.delong import delong_per_class, delong_test, structural_components


def _brute_delong(y, a, b):
    """(auroc_a, auroc_b, var of the difference, z, p) from the definition, O(m n) pairs; the sample
    covariance of a single component is taken as 0, as in the module."""
    y = np.asarray(y, bool)
    comps = []
    for s in (a, b):
        x, z = np.asarray(s, float)[y], np.asarray(s, float)[~y]
        psi = (x[:, None] > z[None]) + 0.5 * (x[:, None] == z[None])
        comps.append((psi.mean(), psi.mean(1), psi.mean(0)))
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = comps
    m, n = len(v10a), len(v01a)

    def cov(u, v):
        k = len(u)
        return 0.0 if k < 2 else float(np.sum((u - u.mean()) * (v - v.mean())) / (k - 1))

    var = ((cov(v10a, v10a) + cov(v10b, v10b) - 2 * cov(v10a, v10b)) / m
           + (cov(v01a, v01a) + cov(v01b, v01b) - 2 * cov(v01a, v01b)) / n)
    z = (auc_a - auc_b) / math.sqrt(var)
    return auc_a, auc_b, var, z, 2 * norm.sf(abs(z))


@pytest.mark.parametrize("n_pos,n_neg", [(1, 9), (9, 1), (2, 7), (7, 2), (25, 30)])
def test_delong_test_equals_the_brute_force_definition(n_pos, n_neg):
    rng = np.random.default_rng(n_pos * 100 + n_neg)
    y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    a = np.round(y * 0.8 + rng.normal(0, 1, y.size), 1)           # rounded: ties within and across
    b = np.round(y * 0.3 + 0.5 * a + rng.normal(0, 1, y.size), 1)
    got = delong_test(y, a, b)
    auc_a, auc_b, var, z, p = _brute_delong(y, a, b)
    assert got.auroc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12) == pytest.approx(auc_a)
    assert got.auroc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12) == pytest.approx(auc_b)
    assert got.diff == pytest.approx(auc_a - auc_b, abs=1e-12)
    assert got.variance == pytest.approx(var, rel=1e-10)
    assert got.z == pytest.approx(z, rel=1e-10)
    assert got.p_value == pytest.approx(p, rel=1e-9)
    assert 0 < got.p_value < 1


def test_delong_hand_case():
    # y = [1, 1, 0, 0]; a ranks both positives above both negatives (AUROC 1); b = [.4, .1, .3, .2]:
    # pairs (.4>.3, .4>.2, .1<.3, .1<.2) -> AUROC 1/2; V10_b = [1, 0], V01_b = [1/2, 1/2].
    # a's components are constant (all 1), so Var(A - B) = var(V10_b)/2 + var(V01_b)/2 = (1/2)/2 = 1/4.
    y = np.array([1, 1, 0, 0], bool)
    res = delong_test(y, np.array([0.9, 0.8, 0.2, 0.1]), np.array([0.4, 0.1, 0.3, 0.2]))
    assert (res.auroc_a, res.auroc_b, res.diff) == (1.0, 0.5, 0.5)
    assert res.variance == pytest.approx(0.25, abs=1e-15)
    assert res.z == pytest.approx(1.0, abs=1e-15)
    assert res.p_value == pytest.approx(2 * norm.sf(1.0), abs=1e-15)   # 0.3173


def test_delong_zero_variance_cases():
    y = np.array([1, 1, 1, 0, 0, 0], bool)
    perfect = np.array([6.0, 5, 4, 3, 2, 1])
    flat = np.full(6, 0.5)                                         # every pair a tie: AUROC 1/2
    same = delong_test(y, perfect, perfect.copy())
    assert (same.diff, same.variance, same.z, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    better = delong_test(y, perfect, flat)
    assert (better.auroc_a, better.auroc_b, better.diff, better.variance) == (1.0, 0.5, 0.5, 0.0)
    assert better.z == math.inf and better.p_value == 0.0
    worse = delong_test(y, flat, perfect)
    assert worse.diff == -0.5 and worse.z == -math.inf and worse.p_value == 0.0


def test_structural_components_of_several_rows_rank_each_row_alone():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 30).astype(bool)
    y[:2] = [True, False]
    scores = np.stack([y + rng.normal(0, 1, 30), 100 + y * 0.2 + rng.normal(0, 1, 30),
                       -np.arange(30.0)])
    aurocs, v10, v01 = structural_components(y.astype(int), scores)     # 0/1 labels accepted
    assert aurocs.shape == (3,) and v10.shape == (3, y.sum()) and v01.shape == (3, (~y).sum())
    for r in range(3):
        assert aurocs[r] == pytest.approx(roc_auc_score(y, scores[r]), abs=1e-12)
        assert v01[r].mean() == pytest.approx(aurocs[r], abs=1e-12)    # both components average to it


@pytest.mark.parametrize("labels,problem", [
    ([1, 1, 1], "3 positives and 0 negatives"),
    ([0, 0], "0 positives and 2 negatives"),
])
def test_delong_needs_both_label_values(labels, problem):
    with pytest.raises(ConfigError) as err:
        structural_components(np.array(labels), np.arange(len(labels), dtype=float))
    assert str(err.value) == (f"stats.delong: {problem}. "
                              "Fix: DeLong needs both label values among the items.")


@pytest.mark.parametrize("len_a,len_b", [(3, 4), (4, 3), (5, 5)])
def test_delong_test_refuses_scores_of_other_items(len_a, len_b):
    y = np.array([1, 0, 1, 0], bool)
    with pytest.raises(ConfigError) as err:
        delong_test(y, np.arange(len_a, dtype=float), np.arange(len_b, dtype=float))
    assert str(err.value) == (f"stats.delong_test: 4 labels, {len_a} and {len_b} scores. "
                              "Fix: score the same items with both models.")


def test_delong_per_class_binary_reads_the_positive_column():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 50)
    y[:2] = [0, 1]
    a = rng.random((50, 2)) + np.c_[np.zeros(50), 0.5 * y]         # columns not complementary
    b = rng.random((50, 2)) + np.c_[0.5 * y, 0.2 * y]
    (two_col,) = delong_per_class(y, a, b, "binary")
    assert two_col == delong_test(y.astype(bool), a[:, 1], b[:, 1])
    assert two_col.auroc_a == pytest.approx(roc_auc_score(y, a[:, 1]), abs=1e-12)
    assert two_col.auroc_b == pytest.approx(roc_auc_score(y, b[:, 1]), abs=1e-12)
    (one_col,) = delong_per_class(y, a[:, 1], b[:, 1], "binary")   # (N,) scores: the score itself
    assert one_col == two_col


def test_delong_per_class_multiclass_is_one_vs_rest():
    rng = np.random.default_rng(12)
    y = np.tile(np.arange(3), 20)
    a = rng.random((60, 3)) + 0.6 * np.eye(3)[y]
    b = rng.random((60, 3)) + 0.2 * np.eye(3)[y]
    out = delong_per_class(y, a, b, "multiclass")
    assert len(out) == 3
    for c, res in enumerate(out):
        assert res.auroc_a == pytest.approx(roc_auc_score(y == c, a[:, c]), abs=1e-12)
        assert res.auroc_b == pytest.approx(roc_auc_score(y == c, b[:, c]), abs=1e-12)
        assert res.p_value == pytest.approx(_brute_delong(y == c, a[:, c], b[:, c])[4], rel=1e-9)


def test_delong_per_class_multilabel_drops_unknown_labels():
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, (70, 3)).astype(float)
    y[::5, 0] = np.nan                                               # unknown: left out of class 0
    y[:, 1] = np.where(np.arange(70) < 3, 1.0, np.nan)              # 3 known, all positive: None
    a, b = np.nan_to_num(y) + rng.normal(0, 1, y.shape), rng.normal(0, 1, y.shape)
    b[0, 2] = np.nan                                                 # a non-finite score: None
    out = delong_per_class(y, a, b, "multilabel")
    known = ~np.isnan(y[:, 0])
    assert out[0].auroc_a == pytest.approx(roc_auc_score(y[known, 0], a[known, 0]), abs=1e-12)
    assert out[0].auroc_b == pytest.approx(roc_auc_score(y[known, 0], b[known, 0]), abs=1e-12)
    assert out[1] is None and out[2] is None
