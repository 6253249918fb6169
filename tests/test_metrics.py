"""metrics.py against scikit-learn and a straightforward independent Dice/Jaccard."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import (HIGHER_IS_BETTER, auroc, auroc_metric, auroc_per_class,
                                   bootstrap_ci, confusion_matrix, dice_jaccard, metric, study_dice,
                                   study_jaccard)

SETTINGS = settings(max_examples=30, deadline=None)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(4, 60), ties=st.booleans())
def test_binary_auroc_equals_sklearn(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 4, n).astype(float) if ties else rng.random(n)
    assert auroc(y, s, "binary") == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    two_col = np.stack([1 - s, s], axis=1)
    assert auroc(y, two_col, "binary") == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@SETTINGS
@given(seed=st.integers(0, 10_000), n_classes=st.integers(3, 6))
def test_multiclass_auroc_equals_sklearn_ovr_macro(seed: int, n_classes: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    logits = rng.normal(size=(n, n_classes))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert auroc(y, p, "multiclass") == pytest.approx(expected, abs=1e-10)


@SETTINGS
@given(seed=st.integers(0, 10_000), nan_frac=st.floats(0.0, 0.4))
def test_multilabel_auroc_equals_sklearn_per_class_with_nan_masked(seed: int, nan_frac: float) -> None:
    rng = np.random.default_rng(seed)
    n, c = 50, 4
    y = rng.integers(0, 2, (n, c)).astype(float)
    y[:2] = [[0] * c, [1] * c]
    y[2:][rng.random((n - 2, c)) < nan_frac] = np.nan
    s = rng.random((n, c))
    expected = [roc_auc_score(y[~np.isnan(y[:, j]), j], s[~np.isnan(y[:, j]), j]) for j in range(c)]
    np.testing.assert_allclose(auroc_per_class(y, s, "multilabel"), expected, atol=1e-12)
    assert auroc(y, s, "multilabel") == pytest.approx(np.mean(expected), abs=1e-12)
    if nan_frac == 0.0:
        assert auroc(y, s, "multilabel") == pytest.approx(roc_auc_score(y, s, average="macro"))


def test_degenerate_class_is_skipped_from_the_macro_and_all_degenerate_is_nan() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=float)   # class 1 has no positive
    s = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5], [0.1, 0.7]])
    per_class = auroc_per_class(y, s, "multilabel")
    assert per_class[0] == 1.0 and math.isnan(per_class[1])
    assert auroc(y, s, "multilabel") == 1.0
    assert math.isnan(auroc(np.zeros(5, int), np.arange(5.0), "binary"))
    y_mc = np.array([0, 0, 1, 1])                  # class 2 absent: skipped from the ovr macro
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.4, 0.3]])
    assert math.isnan(auroc_per_class(y_mc, p, "multiclass")[2])
    assert auroc(y_mc, p, "multiclass") == pytest.approx(1.0)
    assert math.isnan(auroc(np.array([1, 0]), np.array([np.nan, 0.3]), "binary"))


def test_bad_auroc_inputs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"label_kind='ordinal'.*unknown label kind.*Fix:"):
        auroc(np.zeros(3), np.zeros(3), "ordinal")
    with pytest.raises(ConfigError, match=r"expected labels \(N,\) and scores \(N, C\).*Fix:"):
        auroc(np.zeros(3, int), np.zeros(3), "multiclass")
    with pytest.raises(ConfigError, match=r"labels must lie in 0\.\.1.*num_classes"):
        auroc(np.array([0, 2]), np.zeros((2, 2)), "multiclass")
    with pytest.raises(ConfigError, match=r"same \(N, C\) shape"):
        auroc(np.zeros((3, 2)), np.zeros((3, 3)), "multilabel")


def test_bootstrap_ci_contains_the_estimate_narrows_with_n_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 2000):
        y = rng.integers(0, 2, n)
        s = y * 0.8 + rng.normal(size=n)
        point = auroc(y, s, "binary")
        low, high = bootstrap_ci(lambda i: auroc(y[i], s[i], "binary"), n, resamples=300, seed=3)
        assert low <= point <= high
        widths.append(high - low)
        again = bootstrap_ci(lambda i: auroc(y[i], s[i], "binary"), n, resamples=300, seed=3)
        assert again == (low, high)
    assert widths[1] < widths[0] / 3


def test_bootstrap_ci_skips_nan_resamples_and_matches_a_manual_percentile() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    def mean_or_nan(i: np.ndarray) -> float:
        return math.nan if (i == 0).all() else float(values[i].mean())
    rng = np.random.default_rng(7)
    manual = [values[i].mean() for i in (rng.integers(0, 4, 4) for _ in range(200))
              if not (i == 0).all()]
    assert bootstrap_ci(mean_or_nan, 4, resamples=200, seed=7) == pytest.approx(
        tuple(np.quantile(manual, [0.025, 0.975])))
    assert all(math.isnan(v) for v in bootstrap_ci(lambda i: math.nan, 4, resamples=10))
    with pytest.raises(ConfigError, match=r"bootstrap_ci: need n > 0"):
        bootstrap_ci(mean_or_nan, 0)


def test_auroc_metric_carries_a_ci_around_the_value() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(size=200)
    m = auroc_metric(y, s, "binary", resamples=200, seed=0)
    assert m.higher_is_better and m.ci_low <= m.value <= m.ci_high
    assert m.value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m.ci_high - m.ci_low > 0.01


def _dice_jaccard_reference(pred: np.ndarray, target: np.ndarray, num_classes: int):
    dice, jac = [], []
    for c in range(1, num_classes):
        p, t = pred == c, target == c
        inter, union = np.logical_and(p, t).sum(), np.logical_or(p, t).sum()
        if p.sum() + t.sum() == 0:
            dice.append(np.nan)
            jac.append(np.nan)
        else:
            dice.append(2 * inter / (p.sum() + t.sum()))
            jac.append(inter / union)
    return np.array(dice), np.array(jac)


@SETTINGS
@given(seed=st.integers(0, 10_000), num_classes=st.integers(2, 6),
       shape=st.sampled_from([(7,), (5, 6), (3, 4, 5)]))
def test_dice_jaccard_equal_an_independent_implementation(seed: int, num_classes: int, shape) -> None:
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, num_classes, shape)
    target = rng.integers(0, num_classes, shape)
    dice, jac = dice_jaccard(pred, target, num_classes)
    ref_dice, ref_jac = _dice_jaccard_reference(pred, target, num_classes)
    np.testing.assert_allclose(dice, ref_dice, atol=1e-12)
    np.testing.assert_allclose(jac, ref_jac, atol=1e-12)
    finite = np.isfinite(dice)
    np.testing.assert_allclose(jac[finite], dice[finite] / (2 - dice[finite]), atol=1e-12)


def test_dice_jaccard_perfect_disjoint_and_empty_conventions() -> None:
    t = np.array([[0, 1, 1], [2, 2, 0]])
    dice, jac = dice_jaccard(t, t, 4)
    np.testing.assert_array_equal(dice[:2], [1.0, 1.0])
    np.testing.assert_array_equal(jac[:2], [1.0, 1.0])
    assert math.isnan(dice[2]) and math.isnan(jac[2])       # class 3 absent from both
    disjoint = np.array([[0, 2, 2], [1, 1, 0]])
    dice, jac = dice_jaccard(disjoint, t, 3)
    np.testing.assert_array_equal(dice, [0.0, 0.0])
    np.testing.assert_array_equal(jac, [0.0, 0.0])
    dice, jac = dice_jaccard(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]), 2)
    assert dice[0] == pytest.approx(2 / 3) and jac[0] == pytest.approx(1 / 2)


def test_dice_jaccard_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"dice_jaccard: prediction \(2,\) and target \(3,\)"):
        dice_jaccard(np.zeros(2, int), np.zeros(3, int), 2)
    with pytest.raises(ConfigError, match=r"target values must lie in 0\.\.1.*background"):
        dice_jaccard(np.zeros(2, int), np.array([0, 2]), 2)
    with pytest.raises(ConfigError, match=r"must be integer.*argmax"):
        dice_jaccard(np.zeros(2), np.zeros(2), 2)
    with pytest.raises(ConfigError, match=r"num_classes=1"):
        dice_jaccard(np.zeros(2, int), np.zeros(2, int), 1)


def test_metric_fills_direction_from_the_table_and_rejects_unknown_names() -> None:
    assert metric("loss", 0.3).higher_is_better is False
    m = metric("dice", 0.8, (0.7, 0.9))
    assert (m.value, m.higher_is_better, m.ci_low, m.ci_high) == (0.8, True, 0.7, 0.9)
    assert {"auroc", "dice", "jaccard", "dice_jaccard", "loss"} <= set(HIGHER_IS_BETTER)
    with pytest.raises(ConfigError, match=r"metric 'f1': unknown metric name.*HIGHER_IS_BETTER"):
        metric("f1", 0.5)


# --------------------------------------------------------------------------- the study's pooled metric
# Two slices, 3 classes (0 = background), pooled as the study's torchmetrics collection pools them.
SLICE_A_PRED = np.array([[0, 1, 1], [0, 1, 2], [2, 2, 0]])
SLICE_A_TRUE = np.array([[0, 1, 1], [1, 1, 2], [0, 2, 2]])
SLICE_B_PRED = np.array([[1, 0], [0, 0]])
SLICE_B_TRUE = np.array([[0, 0], [0, 2]])


def pooled_confmat() -> np.ndarray:
    return (confusion_matrix(SLICE_A_PRED, SLICE_A_TRUE, 3) + confusion_matrix(SLICE_B_PRED, SLICE_B_TRUE, 3))


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    # by hand over the 13 pixels; rows = truth, columns = prediction
    assert pooled_confmat().tolist() == [[3, 1, 1],   # A(0,0) B(0,1) B(1,0) ok; B(0,0) -> 1; A(2,0) -> 2
                                         [1, 3, 0],   # A(1,0) missed; A(0,1) A(0,2) A(1,1) found
                                         [2, 0, 2]]   # A(2,2) B(1,1) missed; A(1,2) A(2,1) found


def test_study_metrics_by_hand() -> None:
    cm = pooled_confmat()
    # Dice: class 1 TP 3 FP 1 FN 1 -> 6/8; class 2 TP 2 FP 1 FN 2 -> 4/7; macro over the two
    assert study_dice(cm) == pytest.approx((6 / 8 + 4 / 7) / 2)
    # Jaccard with truth-background pixels dropped: class 1 3/(4+3-3) = 3/4; class 2 2/(4+2-2) = 1/2
    assert study_jaccard(cm) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_study_jaccard_ignores_pixels_whose_truth_is_background() -> None:
    # one foreground class: truth 4 pixels, prediction covers them and 6 background pixels more
    pred = np.array([1] * 10 + [0] * 6)
    true = np.array([1] * 4 + [0] * 12)
    cm = confusion_matrix(pred, true, 2)
    assert study_jaccard(cm) == 1.0                          # the 6 false positives are dropped
    assert dice_jaccard(pred, true, 2)[1][0] == pytest.approx(4 / 10)     # ours counts them
    assert study_dice(cm) == pytest.approx(8 / 14)           # the study's Dice does count them
    # a miss is still a miss: truth 4, prediction finds 3 -> recall 3/4
    assert study_jaccard(confusion_matrix(np.array([1, 1, 1, 0, 0]), np.array([1, 1, 1, 1, 0]), 2)) == 0.75
    # multi-class: a foreground pixel predicted as another foreground class counts against both
    cm3 = np.array([[5, 2, 2], [0, 3, 1], [1, 0, 4]])
    want = np.mean([3 / (3 + 1 + 0), 4 / (4 + 1 + 1)])     # TP / (truth + fg-row predictions - TP)
    assert study_jaccard(cm3) == pytest.approx(want)


def test_study_metric_edge_cases_follow_torchmetrics() -> None:
    empty = confusion_matrix(np.zeros((4, 4), int), np.zeros((4, 4), int), 3)
    assert study_dice(empty) == 0.0                          # zero_division=0
    assert math.isnan(study_jaccard(empty))                  # 0 / 0 weights
    only_fp = confusion_matrix(np.array([0, 2]), np.array([0, 0]), 3)
    assert study_dice(only_fp) == 0.0                        # class 2 seen (FP) scores 0, class 1 absent
    perfect = confusion_matrix(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 2]), 3)
    assert study_dice(perfect) == study_jaccard(perfect) == 1.0


@SETTINGS
@given(seed=st.integers(0, 10_000), num_classes=st.integers(2, 5))
def test_study_metrics_pool_like_one_big_slice(seed: int, num_classes: int) -> None:
    rng = np.random.default_rng(seed)
    preds = [rng.integers(0, num_classes, (6, 5)) for _ in range(4)]
    trues = [rng.integers(0, num_classes, (6, 5)) for _ in range(4)]
    pooled = sum(confusion_matrix(p, t, num_classes) for p, t in zip(preds, trues))
    one = confusion_matrix(np.concatenate(preds), np.concatenate(trues), num_classes)
    assert (pooled == one).all()
    big_p, big_t = np.concatenate(preds).ravel(), np.concatenate(trues).ravel()
    dice_ours = dice_jaccard(big_p, big_t, num_classes)[0]
    assert study_dice(one) == pytest.approx(np.nanmean(dice_ours))          # same Dice on pooled pixels
    kept = big_t != 0                                                        # the study's Jaccard
    jac = [((big_p[kept] == c) & (big_t[kept] == c)).sum() / ((big_p[kept] == c) | (big_t[kept] == c)).sum()
           for c in range(1, num_classes) if ((big_p[kept] == c) | (big_t[kept] == c)).any()]
    if jac:
        assert study_jaccard(one) == pytest.approx(np.mean(jac))


def test_study_metric_names_are_higher_is_better() -> None:
    for name in ("dice_study", "jaccard_study", "dice_jaccard_study"):
        assert HIGHER_IS_BETTER[name] is True and metric(name, 0.5).higher_is_better


@pytest.mark.parametrize("seed, absent", [(0, False), (1, False), (2, True), (3, True)])
def test_study_metrics_against_torchmetrics(seed: int, absent: bool) -> None:
    """The study's metric library (torchmetrics, in the test extra; never skipped). The study pinned
    1.0.3's ``Dice(average="macro", ignore_index=0)``, removed since; ``DiceScore`` on the pooled pixels
    (one sample) with ``include_background=False`` computes the same, an absent class included."""
    import torch
    from torchmetrics.classification import MulticlassJaccardIndex
    from torchmetrics.segmentation import DiceScore
    rng = np.random.default_rng(seed)
    p, t = rng.integers(0, 4, (4, 8, 8)), rng.integers(0, 4, (4, 8, 8))
    if absent:                                   # class 2 in neither prediction nor truth
        p[p == 2], t[t == 2] = 0, 0
    cm = confusion_matrix(p, t, 4)
    dice = DiceScore(num_classes=4, include_background=False, average="macro", input_format="index")
    jac = MulticlassJaccardIndex(num_classes=4, average="macro", ignore_index=0)
    pooled_p, pooled_t = torch.as_tensor(p.reshape(1, -1)), torch.as_tensor(t.reshape(1, -1))
    assert study_dice(cm) == pytest.approx(float(dice(pooled_p, pooled_t)), abs=1e-6)
    assert study_jaccard(cm) == pytest.approx(float(jac(torch.as_tensor(p), torch.as_tensor(t))), abs=1e-6)
