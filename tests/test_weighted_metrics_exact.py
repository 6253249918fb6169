"""eval/weighted_metrics.py by hand: its three error messages word for word, every segmentation
metric (dice, jaccard, dice_jaccard and the study's pooled ones) against a loop over items, runs
and classes under integer, fractional and zero weights, the NaN rules of the weighted item mean, the
float32 fast path's exact edges (2**24), the AUROC's label / score / weight dtypes, the binary
(N, 2) score column, the chunking, and no RuntimeWarning escaping where the code silences it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from radbench_core.core.errors import ConfigError
from radbench_core.eval import weighted_metrics as wm
from radbench_core.eval.metrics import auroc, study_dice, study_jaccard
from radbench_core.eval.predictions import Predictions, classification_predictions
from radbench_core.eval.weighted_metrics import (_exact_in_float32, weighted_auroc,
                                                 weighted_binary_auroc, weighted_values)

NAN = math.nan
SEG_METRICS = ["dice", "jaccard", "dice_jaccard", "dice_study", "jaccard_study", "dice_jaccard_study"]

# Five items, two foreground classes. dice / jaccard hold three runs that differ (the third most),
# confmats two: each metric family must average over the runs of its own arrays. Class 0 is absent
# from items 1 and 3, class 1 from items 0 and 4; item 2 has no foreground at all in run 0.
DICE = np.array([
    [[0.5, NAN], [NAN, 0.25], [0.75, 0.5], [NAN, 1.0], [0.25, NAN]],
    [[0.25, NAN], [NAN, 0.5], [1.0, 0.75], [NAN, 0.5], [0.5, NAN]],
    [[1.0, NAN], [NAN, 1.0], [0.0, 0.0], [NAN, 0.0], [1.0, NAN]],
])
JACCARD = np.array([                                   # not a function of DICE: dispatch shows
    [[0.125, NAN], [NAN, 0.375], [0.5, 0.25], [NAN, 0.75], [0.0, NAN]],
    [[0.375, NAN], [NAN, 0.125], [0.25, 0.625], [NAN, 0.25], [0.75, NAN]],
    [[0.0, NAN], [NAN, 0.0], [1.0, 1.0], [NAN, 1.0], [0.0, NAN]],
])
CONFMATS = np.array([
    [[[9, 1, 0], [2, 5, 0], [0, 0, 0]],
     [[7, 0, 2], [0, 0, 0], [1, 0, 3]],
     [[6, 0, 0], [0, 0, 0], [0, 0, 0]],               # background only: no Jaccard class
     [[4, 0, 1], [0, 0, 0], [2, 0, 6]],
     [[8, 3, 0], [1, 2, 0], [0, 0, 0]]],
    [[[9, 0, 0], [4, 3, 0], [0, 0, 0]],
     [[5, 0, 0], [0, 0, 0], [0, 1, 5]],
     [[6, 2, 0], [0, 0, 0], [0, 0, 1]],
     [[4, 0, 0], [0, 0, 0], [3, 0, 2]],
     [[8, 0, 0], [0, 4, 1], [0, 0, 0]]],
])
# resample rows: all ones; integer counts (class 1 then has weight 1 on a single finite item);
# fractional weights (class 0 NaN for every drawn item, class 1 weight 0.5 + 1.5); one item of
# weight 0.5 (a class weight below 1); all zero (nothing drawn)
WEIGHTS = np.array([[1.0, 1.0, 1.0, 1.0, 1.0],
                    [2.0, 0.0, 1.0, 0.0, 3.0],
                    [0.0, 0.5, 0.0, 1.5, 0.0],
                    [0.0, 0.0, 0.5, 0.0, 0.0],
                    [0.0, 0.0, 0.0, 0.0, 0.0]])


def _seg() -> Predictions:
    return Predictions("segmentation", [f"v{i}" for i in range(5)], ["p0", "p0", "p1", "p2", "p2"],
                       dice=DICE, jaccard=JACCARD, confmats=CONFMATS)


def _item_mean_by_hand(values: np.ndarray, w: np.ndarray) -> float:
    """Per class the weighted mean over items whose value is finite (NaN when they weigh nothing),
    then the mean over the classes that have one (NaN when none does)."""
    per_class = []
    for c in range(values.shape[1]):
        num = den = 0.0
        for n in range(values.shape[0]):
            if math.isfinite(values[n, c]):
                num += w[n] * values[n, c]
                den += w[n]
        if den > 0:
            per_class.append(num / den)
    return sum(per_class) / len(per_class) if per_class else NAN


def _study_by_hand(confmats: np.ndarray, w: np.ndarray, metric: str) -> float:
    pooled = sum(w[n] * confmats[n].astype(np.float64) for n in range(len(w)))
    d, j = study_dice(pooled), study_jaccard(pooled)
    return {"dice_study": d, "jaccard_study": j, "dice_jaccard_study": (d + j) / 2.0}[metric]


def _one_run_by_hand(metric: str, run: int, w: np.ndarray) -> float:
    if metric.endswith("_study"):
        return _study_by_hand(CONFMATS[run], w, metric)
    d, j = DICE[run], JACCARD[run]
    return _item_mean_by_hand({"dice": d, "jaccard": j, "dice_jaccard": (d + j) / 2.0}[metric], w)


def _by_hand(metric: str, w: np.ndarray) -> float:
    runs = len(CONFMATS) if metric.endswith("_study") else len(DICE)
    values = [v for v in (_one_run_by_hand(metric, r, w) for r in range(runs)) if not math.isnan(v)]
    return sum(values) / len(values) if values else NAN


# ---------------------------------------------------------------------------------------------
# error messages, word for word

def test_a_metric_of_the_other_kind_is_one_line_naming_the_computable_ones() -> None:
    seg = _seg()
    cls = classification_predictions(["a", "b"], ["p", "q"], np.array([0, 1]), np.array([0.2, 0.7]), "binary")
    cases = [(seg, "auroc", "metric 'auroc': not computable from segmentation predictions. Fix: use one of "
                            "['dice', 'dice_jaccard', 'dice_jaccard_study', 'dice_study', 'jaccard', "
                            "'jaccard_study']."),
             (seg, "hd95", "metric 'hd95': not computable from segmentation predictions. Fix: use one of "
                           "['dice', 'dice_jaccard', 'dice_jaccard_study', 'dice_study', 'jaccard', "
                           "'jaccard_study']."),
             (cls, "dice", "metric 'dice': not computable from classification predictions. Fix: use one "
                           "of ['auroc'].")]
    for pred, metric, message in cases:
        with pytest.raises(ConfigError) as err:
            weighted_values(pred, metric, np.ones((1, pred.n_items)))
        assert str(err.value) == message


def test_item_weights_of_the_wrong_width_are_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        weighted_values(_seg(), "dice", np.ones((3, 4)))
    assert str(err.value) == ("stats.weighted_values: weights for 4 items, predictions hold 5. "
                              "Fix: draw weights per test item.")


@pytest.mark.parametrize("units, n_units, n_given", [
    ([0, 0, 1, 2], 3, 4),                 # one unit too few
    ([0, 0, 1, 2, 2, 2], 3, 6),           # one too many
    ([0, 0, 1, 3, 2], 3, 5),              # a unit index one past the last weight column
    ([0, -1, 1, 2, 2], 3, 5),             # a negative unit index
])
def test_item_units_that_do_not_index_the_unit_weights_are_one_line(units, n_units, n_given) -> None:
    with pytest.raises(ConfigError) as err:
        weighted_values(_seg(), "dice", np.ones((2, n_units)), np.array(units))
    assert str(err.value) == (f"stats.weighted_values: {n_given} item units into {n_units} unit weights, "
                              f"predictions hold 5 items. Fix: give every test item the index of its "
                              f"unit's weight column.")


def test_item_units_at_the_edges_are_accepted() -> None:
    """The last column and a single unit holding every item (smallest index == largest) are valid."""
    pred = _seg()
    w = np.array([[1.0, 2.0, 0.5]])
    got = weighted_values(pred, "dice", w, np.array([0, 0, 1, 2, 2]))
    assert got[0] == pytest.approx(_by_hand("dice", w[0, [0, 0, 1, 2, 2]]), abs=1e-12)
    one_unit = weighted_values(pred, "dice_study", np.array([[3.0]]), np.zeros(5, np.int64))
    assert one_unit[0] == pytest.approx(_by_hand("dice_study", np.full(5, 3.0)), abs=1e-12)


def test_an_unknown_label_kind_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        weighted_auroc(np.array([0, 1]), np.array([0.1, 0.9]), "ordinal", np.ones((1, 2)))
    assert str(err.value) == ("stats.weighted_auroc: unknown label kind 'ordinal'. "
                              "Fix: use binary, multiclass or multilabel.")


# ---------------------------------------------------------------------------------------------
# segmentation metrics by hand

@pytest.mark.parametrize("metric", SEG_METRICS)
def test_each_segmentation_metric_is_the_mean_over_its_own_runs_by_hand(metric) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # the all-zero row must not warn
        got = weighted_values(_seg(), metric, WEIGHTS, chunk=2)
    want = np.array([_by_hand(metric, w) for w in WEIGHTS])
    assert got.shape == (len(WEIGHTS),)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (got, want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_the_segmentation_runs_and_rows_by_hand_are_what_the_cases_claim() -> None:
    """The cases above exercise what they say: runs differ, NaN and zero rows occur where claimed."""
    assert _by_hand("dice", WEIGHTS[0]) != pytest.approx(
        sum(_one_run_by_hand("dice", r, WEIGHTS[0]) for r in range(2)) / 2)
    assert _by_hand("jaccard", WEIGHTS[0]) != pytest.approx(_by_hand("dice", WEIGHTS[0]))
    assert math.isnan(_by_hand("dice", WEIGHTS[4])) and math.isnan(_by_hand("jaccard_study", WEIGHTS[4]))
    assert _by_hand("dice_study", WEIGHTS[4]) == 0.0                     # study_dice of nothing is 0
    assert math.isnan(_one_run_by_hand("jaccard_study", 0, WEIGHTS[3]))  # item 2, run 0: background only
    assert _by_hand("jaccard_study", WEIGHTS[3]) == _one_run_by_hand("jaccard_study", 1, WEIGHTS[3])


@pytest.mark.parametrize("metric", SEG_METRICS)
def test_unit_weights_give_the_item_weights_of_their_units(metric) -> None:
    units = np.array([0, 0, 1, 2, 2])
    unit_w = np.array([[1.0, 2.0, 0.5], [0.0, 3.0, 1.0], [2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    got = weighted_values(_seg(), metric, unit_w, units, chunk=3)     # chunks of 3 and 1
    want = np.array([_by_hand(metric, w) for w in unit_w[:, units]])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.array_equal(got, weighted_values(_seg(), metric, unit_w[:, units]))


def test_the_weighted_item_mean_by_hand_with_nan_items_and_classes() -> None:
    """Class 0 item values 0.25, 0.75, NaN; class 1 NaN, 0.375, NaN (one run)."""
    values = np.array([[[0.25, NAN], [0.75, 0.375], [NAN, NAN]]])
    pred = Predictions("segmentation", ["a", "b", "c"], ["p", "q", "r"], dice=values, jaccard=values,
                       confmats=np.zeros((1, 3, 3, 3), np.int64))
    w = np.array([[1, 1, 1],        # (0.25 + 0.75) / 2 and 0.375 (a class of weight exactly 1)
                  [2, 0, 5],        # class 1 NaN for every drawn item: skipped, not 0
                  [0, 0.5, 0],      # a class weight of 0.5: 0.75 and 0.375
                  [0, 0, 3],        # only an item NaN in every class: NaN
                  [0, 0, 0]])       # nothing drawn: NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = weighted_values(pred, "dice", w)
    np.testing.assert_array_equal(got, [0.4375, 0.25, 0.5625, NAN, NAN])


def test_the_default_chunk_is_250_resamples_for_the_segmentation_metrics(monkeypatch) -> None:
    rows: list[int] = []
    real = wm._item_metric

    def spy(pred, metric, w, run):
        rows.append(len(w))
        return real(pred, metric, w, run)
    monkeypatch.setattr(wm, "_item_metric", spy)
    w = np.ones((251, 5))
    got = weighted_values(_seg(), "dice_study", w)
    assert rows == [250, 1, 250, 1]                          # two confmat runs, two chunks each
    np.testing.assert_allclose(got, _by_hand("dice_study", w[0]), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# AUROC: chunks, runs, dtypes, the binary score column, soft labels

def _chunk_spy(monkeypatch) -> list[int]:
    blocks: list[int] = []
    real = wm._auroc_from_plan

    def spy(plan, unit_weights_t):
        blocks.append(unit_weights_t.shape[1])
        return real(plan, unit_weights_t)
    monkeypatch.setattr(wm, "_auroc_from_plan", spy)
    return blocks


def test_weighted_values_hands_its_chunk_to_the_auroc(monkeypatch) -> None:
    pred = classification_predictions(list("abcdef"), list("ppqqrs"), np.array([0, 1, 0, 1, 1, 0]),
                                      np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.2]), "binary")
    blocks = _chunk_spy(monkeypatch)
    weighted_values(pred, "auroc", np.ones((10, 6)), chunk=4)
    assert blocks == [4, 4, 2]
    blocks.clear()
    weighted_values(pred, "auroc", np.ones((251, 6)))
    assert blocks == [250, 1]


def test_a_run_without_a_finite_auroc_is_skipped_in_the_mean_over_runs() -> None:
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([[0.1, np.nan, 0.4, 0.3, 0.9, 0.2],           # a NaN score: run 0 not scorable
                  [0.1, 0.8, 0.4, 0.3, 0.9, 0.2],
                  [0.5, 0.8, 0.4, 0.3, 0.9, 0.2]])
    pred = classification_predictions(list("abcdef"), list("abcdef"), y, s, "binary", runs=True)
    w = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 1, 2], [1, 0, 1, 0, 0, 1]])   # last row: no positive
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = weighted_values(pred, "auroc", w)
    want = [np.mean([roc_auc_score(y, s[r], sample_weight=w[b]) for r in (1, 2)]) for b in range(2)]
    np.testing.assert_allclose(got[:2], want, rtol=0, atol=1e-12)
    assert math.isnan(got[2])


def test_weighted_binary_auroc_by_hand_with_integer_labels_and_one_weight_row() -> None:
    """Positives 0.35 and 0.8, negatives 0.1 and 0.4 (weight 2): 4 of 6 weighted pairs ordered."""
    got = weighted_binary_auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]), np.array([1, 2, 1, 1]))
    assert got.shape == (1,) and got[0] == pytest.approx(4 / 6, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, bool, np.float32])
def test_scores_of_any_dtype_are_taken_as_numbers(dtype) -> None:
    """Fewer distinct negative scores than positive ones: the plan swaps the labels and negates the
    scores, which must be real numbers (an unsigned -s wraps, a boolean -s is refused)."""
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0, 0, 2, 0, 1, 3]) if dtype is not bool else np.array([0, 0, 0, 0, 1, 1])
    w = np.array([[1, 1, 1, 1, 1, 1], [2, 1, 0, 1, 3, 1]])
    want = [roc_auc_score(y, s.astype(np.float64), sample_weight=row) for row in w]
    np.testing.assert_allclose(weighted_binary_auroc(y, s.astype(dtype), w), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weighted_auroc(y, s.astype(dtype), "binary", w), want, rtol=0, atol=1e-12)


def test_float32_weights_are_summed_in_float64() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60).astype(bool)
    s = np.round(y + rng.normal(0, 1, 60), 1)
    w = (rng.random((4, 60)) * 7).astype(np.float32)
    want = [roc_auc_score(y, s, sample_weight=row.astype(np.float64)) for row in w]
    np.testing.assert_allclose(weighted_binary_auroc(y, s, w), want, rtol=0, atol=1e-13)
    assert np.array_equal(weighted_binary_auroc(y, s, w), weighted_binary_auroc(y, s, w.astype(np.float64)))


def test_two_binary_score_columns_use_the_positive_one() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    positive = np.array([0.2, 0.7, 0.4, 0.9, 0.3, 0.1, 0.8, 0.6])
    other = np.array([0.9, 0.1, 0.3, 0.2, 0.8, 0.5, 0.7, 0.4])      # not 1 - positive
    w = np.array([[1, 1, 1, 1, 1, 1, 1, 1], [2, 0, 1, 3, 1, 1, 0, 2]])
    want = [roc_auc_score(y, positive, sample_weight=row) for row in w]
    two = np.stack([other, positive], axis=1)
    np.testing.assert_allclose(weighted_auroc(y, two, "binary", w), want, rtol=0, atol=1e-12)
    pred = classification_predictions(list("abcdefgh"), list("abcdefgh"), y, two, "binary")
    np.testing.assert_allclose(weighted_values(pred, "auroc", w), want, rtol=0, atol=1e-7)   # float32 scores
    assert roc_auc_score(y, other) != pytest.approx(want[0])


def test_multilabel_soft_and_unknown_targets_follow_the_plain_metric() -> None:
    """A target of exactly 0.5 is negative (> 0.5 is positive) and NaN targets are left out, as in
    ``metrics.auroc``."""
    labels = np.array([[0.5, 1.0], [1.0, NAN], [0.0, 0.0], [1.0, 1.0], [0.5, NAN], [0.0, 0.0]])
    scores = np.array([[0.9, 0.2], [0.6, 0.9], [0.1, 0.4], [0.7, 0.8], [0.8, 0.1], [0.3, 0.3]])
    got = weighted_auroc(labels, scores, "multilabel", np.ones((1, 6)))[0]
    assert got == pytest.approx(auroc(labels, scores, "multilabel"), abs=1e-12)
    class0 = roc_auc_score([0, 1, 0, 1, 0, 0], scores[:, 0])
    class1 = roc_auc_score([1, 0, 1, 0], scores[[0, 2, 3, 5], 1])
    assert got == pytest.approx((class0 + class1) / 2, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# the float32 fast path: only integer, non-negative counts whose sums stay below 2**24

def test_exact_in_float32_only_for_non_negative_integer_counts() -> None:
    units = np.array([0, 0, 1])                                  # unit 0 holds two items
    assert _exact_in_float32(np.array([[1, 2], [0, 5]]), units) is True          # a zero count is fine
    assert _exact_in_float32(np.array([[1, 2]], dtype=np.uint16), units) is True
    assert _exact_in_float32(np.array([[3]]), np.array([0])) is True             # one count
    assert _exact_in_float32(np.array([[1.0, 2.0]]), units) is False             # float weights
    assert _exact_in_float32(np.zeros((0, 2), np.int64), units) is False         # no resamples
    assert _exact_in_float32(np.array([[-1, 2]]), units) is False                # a negative count
    assert _exact_in_float32(np.array([[1, 2, 5]]), units) is True               # unit 2 holds no item


def test_exact_in_float32_at_the_2_pow_24_bound() -> None:
    """Twice the largest resample's item total must be below 2**24: total = 2 * a + b here."""
    units = np.array([0, 0, 1])
    below = np.array([[1, 0], [2**22 - 1, 1]])                  # totals 2 and 2**23 - 1
    at = np.array([[1, 0], [2**22, 0]])                         # totals 2 and 2**23
    assert _exact_in_float32(below, units) is True
    assert _exact_in_float32(at, units) is False
    assert _exact_in_float32(np.array([[2**23 - 1, 0]]), np.array([0, 1])) is True
    assert _exact_in_float32(np.array([[2**23, 0]]), np.array([0, 1])) is False


# ---------------------------------------------------------------------------------------------
# mutation survivors: the AUROC's own chunk default, the dtype of the fast path, totals below one

def test_weighted_auroc_takes_250_resamples_at_a_time_by_default(monkeypatch) -> None:
    blocks = _chunk_spy(monkeypatch)
    y, s = np.array([0, 1, 0, 1, 1, 0]), np.array([0.1, 0.8, 0.4, 0.3, 0.9, 0.2])
    got = weighted_auroc(y, s, "binary", np.ones((251, 6)))
    assert blocks == [250, 1]
    np.testing.assert_allclose(got, roc_auc_score(y, s), rtol=0, atol=1e-12)


def _dtype_spy(monkeypatch) -> list[np.dtype]:
    seen: list[np.dtype] = []
    real = wm._auroc_from_plan

    def spy(plan, unit_weights_t):
        seen.append(unit_weights_t.dtype)
        return real(plan, unit_weights_t)
    monkeypatch.setattr(wm, "_auroc_from_plan", spy)
    return seen


@pytest.mark.parametrize("weights, fast", [
    (np.ones((2, 300), np.uint8), True),          # a uint8 product would wrap at 256 items
    (np.full((2, 300), 2, np.int64), True),
    (np.full((2, 300), 0.5), False),              # fractional weights: float64
    (np.ones((2, 300), np.float32), False),       # float counts are not taken as exact
])
def test_integer_counts_take_the_float32_path_and_any_other_weight_float64(monkeypatch, weights, fast) -> None:
    rng = np.random.default_rng(5)
    y = np.arange(300) % 3 == 0
    s = np.round(y + rng.normal(0, 1, 300), 2)
    seen = _dtype_spy(monkeypatch)
    got = weighted_auroc(y, s, "binary", weights)
    assert seen == [np.dtype(np.float32 if fast else np.float64)]
    np.testing.assert_allclose(got, roc_auc_score(y, s), rtol=0, atol=1e-12)


def test_label_totals_whose_product_is_below_one_still_give_an_auroc() -> None:
    """Weights 0.5 on one positive and one negative (denominator 0.25); then positive weights 0.5
    (score 0.9) and 0.25 (0.3), negative 0.25 (0.1) and 0.5 (0.5): ordered pair weight
    0.125 + 0.25 + 0.0625 = 0.4375 of 0.75 * 0.75 = 0.5625, i.e. 7/9; then 0.2 * 0.1 = 0.02."""
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.3])
    w = np.array([[0.5, 0.5, 0.0, 0.0], [0.25, 0.5, 0.5, 0.25], [0.1, 0.2, 0.0, 0.0]])
    want = [1.0, roc_auc_score(y, s, sample_weight=w[1]), 1.0]
    np.testing.assert_allclose(weighted_binary_auroc(y, s, w), want, rtol=0, atol=1e-12)
    assert want[1] == pytest.approx(7 / 9, abs=1e-15)
