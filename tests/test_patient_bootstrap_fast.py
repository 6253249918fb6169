"""The patient-bootstrap AUROC taken from patient counts through one sparse matrix per class
(``weighted_metrics``): every resample equals scikit-learn's ``roc_auc_score`` with that resample's
item weights (brute force), through the paired test, the per-cell CI and every label kind; the
float32 fast path is used only where it is exact."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval.cell_intervals import patient_resampled
from radbench_core.eval.paired import cluster_counts, paired_bootstrap
from radbench_core.eval.predictions import classification_predictions
from radbench_core.eval.weighted_metrics import weighted_binary_auroc, weighted_values

B = 40


def _brute_auroc(labels, scores, label_kind, item_weights):
    """Macro AUROC of one resample by scikit-learn, unscorable classes skipped (metrics.auroc)."""
    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if label_kind == "binary":
        columns = [(np.ones(len(labels), bool), labels.astype(bool), scores)]
    elif label_kind == "multiclass":
        columns = [(np.ones(len(labels), bool), labels == c, scores[:, c]) for c in range(scores.shape[1])]
    else:
        columns = [(~np.isnan(labels[:, c]), np.nan_to_num(labels[:, c]) > 0.5, scores[:, c])
                   for c in range(scores.shape[1])]
    values = []
    for known, y, s in columns:
        w = item_weights[known]
        if w[y[known]].sum() > 0 and w[~y[known]].sum() > 0:
            keep = w > 0
            values.append(roc_auc_score(y[known][keep], s[known][keep], sample_weight=w[keep]))
    return np.mean(values) if values else np.nan


def _cell(kind, rng, n=45, patients=12, decimals=1):
    """Predictions with several items per patient and rounded scores (many ties)."""
    groups = rng.integers(0, patients, n).astype(str)
    if kind == "binary":
        labels = rng.integers(0, 2, n)
        scores = np.round(labels + rng.normal(size=n), decimals)
    elif kind == "multiclass":
        labels = rng.integers(0, 3, n)
        scores = np.round(rng.random((n, 3)) + 0.4 * np.eye(3)[labels], decimals)
    else:
        labels = (rng.random((n, 4)) < 0.3).astype(np.float64)
        labels[rng.random((n, 4)) < 0.15] = np.nan                  # unknown labels are skipped
        labels[:, 3] = 0.0                                           # a class with no positive
        scores = np.round(np.nan_to_num(labels) + rng.normal(size=(n, 4)), decimals)
    return classification_predictions(np.arange(n).astype(str), groups, labels, scores, kind)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_every_patient_resample_equals_sklearn_with_sample_weights(kind):
    pred = _cell(kind, np.random.default_rng(7))
    counts, inverse = cluster_counts(pred.groups, B, seed=3)
    got = weighted_values(pred, "auroc", counts, inverse, chunk=7)       # chunks that do not divide B
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.array([_brute_auroc(pred.labels, pred.scores[0], kind, counts[b, inverse]) for b in range(B)])
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_paired_bootstrap_ci_and_p_equal_the_brute_force_resamples():
    rng = np.random.default_rng(11)
    a = _cell("multilabel", rng, n=60, patients=15)
    scores_b = np.round(np.asarray(a.scores[0]) + rng.normal(0, 0.8, a.scores[0].shape), 1)
    b = classification_predictions(a.ids, a.groups, a.labels, scores_b, "multilabel")
    got = paired_bootstrap(a, b, "auroc", resamples=B, seed=5, chunk=9)
    counts, inverse = cluster_counts(a.groups, B, 5)
    d = np.array([_brute_auroc(a.labels, a.scores[0], "multilabel", counts[k, inverse])
                  - _brute_auroc(b.labels, b.scores[0], "multilabel", counts[k, inverse]) for k in range(B)])
    d = d[np.isfinite(d)]
    low, high = np.quantile(d, [0.025, 0.975])
    p = (1 + np.sum(np.abs(d - got.diff) >= abs(got.diff) - 1e-12)) / (1 + d.size)
    assert (got.resamples, got.n_items, got.n_groups) == (d.size, 60, len(np.unique(a.groups)))
    assert got.ci_low == pytest.approx(low, abs=1e-12) and got.ci_high == pytest.approx(high, abs=1e-12)
    assert got.p_value == pytest.approx(p, abs=1e-12)


def test_per_cell_interval_resamples_equal_the_brute_force_ones():
    pred = _cell("binary", np.random.default_rng(2), n=50, patients=14)
    got = patient_resampled(pred, "auroc", resamples=B, seed=1, chunk=6)
    counts, inverse = cluster_counts(pred.groups, B, 1)
    want = np.array([_brute_auroc(pred.labels, pred.scores[0], "binary", counts[k, inverse]) for k in range(B)])
    np.testing.assert_allclose(got, want[np.isfinite(want)], rtol=0, atol=1e-12)


def test_counts_too_large_for_float32_still_give_exact_values():
    """AUROC does not change when every count is multiplied by the same number; counts whose sums
    pass 2**24 must leave the float32 path (they would round there)."""
    pred = _cell("binary", np.random.default_rng(4), n=80, patients=40, decimals=2)
    counts, inverse = cluster_counts(pred.groups, 20, seed=0)
    small = weighted_values(pred, "auroc", counts, inverse)
    large = weighted_values(pred, "auroc", counts * (2**22 + 1), inverse)
    np.testing.assert_allclose(large, small, rtol=0, atol=1e-12)
    item_level = weighted_values(pred, "auroc", counts[:, inverse].astype(np.float64))   # float64 path
    assert np.array_equal(small, item_level)


def test_labels_swapped_for_the_smaller_side_give_the_same_auroc():
    """Few distinct negative scores and many positive ones (the plan swaps the labels) or the reverse."""
    rng = np.random.default_rng(9)
    y = np.r_[np.zeros(30, bool), np.ones(30, bool)]
    for s in (np.r_[np.round(rng.random(30), 1), rng.random(30)], np.r_[rng.random(30), np.round(rng.random(30), 1)]):
        w = rng.integers(0, 3, (5, 60)).astype(np.float64)
        want = [roc_auc_score(y, s, sample_weight=row) for row in w]
        np.testing.assert_allclose(weighted_binary_auroc(y, s, w), want, rtol=0, atol=1e-12)


def test_unit_weights_that_do_not_cover_the_items_are_one_line_errors():
    pred = _cell("binary", np.random.default_rng(0), n=10, patients=3)
    counts, inverse = cluster_counts(pred.groups, 4, 0)
    with pytest.raises(ConfigError, match="9 item units into 3 unit weights, predictions hold 10 items"):
        weighted_values(pred, "auroc", counts, inverse[:9])
    with pytest.raises(ConfigError, match="unit's weight column"):
        weighted_values(pred, "auroc", counts[:, :2], inverse)
