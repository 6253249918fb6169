"""eval/cell_intervals.py by hand: the interval is the alpha-quantiles of the patient draws'
finite values, the seed and chunk reach the draws, and what is not computable is left as it was."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radbench_core.core.results import Metric
from radbench_core.eval import cell_intervals
from radbench_core.eval.cell_intervals import patient_resampled, with_patient_intervals
from radbench_core.eval.metrics import metric
from radbench_core.eval.paired import cluster_counts
from radbench_core.eval.predictions import classification_predictions
from radbench_core.eval.weighted_metrics import weighted_values


def _pred(n: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = y + rng.normal(0, 1.0, n)
    groups = [f"p{k // 3}" for k in range(n)]
    return classification_predictions([f"i{k}" for k in range(n)], groups, y, s, "binary")


def test_patient_resampled_is_the_finite_values_of_the_seeded_patient_draws() -> None:
    pred = _pred()
    counts, inverse = cluster_counts(pred.groups, 120, 4)
    want = weighted_values(pred, "auroc", counts, inverse)
    want = want[np.isfinite(want)]
    got = patient_resampled(pred, "auroc", resamples=120, seed=4)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, patient_resampled(pred, "auroc", resamples=120, seed=5))


def test_patient_resampled_drops_unscorable_draws() -> None:
    """One patient holds the only positive: draws without it have no AUROC and are dropped."""
    pred = classification_predictions(["a", "b", "c", "d"], ["P", "P", "Q", "R"], np.array([1, 0, 0, 0]),
                                      np.array([0.9, 0.1, 0.5, 0.3]), "binary")
    counts, _ = cluster_counts(pred.groups, 200, 0)
    got = patient_resampled(pred, "auroc", resamples=200, seed=0)
    assert got.size == int((counts[:, 0] > 0).sum()) < 200 and np.isfinite(got).all()


def test_patient_resampled_hands_its_chunk_to_the_weighted_values(monkeypatch) -> None:
    seen = []
    real = cell_intervals.weighted_values

    def spy(pred, name, counts, inverse, chunk=250):
        seen.append(chunk)
        return real(pred, name, counts, inverse, chunk=chunk)
    monkeypatch.setattr(cell_intervals, "weighted_values", spy)
    patient_resampled(_pred(), "auroc", resamples=10, seed=0, chunk=3)
    patient_resampled(_pred(), "auroc", resamples=10, seed=0)
    assert seen == [3, 250]


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_the_interval_is_the_alpha_quantiles_and_the_record_says_unit_and_counts(alpha: float) -> None:
    pred = _pred()
    m = metric("auroc", 0.7, (0.0, 1.0), ci_unit="item", n_items=24)
    out = with_patient_intervals({"auroc": m}, pred, resamples=150, seed=2, alpha=alpha)
    values = patient_resampled(pred, "auroc", resamples=150, seed=2)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    assert out["auroc"] == Metric(0.7, True, float(low), float(high), "patient", 24, 8)
    assert isinstance(out["auroc"].ci_low, float) and isinstance(out["auroc"].ci_high, float)


def test_the_default_alpha_is_five_percent() -> None:
    pred = _pred()
    m = metric("auroc", 0.7)
    assert with_patient_intervals({"auroc": m}, pred, resamples=80, seed=1) == \
        with_patient_intervals({"auroc": m}, pred, resamples=80, seed=1, alpha=0.05)
    assert with_patient_intervals({"auroc": m}, pred, resamples=80, seed=1) != \
        with_patient_intervals({"auroc": m}, pred, resamples=80, seed=1, alpha=0.1)


def test_nothing_scorable_gives_an_undefined_interval_with_the_counts() -> None:
    pred = classification_predictions(["a", "b", "c"], ["P", "Q", "Q"], np.array([0, 0, 0]),
                                      np.array([0.2, 0.4, 0.6]), "binary")
    out = with_patient_intervals({"auroc": metric("auroc", math.nan)}, pred, resamples=30, seed=0)
    got = out["auroc"]
    assert math.isnan(got.ci_low) and math.isnan(got.ci_high)
    assert (got.ci_unit, got.n_items, got.n_patients) == ("patient", 3, 2)


def test_no_resamples_or_no_items_leave_the_metrics_as_they_were() -> None:
    m = {"auroc": metric("auroc", 0.7, (0.6, 0.8), ci_unit="item", n_items=24)}
    for resamples in (0, -1):
        out = with_patient_intervals(m, _pred(), resamples=resamples, seed=0)
        assert out == m and out is not m
    empty = classification_predictions([], [], np.zeros(0, int), np.zeros(0), "binary")
    out = with_patient_intervals(m, empty, resamples=50, seed=0)
    assert out == m and out is not m
    # one resample is enough to compute an interval
    one = with_patient_intervals(m, _pred(), resamples=1, seed=0)["auroc"]
    assert one.ci_unit == "patient" and one.ci_low == one.ci_high


def test_metrics_of_another_kind_are_kept_and_the_input_is_not_changed() -> None:
    pred = _pred()
    given = {"auroc": metric("auroc", 0.7), "dice": metric("dice", 0.5, (0.4, 0.6)),
             "wall_time_s": metric("wall_time_s", 3.0)}
    before = dict(given)
    out = with_patient_intervals(given, pred, resamples=40, seed=0)
    assert given == before
    assert out["dice"] == given["dice"] and out["wall_time_s"] == given["wall_time_s"]
    assert out["auroc"].ci_unit == "patient" and list(out) == list(given)


def test_a_metric_of_another_kind_listed_first_does_not_stop_the_others() -> None:
    given = {"dice": metric("dice", 0.5), "auroc_val": metric("auroc_val", 0.6), "auroc": metric("auroc", 0.7)}
    out = with_patient_intervals(given, _pred(), resamples=40, seed=0)
    assert out["auroc"].ci_unit == "patient" and out["dice"] == given["dice"]
