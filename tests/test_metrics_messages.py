"""eval/metrics.py's input checks, word for word, at their exact edges (issue 21's mutation runs:
an error message or a bound that no test reads is a mutant that survives)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import (HIGHER_IS_BETTER, auroc, auroc_metric, auroc_per_class,
                                        confusion_matrix, dice_jaccard, metric)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------- AUROC inputs (_check)

def test_unknown_label_kind_word_for_word() -> None:
    assert _message(auroc, [0, 1], [0.1, 0.9], "ordinal") == (
        "metrics.auroc(label_kind='ordinal'): unknown label kind, expected one of "
        "('binary', 'multiclass', 'multilabel'). Fix: pass the dataset spec's label_kind.")


@pytest.mark.parametrize("y,s,shapes", [
    ([[0], [1]], [0.1, 0.9], "(2, 1) and (2,)"),                   # labels not 1-D
    ([0, 1], [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]], "(2,) and (2, 3)"),  # 3 score columns
    ([0, 1, 1], [0.1, 0.9], "(3,) and (2,)"),                        # lengths differ
])
def test_binary_shape_errors_word_for_word(y, s, shapes: str) -> None:
    assert _message(auroc, y, s, "binary") == (
        f"metrics.auroc(label_kind='binary'): expected labels (N,) and scores (N,) or (N, 2), got "
        f"{shapes}. Fix: pass one positive-class score per item.")


def test_binary_two_column_scores_read_the_positive_column() -> None:
    y = np.array([0, 1, 0, 1])
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    assert auroc(y, s, "binary") == auroc(y, s[:, 1], "binary") == 0.75
    # one column is not a pair of columns: refused, not read as scores
    assert "got (4,) and (4, 1)" in _message(auroc, y, s[:, 1:], "binary")


@pytest.mark.parametrize("y,s,shapes", [
    ([[0], [1]], [[0.1, 0.9], [0.8, 0.2]], "(2, 1) and (2, 2)"),
    ([0, 1], [0.1, 0.9], "(2,) and (2,)"),
    ([0, 1, 1], [[0.1, 0.9], [0.8, 0.2]], "(3,) and (2, 2)"),
])
def test_multiclass_shape_errors_word_for_word(y, s, shapes: str) -> None:
    assert _message(auroc, y, s, "multiclass") == (
        f"metrics.auroc(label_kind='multiclass'): expected labels (N,) and scores (N, C), got {shapes}. "
        "Fix: pass one probability per class and item.")


def test_multiclass_label_range_edges() -> None:
    s = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    assert auroc([0, 1, 2], s, "multiclass") == 1.0                  # 0 and C-1 are valid labels
    assert _message(auroc, [0, 1, 3], s, "multiclass") == (
        "metrics.auroc(label_kind='multiclass'): labels must lie in 0..2, got 0..3. "
        "Fix: check num_classes against the labels.")
    assert _message(auroc, [-1, 1, 2], s, "multiclass") == (
        "metrics.auroc(label_kind='multiclass'): labels must lie in 0..2, got -1..2. "
        "Fix: check num_classes against the labels.")
    # no items: no range to check, nothing scorable
    assert math.isnan(auroc(np.zeros(0, int), np.zeros((0, 3)), "multiclass"))


@pytest.mark.parametrize("y,s,shapes", [
    ([0, 1], [0.1, 0.9], "(2,) and (2,)"),
    ([[0, 1], [1, 0]], [[0.1, 0.9, 0.3], [0.8, 0.2, 0.1]], "(2, 2) and (2, 3)"),
])
def test_multilabel_shape_errors_word_for_word(y, s, shapes: str) -> None:
    assert _message(auroc, y, s, "multilabel") == (
        f"metrics.auroc(label_kind='multilabel'): expected labels and scores of the same (N, C) shape, "
        f"got {shapes}. Fix: pass one score per class and item.")


def test_auroc_per_class_with_non_finite_scores_takes_the_class_loop() -> None:
    """A NaN score voids its own class only, for multiclass and for multilabel."""
    y = np.array([0, 1, 2, 0, 1, 2])
    s = np.tile(np.eye(3), (2, 1)).astype(float)
    s[0, 2] = np.nan
    got = auroc_per_class(y, s, "multiclass")
    assert got[0] == 1.0 and got[1] == 1.0 and math.isnan(got[2])
    ym = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    sm = ym.copy()
    sm[1, 0] = np.inf
    got = auroc_per_class(ym, sm, "multilabel")
    assert math.isnan(got[0]) and got[1] == 1.0


def test_multilabel_threshold_and_unknowns_in_the_class_loop() -> None:
    """Targets above 0.5 are positive; a NaN target drops that item from its class only."""
    y = np.array([[1.0, 0.0], [0.0, np.nan], [1.0, 1.0], [0.0, 1.0]])
    s = np.array([[0.9, 0.2], [0.1, 0.99], [0.8, 0.7], [0.3, 0.6]])
    got = auroc_per_class(y, s, "multilabel")
    assert got.tolist() == [1.0, 1.0]          # with item 1 kept as a negative, class 1 would be 1/3
    assert auroc(y, s, "multilabel") == 1.0


def test_auroc_metric_without_resamples_or_items_has_no_interval() -> None:
    m = auroc_metric([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], "binary", resamples=0)
    assert (m.value, m.ci_low, m.ci_high, m.ci_unit, m.n_items) == (1.0, None, None, None, None)
    m = auroc_metric(np.zeros(0), np.zeros(0), "binary", resamples=100)
    assert math.isnan(m.value) and m.ci_low is None and m.higher_is_better is True


def test_auroc_metric_records_the_unit_and_counts_of_its_interval() -> None:
    y = np.array([0, 1] * 6)
    s = np.linspace(0, 1, 12)
    m = auroc_metric(y, s, "binary", resamples=50, seed=3)
    assert (m.ci_unit, m.n_items, m.n_patients) == ("item", 12, None)
    m = auroc_metric(y, s, "binary", resamples=50, seed=3, groups=[f"p{i // 3}" for i in range(12)])
    assert (m.ci_unit, m.n_items, m.n_patients) == ("patient", 12, 4)
    assert m.ci_low <= m.value <= m.ci_high


# ---------------------------------------------------------------- Dice / Jaccard inputs

def test_dice_jaccard_errors_word_for_word() -> None:
    a = np.zeros((2, 2), int)
    assert _message(dice_jaccard, a, np.zeros((2, 3), int), 2) == (
        "metrics.dice_jaccard: prediction (2, 2) and target (2, 3) differ in shape. "
        "Fix: resample the prediction to the target's grid before scoring.")
    assert _message(dice_jaccard, a, a, 1) == (
        "metrics.dice_jaccard: num_classes=1, need >= 2 (background + a class). "
        "Fix: count the background class in num_classes.")
    assert _message(dice_jaccard, a.astype(float), a, 2) == (
        "metrics.dice_jaccard: label maps must be integer, got float64 and int64. "
        "Fix: argmax the logits into class indices first.")
    assert _message(dice_jaccard, a, a.astype(np.float32), 2) == (
        "metrics.dice_jaccard: label maps must be integer, got int64 and float32. "
        "Fix: argmax the logits into class indices first.")
    assert _message(dice_jaccard, np.array([[0, 2]]), np.array([[0, 1]]), 2) == (
        "metrics.dice_jaccard: prediction values must lie in 0..1, got 0..2. "
        "Fix: check num_classes (background included).")
    assert _message(dice_jaccard, np.array([[0, 1]]), np.array([[-1, 1]]), 2) == (
        "metrics.dice_jaccard: target values must lie in 0..1, got -1..1. "
        "Fix: check num_classes (background included).")


def test_dice_jaccard_edges_of_the_valid_range_and_two_classes() -> None:
    p = np.array([[0, 1, 1, 2]])
    t = np.array([[0, 1, 2, 2]])
    dice, jac = dice_jaccard(p, t, 3)               # labels 0 and C-1 are valid
    np.testing.assert_allclose(dice, [2 * 1 / 3, 2 * 1 / 3])
    np.testing.assert_allclose(jac, [1 / 2, 1 / 2])
    dice, jac = dice_jaccard(np.zeros((0,), int), np.zeros((0,), int), 2)   # empty maps: NaN, no error
    assert math.isnan(dice[0]) and math.isnan(jac[0])


def test_confusion_matrix_errors_word_for_word_and_edges() -> None:
    assert _message(confusion_matrix, np.zeros(3, int), np.zeros(4, int), 2) == (
        "metrics.confusion_matrix: 3 predicted and 4 true pixels. "
        "Fix: score a prediction against the mask of the same slice and size.")
    for p, t in (([0, 2], [0, 1]), ([0, 1], [0, 2]), ([-1, 1], [0, 1]), ([0, 1], [-1, 1])):
        assert _message(confusion_matrix, np.array(p), np.array(t), 2) == (
            "metrics.confusion_matrix: labels outside 0..1. Fix: check num_classes (background included).")
    cm = confusion_matrix(np.array([[0, 1], [1, 1]]), np.array([[0, 0], [1, 1]]), 2)
    assert cm.dtype == np.int64 and cm.tolist() == [[1, 1], [0, 2]]
    assert confusion_matrix(np.zeros(0, int), np.zeros(0, int), 3).tolist() == [[0] * 3] * 3


# ---------------------------------------------------------------- metric()

def test_metric_error_word_for_word_and_fields() -> None:
    assert _message(metric, "aurco", 0.5) == (
        f"metric 'aurco': unknown metric name. Fix: use one of {sorted(HIGHER_IS_BETTER)} "
        "or add it to HIGHER_IS_BETTER.")
    m = metric("hd95", 3, (1, 5), ci_unit="patient", n_items=7, n_patients=2)
    assert (m.value, m.higher_is_better, m.ci_low, m.ci_high, m.ci_unit, m.n_items, m.n_patients) == (
        3.0, False, 1.0, 5.0, "patient", 7, 2)
    assert isinstance(m.value, float) and isinstance(m.ci_low, float) and isinstance(m.ci_high, float)
    m = metric("dice", 0.5, None, ci_unit="patient", n_items=7)
    assert (m.ci_low, m.ci_high, m.ci_unit, m.n_items, m.n_patients) == (None, None, None, 7, None)


# ---------------------------------------------------------------- survivors of the full mutation run

def test_a_column_with_exactly_one_negative_is_scored() -> None:
    """Multi-label, no unknown targets (the vectorised path): 2 positives, 1 negative."""
    got = auroc_per_class(np.array([[1.0], [1.0], [0.0]]), np.array([[0.9], [0.2], [0.5]]), "multilabel")
    assert got.tolist() == [0.5]
    # multiclass: class 0 has one negative (the class-1 item), class 2 is absent (NaN)
    s = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    per = auroc_per_class(np.array([0, 0, 0, 1]), s, "multiclass")
    assert per[0] == pytest.approx(2 / 3) and per[1] == 1.0 and math.isnan(per[2])


def test_dice_jaccard_of_a_class_absent_from_both_maps_warns_nothing() -> None:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dice, jac = dice_jaccard(np.array([[0, 1]]), np.array([[0, 1]]), 3)
    assert dice[0] == 1.0 and math.isnan(dice[1]) and jac[0] == 1.0 and math.isnan(jac[1])


def test_patient_draws_reach_every_patient_and_follow_the_seeded_rng_by_hand() -> None:
    from radbench_core.eval.metrics import bootstrap_ci, cluster_members
    values = np.arange(6, dtype=float)
    groups = ["a", "a", "b", "c", "c", "c"]
    seen: list[np.ndarray] = []

    def total(idx: np.ndarray) -> float:
        seen.append(idx)
        return float(values[idx].sum())

    got = bootstrap_ci(total, 6, resamples=200, seed=9, groups=groups)
    members = cluster_members(groups)
    rng = np.random.default_rng(9)
    want = [np.concatenate([members[g] for g in rng.integers(0, 3, 3)]) for _ in range(200)]
    assert all(np.array_equal(x, y) for x, y in zip(seen, want, strict=True))
    assert {0, 2, 3} <= {int(i) for draw in seen for i in draw}           # patient "a" is drawn too
    sums = [values[w].sum() for w in want]
    assert got == tuple(np.quantile(sums, [0.025, 0.975]))


def test_auroc_metric_passes_resamples_seed_and_patients_to_the_bootstrap() -> None:
    from radbench_core.eval.metrics import bootstrap_ci
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 40)
    s = y + rng.normal(0, 1.0, 40)
    groups = [f"p{k // 4}" for k in range(40)]

    def ci(**kw):
        return bootstrap_ci(lambda idx: auroc(y[idx], s[idx], "binary"), 40, **kw)

    default = auroc_metric(y, s, "binary")
    assert (default.ci_low, default.ci_high) == ci(resamples=1000, seed=0)
    assert (default.ci_low, default.ci_high) != ci(resamples=1001, seed=0)
    assert (default.ci_low, default.ci_high) != ci(resamples=1000, seed=1)
    m = auroc_metric(y, s, "binary", resamples=37, seed=5, groups=groups)
    assert (m.ci_low, m.ci_high) == ci(resamples=37, seed=5, groups=groups)
    assert (m.ci_low, m.ci_high) != ci(resamples=37, seed=5)
    one = auroc_metric(y, s, "binary", resamples=1, seed=2)                 # one draw is an interval
    assert one.ci_low == one.ci_high == ci(resamples=1, seed=2)[0] and one.ci_unit == "item"


def test_auroc_metric_of_one_item_has_an_undefined_interval_not_none() -> None:
    m = auroc_metric([1], [0.3], "binary", resamples=10)
    assert math.isnan(m.value) and math.isnan(m.ci_low) and math.isnan(m.ci_high)
    assert (m.ci_unit, m.n_items, m.n_patients) == ("item", 1, None)
