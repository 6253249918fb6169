"""The noise-aware gate: a drop fails only beyond both the tolerance and the 95% CI of the
difference; by hand, through the baseline file, and on simulated noisy re-runs (it stops flapping
without going blind to a real drop)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from radbench_core.core.errors import BaselineError
from radbench_core.gate.compare import (compare, difference_noise, has_regressions, load_baseline,
                                  parse_tolerances, update_baseline)
from radbench_core.core.results import CellResult, Metric

TOL = parse_tolerances("auroc:0.01")


def rec(value: float, half: float | None, cell_id: str = "m-nih-linear") -> CellResult:
    ci = (value - half, value + half) if half is not None else (None, None)
    return CellResult(cell_id=cell_id, model="m", dataset="nih", protocol="linear", variant="",
                      task="classification", modality="xray", profile="demo",
                      metrics={"auroc": Metric(value, True, *ci)}, config_hash="h")


def baseline_of(tmp_path, value: float, half: float | None):
    path = tmp_path / "base.json"
    update_baseline(path, [rec(value, half)], profile="demo")
    return load_baseline(path)


def test_ci_of_the_difference_adds_half_widths_in_quadrature(tmp_path):
    base = baseline_of(tmp_path, 0.80, 0.04)
    assert difference_noise(base.cells["m-nih-linear"].metrics["auroc"], rec(0.7, 0.03).metrics["auroc"]) \
        == pytest.approx(0.05)                     # sqrt(0.03^2 + 0.04^2)
    no_ci = baseline_of(tmp_path, 0.80, None)
    assert difference_noise(no_ci.cells["m-nih-linear"].metrics["auroc"], rec(0.7, 0.03).metrics["auroc"]) \
        == pytest.approx(0.03)
    assert difference_noise(no_ci.cells["m-nih-linear"].metrics["auroc"], rec(0.7, None).metrics["auroc"]) is None


def test_drop_within_noise_passes_only_in_noise_aware_mode(tmp_path):
    base = baseline_of(tmp_path, 0.80, 0.04)
    within = [rec(0.77, 0.03)]                     # drop 0.03 > tol 0.01, < noise 0.05
    assert has_regressions(compare(within, base, TOL))
    (v,) = compare(within, base, TOL, noise_aware=True)
    assert v.verdict == "ok" and "within the noise" in v.note
    beyond = [rec(0.74, 0.03)]                     # drop 0.06 > both
    (v,) = compare(beyond, base, TOL, noise_aware=True)
    assert v.verdict == "regressed"
    small = [rec(0.795, 0.0)]                      # inside the tolerance: ok either way
    assert compare(small, base, TOL, noise_aware=True)[0].verdict == "ok"


def test_without_a_ci_the_noise_aware_gate_falls_back_to_the_tolerance(tmp_path):
    base = baseline_of(tmp_path, 0.80, None)
    (v,) = compare([rec(0.77, None)], base, TOL, noise_aware=True)
    assert v.verdict == "regressed" and "tolerance only" in v.note


def test_baseline_file_keeps_the_ci_and_refuses_a_bad_one(tmp_path):
    update_baseline(tmp_path / "b.json", [rec(0.8, 0.02)], profile="demo")
    doc = json.loads((tmp_path / "b.json").read_text())
    entry = doc["cells"]["m-nih-linear"]["metrics"]["auroc"]
    assert entry["ci_low"] == pytest.approx(0.78) and entry["ci_high"] == pytest.approx(0.82)
    entry["ci_low"] = "low"
    (tmp_path / "b.json").write_text(json.dumps(doc))
    with pytest.raises(BaselineError, match="ci_low/ci_high"):
        load_baseline(tmp_path / "b.json")


def test_simulated_reruns_stop_flapping_but_real_drops_still_fail(tmp_path):
    """Re-runs of an unchanged cell: value ~ N(0.80, 0.02), recorded CI = value -/+ 1.96 x 0.02."""
    rng = np.random.default_rng(0)
    sd, half = 0.02, 1.96 * 0.02
    plain = aware = caught = 0
    trials = 400
    for i in range(trials):
        base = baseline_of(tmp_path, 0.80 + rng.normal(0, sd), half)
        same = [rec(0.80 + rng.normal(0, sd), half)]
        plain += has_regressions(compare(same, base, TOL))
        aware += has_regressions(compare(same, base, TOL, noise_aware=True))
        dropped = [rec(0.80 - 0.15 + rng.normal(0, sd), half)]      # a real regression
        caught += has_regressions(compare(dropped, base, TOL, noise_aware=True))
    # one-sided P(d < -1.96 sqrt(2) sd) for d ~ N(0, 2 sd^2) = 2.5 %
    assert plain / trials > 0.3
    assert aware / trials < 0.025 + 3 * math.sqrt(0.025 * 0.975 / trials)
    assert caught == trials
