"""eval/metrics.py: the cases mutation testing found unchecked (issue 21, docs/testing.md).

Hand-computed confusion matrices at the edges of the study's pooled Dice/Jaccard (a class seen in one
pixel only, a class absent, the caller's matrix left untouched) and of the Mann-Whitney AUROC.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import auroc, bootstrap_ci, cluster_members, study_dice, study_jaccard


def test_study_dice_counts_a_class_seen_in_one_pixel_only():
    # class 1: 5 pixels all right (Dice 1); class 2: one background pixel predicted as 2 (FP, Dice 0)
    cm = np.array([[9, 0, 1], [0, 5, 0], [0, 0, 0]])
    assert study_dice(cm) == pytest.approx(0.5, abs=1e-15)
    # class 2: one true pixel missed (FN, Dice 0)
    cm = np.array([[9, 0, 0], [0, 5, 0], [1, 0, 0]])
    assert study_dice(cm) == pytest.approx(0.5, abs=1e-15)


def test_study_dice_false_positives_and_false_negatives_by_hand():
    # rows = truth, columns = prediction; class 1: TP 4, FP 1 (row 0), FN 3 (row 1 -> col 0 and 2)
    cm = np.array([[20, 1, 0], [2, 4, 1], [0, 0, 6]])
    # class 2: TP 6, FP 1 (a true 1 predicted 2), FN 0
    want = np.mean([2 * 4 / (2 * 4 + 1 + 3), 2 * 6 / (2 * 6 + 1 + 0)])
    assert study_dice(cm) == pytest.approx(want, abs=1e-15)
    assert study_dice(cm.T) == pytest.approx(want, abs=1e-15)        # Dice is symmetric in FP/FN


def test_study_jaccard_counts_a_class_seen_in_one_pixel_only():
    # class 1 perfect (5/5); class 2: one true pixel predicted as background -> 0/1
    cm = np.array([[9, 0, 0], [0, 5, 0], [1, 0, 0]])
    assert study_jaccard(cm) == pytest.approx(0.5, abs=1e-15)
    # class 2 only predicted on background: dropped with its truth-background row, not seen
    cm = np.array([[9, 0, 1], [0, 5, 0], [0, 0, 0]])
    assert study_jaccard(cm) == 1.0


def test_study_jaccard_with_an_absent_class_and_a_missed_pixel():
    # class 1: TP 3, one true-1 pixel predicted 0 -> 3/4; class 2 absent; class 3: 2/2
    cm = np.zeros((4, 4))
    cm[0, 0], cm[1, 1], cm[1, 0], cm[3, 3] = 7, 3, 1, 2
    assert study_jaccard(cm) == pytest.approx((3 / 4 + 1) / 2, abs=1e-15)


def test_study_metrics_leave_the_callers_matrix_unchanged():
    cm = np.array([[5.0, 2.0, 1.0], [1.0, 3.0, 0.0], [0.0, 1.0, 4.0]])
    before = cm.copy()
    study_jaccard(cm)
    study_dice(cm)
    np.testing.assert_array_equal(cm, before)


def test_binary_auroc_by_hand_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs won 1 + 1 + 0.5 (tie) + 1 = 3.5 of 4
    y, s = np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1])
    assert auroc(y, s, "binary") == 3.5 / 4 == roc_auc_score(y, s)
    # one positive: n_pos = 1, AUROC = share of negatives below it
    assert auroc(np.array([0, 1, 0, 0]), np.array([0.2, 0.5, 0.7, 0.1]), "binary") == pytest.approx(2 / 3)
    assert math.isnan(auroc(np.ones(4, int), np.arange(4.0), "binary"))
    assert math.isnan(auroc(np.array([0, 1]), np.array([np.inf, 0.3]), "binary"))


def test_study_jaccard_counts_a_class_that_is_only_predicted():
    # a true-1 pixel predicted as 2: class 2 has no true pixel but a prediction -> it is seen, 0/1
    cm = np.array([[4, 0, 0], [0, 3, 1], [0, 0, 0]])
    assert study_jaccard(cm) == pytest.approx((3 / 4 + 0) / 2, abs=1e-15)


def test_cluster_members_keep_each_patients_items_in_order():
    # 1000 items: numpy's default (unstable) sort would scramble the positions within a patient
    groups = np.random.default_rng(0).choice(["p2", "p10", "p1"], size=1000)
    members = cluster_members(groups)
    assert len(members) == 3
    for got, g in zip(members, ["p1", "p10", "p2"]):        # sorted ids; positions ascending
        np.testing.assert_array_equal(got, np.flatnonzero(groups == g))
    assert cluster_members([]) == []


def test_an_unscorable_auroc_is_nan_by_rule_not_by_a_zero_division():
    # one label value only, or no scorable class: NaN returned before any 0/0 (no RuntimeWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(auroc(np.ones(4, int), np.arange(4.0), "binary"))
        assert math.isnan(auroc(np.zeros(4, int), np.arange(4.0), "binary"))
        assert math.isnan(auroc(np.array([[1.0, 0.0], [1.0, 0.0]]), np.zeros((2, 2)), "multilabel"))


def test_bootstrap_ci_defaults_are_1000_resamples_seed_0_and_95_percent():
    values = np.random.default_rng(4).normal(size=30)
    calls = []

    def mean(idx: np.ndarray) -> float:
        calls.append(1)
        return float(values[idx].mean())

    got = bootstrap_ci(mean, 30)
    assert len(calls) == 1000
    rng = np.random.default_rng(0)                      # the same draws by hand
    means = [values[rng.integers(0, 30, size=30)].mean() for _ in range(1000)]
    assert got == tuple(np.quantile(means, [0.025, 0.975]))


NEED = "metrics.bootstrap_ci: need n > 0, resamples > 0 and 0 < alpha < 1, got "
FIX = ". Fix: score a non-empty split with a positive number of resamples."


@pytest.mark.parametrize("n, kw, got", [
    (0, {}, "n=0, resamples=1000, alpha=0.05"),
    (3, {"resamples": 0}, "n=3, resamples=0, alpha=0.05"),
    (3, {"resamples": -1}, "n=3, resamples=-1, alpha=0.05"),
    (3, {"alpha": 0.0}, "n=3, resamples=1000, alpha=0.0"),
    (3, {"alpha": 1.0}, "n=3, resamples=1000, alpha=1.0"),
    (3, {"alpha": 1.5}, "n=3, resamples=1000, alpha=1.5"),
])
def test_bootstrap_ci_refuses_each_bad_argument_in_one_line(n, kw, got):
    with pytest.raises(ConfigError) as err:
        bootstrap_ci(lambda i: 0.0, n, **kw)
    assert str(err.value) == NEED + got + FIX


def test_bootstrap_ci_smallest_valid_arguments_and_the_patient_count_error():
    assert bootstrap_ci(lambda i: float(i.sum()), 1, resamples=1) == (0.0, 0.0)   # one item, one draw
    assert bootstrap_ci(lambda i: float(len(i)), 2, resamples=3, alpha=0.999) == (2.0, 2.0)
    with pytest.raises(ConfigError) as err:
        bootstrap_ci(lambda i: 0.0, 3, groups=["a", "b"])
    assert str(err.value) == ("metrics.bootstrap_ci: 2 patient ids for 3 items. "
                              "Fix: pass one patient id per test item, in the items' order.")
