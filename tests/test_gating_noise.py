"""The noise-aware gate (issue 21): now - baseline is tested paired on the same test items, with the
baseline run's predictions stored beside the baseline (file + digest). A paired regression of 3x the
tolerance fails; a rerun of the same cells passes; a drop beyond the tolerance that the paired test
cannot tell from no change passes; without predictions it is the tolerance alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radbench_core.core.errors import BaselineError
from radbench_core.eval.metrics import auroc
from radbench_core.gate.baseline import load_baseline, predictions_folder, update_baseline
from radbench_core.gate.compare import Verdict
from radbench_core.gate.run_gate import gate_run
from radbench_core.core.results import RunStore
from tests.gate_runs import CELL, scored_set, write_run

OPTIONS = {"allow_nothing": "--allow-nothing", "allow_missing": "--allow-missing", "update": "--update"}


def baseline_from(tmp_path, spec) -> object:
    run = write_run(tmp_path / "base_run", {CELL: spec})
    path = update_baseline(tmp_path / "demo.json", RunStore(run).load_cells(), profile="demo",
                           run_dirs=[run])
    return path


def verdict(tmp_path, base_path, spec, *, noise_aware=True, fail="auroc:0.01") -> Verdict:
    run = write_run(tmp_path / "now_run", {CELL: spec})
    outcome, _ = gate_run(RunStore(run).load_cells(), base_path, fail=fail, fail_option="--fail",
                          noise_aware=noise_aware, narrowed=None, allow_missing=False,
                          allow_nothing=False, run_dirs=[run], option_names=OPTIONS)
    (v,) = outcome.verdicts
    assert outcome.passed == (v.verdict in ("ok", "improved"))
    return v


def test_baseline_stores_the_predictions_with_their_digest(tmp_path):
    path = baseline_from(tmp_path, scored_set())
    entry = json.loads(path.read_text())["cells"][CELL]["predictions"]
    stored = path.parent / entry["file"]
    assert stored.parent == predictions_folder(path) and stored.is_file() and len(entry["sha256"]) == 64
    assert load_baseline(path).cells[CELL].predictions == entry


def test_a_paired_regression_of_three_times_the_tolerance_fails(tmp_path):
    y, groups, scores = scored_set()
    base = baseline_from(tmp_path, (y, groups, scores))
    rng = np.random.default_rng(1)
    worse = scores + 0.9 * rng.normal(size=scores.size)              # the same model, blurred
    v = verdict(tmp_path, base, (y, groups, worse))
    assert v.delta <= -0.03 and v.verdict == "regressed", v
    assert "95% CI" in v.note and "200 patients" in v.note


def test_a_rerun_of_the_same_cells_passes(tmp_path):
    spec = scored_set()
    base = baseline_from(tmp_path, spec)
    v = verdict(tmp_path, base, spec)
    assert v.verdict == "ok" and v.delta == 0


def test_a_drop_the_paired_test_cannot_resolve_passes_only_when_noise_aware(tmp_path):
    y, groups, scores = scored_set(n_patients=12, images=1, seed=3)
    base = baseline_from(tmp_path, (y, groups, scores))
    for seed in range(50):                       # a drop beyond the tolerance on a tiny test set
        other = scores + 0.6 * np.random.default_rng(seed).normal(size=scores.size)
        if 0.02 < auroc(y, scores, "binary") - auroc(y, other, "binary") < 0.08:
            break
    assert verdict(tmp_path, base, (y, groups, other), noise_aware=False).verdict == "regressed"
    v = verdict(tmp_path, base, (y, groups, other))
    assert v.verdict == "ok" and "not significant" in v.note, v


def test_without_predictions_the_noise_aware_gate_is_the_tolerance(tmp_path):
    base = baseline_from(tmp_path, 0.80)
    v = verdict(tmp_path, base, 0.77)
    assert v.verdict == "regressed" and "tolerance only" in v.note


def test_edited_baseline_predictions_stop_the_gate(tmp_path):
    y, groups, scores = scored_set()
    base = baseline_from(tmp_path, (y, groups, scores))
    stored = base.parent / json.loads(base.read_text())["cells"][CELL]["predictions"]["file"]
    stored.write_bytes(stored.read_bytes() + b"x")
    with pytest.raises(BaselineError, match="do not match the digest"):
        verdict(tmp_path, base, (y, groups, scores + 0.5 * np.random.default_rng(2).normal(size=y.size)))
