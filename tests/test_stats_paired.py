"""Paired statistics: weighted metrics vs plain ones, DeLong vs brute force, Holm by hand, and the
calibration of the paired bootstrap (no effect: rejections near alpha; a known effect: found)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import auroc, study_dice, study_jaccard
from radbench_core.eval.predictions import Predictions, classification_predictions
from radbench_core.protocols.seg_training import mean_dice
from radbench_core.eval import (cluster_weights, delong_per_class, delong_test, holm,
                                 paired_bootstrap, tied_with_best, weighted_auroc,
                                 weighted_binary_auroc, weighted_values)
from radbench_core.eval.delong import delong_covariance, structural_components


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40),
       st.integers(0, 2**31 - 1))
def test_weighted_auroc_equals_auroc_of_repeated_items(pairs, seed):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)          # small integers: many ties
    counts = np.random.default_rng(seed).integers(0, 4, size=len(y))
    got = weighted_binary_auroc(y, s, counts[None].astype(float))[0]
    rep_y, rep_s = np.repeat(y, counts), np.repeat(s, counts)
    if rep_y.all() or not rep_y.any():
        assert math.isnan(got)
    else:
        assert got == pytest.approx(roc_auc_score(rep_y, rep_s), abs=1e-12)


def test_weighted_auroc_matches_plain_metric_for_each_label_kind():
    rng = np.random.default_rng(0)
    n = 300
    y_bin = rng.integers(0, 2, n)
    s_bin = y_bin + rng.normal(0, 1.5, n)
    ones = np.ones((1, n))
    assert weighted_auroc(y_bin, s_bin, "binary", ones)[0] == pytest.approx(roc_auc_score(y_bin, s_bin))
    y_mc = rng.integers(0, 4, n)
    s_mc = rng.dirichlet(np.ones(4), n) + np.eye(4)[y_mc] * 0.3
    assert weighted_auroc(y_mc, s_mc, "multiclass", ones)[0] == pytest.approx(
        roc_auc_score(y_mc, s_mc / s_mc.sum(1, keepdims=True), multi_class="ovr"))
    y_ml = rng.integers(0, 2, (n, 5)).astype(np.float32)
    y_ml[rng.random((n, 5)) < 0.2] = np.nan
    y_ml[:, 4] = 0.0                                           # class 4 not scorable: skipped
    s_ml = np.nan_to_num(y_ml) + rng.normal(0, 1.0, (n, 5))
    assert weighted_auroc(y_ml, s_ml, "multilabel", ones)[0] == pytest.approx(auroc(y_ml, s_ml, "multilabel"))


def _seg(rng, n, classes=3, runs=1):
    dice = rng.random((runs, n, classes - 1))
    dice[:, ::7, 0] = np.nan                                   # class absent in some items
    jac = dice / (2 - dice)
    cms = rng.integers(0, 50, size=(runs, n, classes, classes))
    return Predictions("segmentation", [f"v{i}" for i in range(n)], [f"p{i // 2}" for i in range(n)],
                       dice=dice, jaccard=jac, confmats=cms)


def test_weighted_segmentation_metrics_match_plain_ones():
    rng = np.random.default_rng(1)
    pred = _seg(rng, 20)
    ones = np.ones((1, 20))
    d, j, cm = pred.dice[0], pred.jaccard[0], pred.confmats[0].sum(0)
    assert weighted_values(pred, "dice_jaccard", ones)[0] == pytest.approx(mean_dice((d + j) / 2))
    assert weighted_values(pred, "dice", ones)[0] == pytest.approx(mean_dice(d))
    assert weighted_values(pred, "dice_jaccard_study", ones)[0] == pytest.approx(
        (study_dice(cm) + study_jaccard(cm)) / 2)
    counts = rng.integers(0, 3, 20).astype(float)
    idx = np.repeat(np.arange(20), counts.astype(int))
    assert weighted_values(pred, "dice_jaccard", counts[None])[0] == pytest.approx(
        mean_dice((d[idx] + j[idx]) / 2))
    with pytest.raises(ConfigError, match="not computable"):
        weighted_values(pred, "auroc", ones)


def test_delong_components_and_variance_match_brute_force():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60).astype(bool)
    scores = np.stack([np.round(y + rng.normal(0, 1, 60), 1), y * 0.5 + rng.normal(0, 1, 60)])
    aurocs, v10, v01 = structural_components(y, scores)
    for r in range(2):
        x, z = scores[r, y], scores[r, ~y]
        psi = (x[:, None] > z[None]) + 0.5 * (x[:, None] == z[None])
        assert np.allclose(v10[r], psi.mean(1)) and np.allclose(v01[r], psi.mean(0))
        assert aurocs[r] == pytest.approx(roc_auc_score(y, scores[r]))
    _, cov = delong_covariance(y, scores)
    m, n = y.sum(), (~y).sum()
    brute = np.cov(v10) / m + np.cov(v01) / n
    assert np.allclose(cov, brute)


def test_delong_variance_agrees_with_bootstrap_variance_on_a_large_set():
    rng = np.random.default_rng(3)
    n = 4000
    y = rng.integers(0, 2, n).astype(bool)
    common = rng.normal(0, 1, n)
    a = y * 1.0 + common + rng.normal(0, 1, n)
    b = y * 0.8 + common + rng.normal(0, 1, n)
    res = delong_test(y, a, b)
    w = cluster_weights(np.arange(n).astype(str), 1500, seed=0)
    boot = weighted_binary_auroc(y, a, w) - weighted_binary_auroc(y, b, w)
    assert res.variance == pytest.approx(np.var(boot, ddof=1), rel=0.15)
    assert res.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))


def test_delong_per_class_skips_unscorable_classes():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, (80, 3)).astype(float)
    y[:, 2] = 1.0
    a, b = y + rng.normal(0, 1, y.shape), y + rng.normal(0, 1, y.shape)
    out = delong_per_class(y, a, b, "multilabel")
    assert out[2] is None
    assert out[0].auroc_a == pytest.approx(roc_auc_score(y[:, 0], a[:, 0]))


def test_holm_by_hand():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.02, math.nan, 0.3])            # NaN is not counted: m = 2
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.3)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_cluster_weights_give_every_item_its_patients_count():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w = cluster_weights(groups, 50, seed=0)
    assert w.shape == (50, 6)
    assert np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 3] == w[:, 5])
    # three patients drawn per resample
    assert np.all(w[:, 0] + w[:, 2] + w[:, 3] == 3)


def _pair(rng, n, effect, clustered=False):
    """Two models scoring the same binary items; model a is better by ``effect`` in signal."""
    y = rng.integers(0, 2, n).astype(bool)
    patients = np.arange(n) // 3 if clustered else np.arange(n)
    difficulty = rng.normal(0, 1, patients.max() + 1)[patients]      # shared within a patient
    a = y * (1.0 + effect) + difficulty + rng.normal(0, 1, n)
    b = y * 1.0 + difficulty + rng.normal(0, 1, n)
    ids, groups = [f"i{i}" for i in range(n)], patients.astype(str)
    return (classification_predictions(ids, groups, y.astype(np.int64), a, "binary"),
            classification_predictions(ids, groups, y.astype(np.int64), b, "binary"))


def _tolerance(seeds, alpha):
    return binom.ppf(0.001, seeds, alpha), binom.ppf(0.999, seeds, alpha)


@pytest.mark.parametrize("clustered", [False, True])
def test_paired_bootstrap_rejects_at_about_alpha_when_there_is_no_effect(clustered):
    seeds, alpha = 200, 0.05
    rejections = delong_rejections = 0
    for seed in range(seeds):
        a, b = _pair(np.random.default_rng(seed), 240, 0.0, clustered)
        res = paired_bootstrap(a, b, "auroc", resamples=400, seed=seed)
        rejections += res.p_value < alpha
        delong_rejections += delong_test(a.labels.astype(bool), a.scores[0], b.scores[0]).p_value < alpha
    low, high = _tolerance(seeds, alpha)
    assert low <= rejections <= high, rejections
    if not clustered:                          # DeLong assumes independent items
        assert low <= delong_rejections <= high, delong_rejections


def test_paired_bootstrap_finds_a_known_effect():
    found = 0
    for seed in range(40):
        a, b = _pair(np.random.default_rng(1000 + seed), 400, 0.6)
        res = paired_bootstrap(a, b, "auroc", resamples=400, seed=seed)
        assert res.diff == pytest.approx(roc_auc_score(a.labels, a.scores[0]) - roc_auc_score(b.labels, b.scores[0]))
        found += res.p_value < 0.05 and res.ci_low > 0
    assert found >= 36, found                  # power >= 90 %


def test_pairing_aligns_items_and_refuses_different_test_sets():
    a, b = _pair(np.random.default_rng(5), 100, 0.3)
    order = np.random.default_rng(0).permutation(100)
    shuffled = b.take(order)
    r1 = paired_bootstrap(a, b, "auroc", resamples=200, seed=1)
    r2 = paired_bootstrap(a, shuffled, "auroc", resamples=200, seed=1)
    assert r1 == r2
    with pytest.raises(ConfigError, match="different test sets"):
        paired_bootstrap(a, b.take(order[:90]), "auroc")
    wrong = classification_predictions(b.ids, b.groups, 1 - b.labels, b.scores[0], "binary")
    with pytest.raises(ConfigError, match="different labels"):
        paired_bootstrap(a, wrong, "auroc")


def test_tied_with_best_skips_unpairable_cells_and_corrects():
    rng = np.random.default_rng(6)
    best, _ = _pair(rng, 300, 0.0)
    same = classification_predictions(best.ids, best.groups, best.labels, 2 * best.scores[0] + 1,
                                      "binary")                                  # same ranking
    weak = classification_predictions(best.ids, best.groups, best.labels,
                                      rng.normal(0, 1, 300), "binary")          # chance level
    other = classification_predictions([f"x{i}" for i in range(300)], best.groups, best.labels,
                                       best.scores[0], "binary")
    out = tied_with_best("best", {"best": best, "same": same, "weak": weak, "other": other}, "auroc",
                         resamples=300)
    assert set(out) == {"same", "weak"}
    assert out["weak"] < 0.05 and out["same"] == pytest.approx(1.0)
