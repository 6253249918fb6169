"""Five classes of bug that once survived the whole suite (issue 21), each now caught here.

1. the study's Dice averaging over classes absent from prediction and truth;
2. a split dealing (patient, class) pairs, so a patient with images of two classes lands in two splits;
3. a relative tolerance taken of the new value instead of the baseline
   (tests/test_gate_paths.py, rows "relative tolerance of the baseline");
4. a paired bootstrap resampling images instead of patients;
5. a parameter counter that raises, swallowed by ``except AttributeError`` and a skipped test.
"""

from __future__ import annotations

import numpy as np
import pytest

from radbench_core.data.datasets.splits import patient_split
from radbench_core.eval.metrics import study_dice
from radbench_core.eval.paired import paired_bootstrap
from radbench_core.eval.predictions import classification_predictions
from radbench_core.gate.compare import Tolerance, _compare_metric
from radbench_core.gate.baseline import BaselineMetric


def test_study_dice_averages_only_classes_that_occur():
    # 3 foreground classes; class 2 occurs nowhere (neither truth nor prediction)
    cm = np.zeros((4, 4), dtype=np.int64)
    cm[0, 0], cm[1, 1], cm[1, 0], cm[3, 3], cm[0, 3] = 50, 6, 2, 4, 4   # class 1: 12/14, class 3: 8/12
    expected = np.mean([2 * 6 / (2 * 6 + 0 + 2), 2 * 4 / (2 * 4 + 4 + 0)])
    assert study_dice(cm) == pytest.approx(expected, abs=1e-15)
    # the bug's values: absent class counted as 0 -> 2/3 of this; counted as 1 -> higher
    assert study_dice(cm) != pytest.approx(expected * 2 / 3)


def test_a_patient_with_images_of_two_classes_stays_in_one_split():
    patients, classes = [], []
    for p in range(37):        # every patient: one image of class 0, one of class 1 (37: not a multiple
        #                        of the 10-slot dealing period, which would hide a per-(patient, class) deal)
        patients += [f"p{p}", f"p{p}"]
        classes += [0, 1] if p % 3 else [1, 0]
    out = patient_split(patients, strata=classes)
    owner: dict[str, str] = {}
    for split, idx in out.items():
        for i in idx:
            assert owner.setdefault(patients[i], split) == split, f"{patients[i]} in two splits"
    assert sorted(i for idx in out.values() for i in idx) == list(range(len(patients)))


def test_relative_tolerance_is_of_the_baseline_value():
    base = BaselineMetric(0.5)
    # 2 % of 0.5 = 0.01: a drop of 0.0099 passes; 2 % of the new 0.4901 (0.0098) would fail it
    assert _compare_metric("c", "auroc", base, 0.4901, True, Tolerance(2.0, True)).verdict == "ok"
    assert _compare_metric("c", "auroc", base, 0.4899, True, Tolerance(2.0, True)).verdict == "regressed"


def test_paired_bootstrap_resamples_patients_not_images():
    rng = np.random.default_rng(0)
    n = 60
    y = rng.integers(0, 2, n)
    ids = [str(i) for i in range(n)]
    a = classification_predictions(ids, ["one patient"] * n, y, y + rng.normal(size=n), "binary")
    b = classification_predictions(ids, ["one patient"] * n, y, rng.normal(size=n), "binary")
    r = paired_bootstrap(a, b, "auroc", resamples=200)
    # one patient: every draw takes all its images once, so the difference never varies
    assert r.n_groups == 1 and r.ci_low == pytest.approx(r.diff) and r.ci_high == pytest.approx(r.diff)


def test_a_raising_parameter_counter_is_an_error_not_a_missing_column(monkeypatch):
    from radbench_core.models import scratch_models
    from radbench_core.report import layouts
    from radbench_core.report.layouts import LAYOUTS, study_parameter_counts

    def broken(*args, **kwargs):
        raise AttributeError("'UNet' object has no attribute 'encoder'")

    monkeypatch.setattr(scratch_models, "parameter_counts", broken)
    layouts._counts.cache_clear()
    row = next(r for layout in LAYOUTS for r in layout.rows if r.params == "scratch")
    try:
        with pytest.raises(AttributeError, match="encoder"):
            study_parameter_counts(row, "224")
    finally:
        layouts._counts.cache_clear()
