"""Per-cell CIs at the unit of independence (issue 21): patients, not images.

The simulation draws patients with a shared score offset, so a patient's images are correlated;
a CI that resamples images then covers the true AUROC far less than 95 %, one that resamples
patients covers it near 95 %. The true AUROC is analytic: for two images of different patients the
score difference is normal with mean ``shift`` and variance 2 (patient) + 2 noise^2 (image).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from radbench_core.core.results import Metric
from radbench_core.eval.cell_intervals import patient_resampled, with_patient_intervals
from radbench_core.eval.metrics import auroc, auroc_metric, bootstrap_ci, metric
from radbench_core.eval.paired import cluster_weights
from radbench_core.eval.predictions import Predictions, classification_predictions
from radbench_core.eval.weighted_metrics import weighted_binary_auroc

PATIENTS, IMAGES, SHIFT, NOISE = 80, 4, 1.0, 0.3
TRUE_AUROC = float(norm.cdf(SHIFT / np.sqrt(2 + 2 * NOISE ** 2)))


def _clustered_set(rng: np.random.Generator):
    label = np.repeat(rng.integers(0, 2, PATIENTS), IMAGES)
    offset = np.repeat(rng.normal(size=PATIENTS), IMAGES)
    scores = offset + SHIFT * label + NOISE * rng.normal(size=label.size)
    groups = np.repeat([f"p{i}" for i in range(PATIENTS)], IMAGES)
    return label, scores, groups


def _covers(values: np.ndarray) -> bool:
    low, high = np.quantile(values[np.isfinite(values)], [0.025, 0.975])
    return bool(low <= TRUE_AUROC <= high)


def test_patient_ci_covers_near_95_percent_and_the_image_ci_does_not() -> None:
    rng = np.random.default_rng(2026)
    sims, resamples = 300, 300
    by_patient = by_image = 0
    for s in range(sims):
        y, scores, groups = _clustered_set(rng)
        pred = classification_predictions([str(i) for i in range(len(y))], groups, y, scores, "binary")
        by_patient += _covers(patient_resampled(pred, "auroc", resamples=resamples, seed=s))
        images = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=resamples)
        by_image += _covers(weighted_binary_auroc(y, scores, images))
    patient_rate, image_rate = by_patient / sims, by_image / sims
    assert 0.92 <= patient_rate <= 0.98, patient_rate          # measured 0.943 (image: 0.677)
    assert image_rate < patient_rate - 0.10, (image_rate, patient_rate)


def test_index_bootstrap_with_groups_draws_whole_patients() -> None:
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    seen: list[np.ndarray] = []

    def record(idx: np.ndarray) -> float:
        seen.append(np.sort(idx))
        return float(len(idx))

    bootstrap_ci(record, len(groups), resamples=50, seed=1, groups=groups)
    members = {"a": {0, 1, 2}, "b": {3}, "c": {4, 5}}
    for idx in seen:
        counts = {g: sum(int(i in m) for i in idx) for g, m in members.items()}
        for g, m in members.items():     # every patient comes with all its images, k times each
            assert counts[g] % len(m) == 0
        assert sum(counts[g] // len(members[g]) for g in members) == 3   # 3 patients drawn


def test_index_and_weighted_patient_bootstrap_agree_in_distribution() -> None:
    rng = np.random.default_rng(5)
    y, scores, groups = _clustered_set(rng)
    by_index = bootstrap_ci(lambda i: auroc(y[i], scores[i], "binary"), len(y), resamples=2000,
                            seed=3, groups=groups)
    pred = classification_predictions([str(i) for i in range(len(y))], groups, y, scores, "binary")
    by_weight = np.quantile(patient_resampled(pred, "auroc", resamples=2000, seed=3), [0.025, 0.975])
    assert by_index == pytest.approx(tuple(by_weight), abs=0.03)


def test_records_say_the_unit_and_counts() -> None:
    rng = np.random.default_rng(0)
    y, scores, groups = _clustered_set(rng)
    m = auroc_metric(y, scores, "binary", resamples=100, groups=groups)
    assert (m.ci_unit, m.n_items, m.n_patients) == ("patient", PATIENTS * IMAGES, PATIENTS)
    m = auroc_metric(y, scores, "binary", resamples=100)
    assert (m.ci_unit, m.n_items, m.n_patients) == ("item", PATIENTS * IMAGES, None)
    pred = classification_predictions([str(i) for i in range(len(y))], groups, y, scores, "binary")
    out = with_patient_intervals({"auroc": m, "auroc_val": metric("auroc_val", 0.7)}, pred,
                                 resamples=200, seed=0)
    assert (out["auroc"].ci_unit, out["auroc"].n_items, out["auroc"].n_patients) == \
        ("patient", PATIENTS * IMAGES, PATIENTS)
    assert out["auroc"].value == m.value and out["auroc"].ci_low < m.value < out["auroc"].ci_high
    assert out["auroc_val"] == metric("auroc_val", 0.7)          # not computable: left alone


def test_segmentation_interval_resamples_volumes_of_patients() -> None:
    rng = np.random.default_rng(1)
    n, groups = 12, np.repeat(["p0", "p1", "p2", "p3"], 3)
    dice = rng.uniform(0.5, 0.9, size=(1, n, 2))
    confmats = rng.integers(1, 50, size=(1, n, 3, 3))
    pred = Predictions("segmentation", np.arange(n).astype(str), groups, dice=dice, jaccard=dice / 2,
                       confmats=confmats)
    out = with_patient_intervals({"dice": Metric(float(dice.mean())),
                                  "dice_study": Metric(0.5)}, pred, resamples=300, seed=0)
    for name in ("dice", "dice_study"):
        assert (out[name].ci_unit, out[name].n_items, out[name].n_patients) == ("patient", n, 4)
        assert out[name].ci_low <= out[name].ci_high
    # the same draws as the paired test's cluster weights: one source of patient resampling
    w = cluster_weights(groups, 300, 0)
    assert np.all(w.reshape(300, 4, 3).std(axis=2) == 0)
