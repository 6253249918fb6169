"""Each classification/segmentation CI is computed once: inside ``run_cell`` the built-in protocols
skip their own item bootstrap (the runner replaces those CIs by a patient bootstrap of the returned
predictions), and the record is the same as when they ran it; the committed demo baseline's CIs
come out of its stored predictions unchanged by the sparse patient-bootstrap AUROC."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

import radbench_core.run.runner as runner
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.core.cells import Cell
from radbench_core.eval import metrics as metrics_module
from radbench_core.eval.cell_intervals import with_patient_intervals
from radbench_core.eval.metrics import metric
from radbench_core.eval.predictions import load_predictions
from radbench_core.protocols import segmentation
from radbench_core.protocols.base import cis_from_predictions, own_resamples
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.run.runner import BackbonePool, RunContext, run_cell

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "benchmarks" / "baselines" / "demo.json"


def _profile() -> Profile:
    hparams = _hparams(paper=False)
    hparams["knn"].update(bootstrap=60)
    hparams["seg_linear"].update(epochs=1, augment=False, bootstrap_resamples=40, n_examples=0)
    return Profile(name="once", description="test", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("knn",)),), hparams=hparams,
                   cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)


def test_own_resamples_is_zero_only_inside_the_runners_context():
    assert own_resamples({"bootstrap": 7}) == 7 and own_resamples({}, "bootstrap_resamples") == 1000
    with cis_from_predictions():
        assert own_resamples({"bootstrap": 7}) == 0
    assert own_resamples({"bootstrap": 7}) == 7


@pytest.mark.parametrize("target", [Cell("dinov2_vits14", "nih", "knn"),
                                    Cell("dinov2_vits14", "mc", "seg_linear", "56")])
def test_record_is_the_same_without_the_protocols_own_bootstrap(target, tmp_path_factory, monkeypatch):
    calls = []
    real = metrics_module.bootstrap_ci

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(metrics_module, "bootstrap_ci", counting)
    monkeypatch.setattr(segmentation, "bootstrap_ci", counting)
    cache = tmp_path_factory.mktemp("cache")
    records = []
    for skip in (True, False):                  # now, then as before (the protocol bootstraps too)
        if not skip:
            monkeypatch.setattr(runner, "cis_from_predictions", contextlib.nullcontext)
        ctx = RunContext(profile=_profile(), cache_dir=cache, run_dir=tmp_path_factory.mktemp("run"),
                         progress=False)
        records.append(run_cell(target, ctx, BackbonePool(), FeatureCache(cache / "features")))
        if skip:
            assert calls == [], "the protocol bootstrapped although the runner recomputes its CIs"
    assert calls, "the protocol's own bootstrap did not run outside the runner's context"
    now, before = records
    assert now.metrics == before.metrics
    for m in now.metrics.values():
        assert m.ci_low is None or m.ci_unit == "patient"


@pytest.mark.parametrize("cell_id", ["dinov2_vits14-nih-knn", "dinov2_vits14-nih-linear",
                                     "biomedclip_vitb16-mc-seg_linear@112"])
def test_demo_baseline_cis_come_back_from_its_predictions(cell_id):
    baseline = json.loads(BASELINE.read_text())["cells"][cell_id]
    pred = load_predictions(BASELINE.parent / baseline["predictions"]["file"])
    protocol = cell_id.split("-")[2].split("@")[0]
    hp = _hparams(paper=False)[protocol]                    # the demo profile's, as the runner reads them
    resamples = int(hp.get("bootstrap", hp.get("bootstrap_resamples")))
    recorded = {name: metric(name, m["value"], (m["ci_low"], m["ci_high"]))
                for name, m in baseline["metrics"].items() if m.get("ci_low") is not None}
    again = with_patient_intervals({k: metric(k, m.value) for k, m in recorded.items()}, pred,
                                   resamples=resamples, seed=0)
    assert set(again) == set(recorded) and recorded
    for name, m in recorded.items():
        assert again[name].ci_low == pytest.approx(m.ci_low, abs=1e-12), name
        assert again[name].ci_high == pytest.approx(m.ci_high, abs=1e-12), name
