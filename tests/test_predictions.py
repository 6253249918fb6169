"""Per-cell test predictions: round trip, refusal of malformed files, and end to end through
run_cell — the file reproduces the record's metric and the record stays small."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError, StorageError
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.eval.predictions import (Predictions, classification_predictions, find_predictions,
                                       load_predictions, predictions_path, save_predictions)
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.run.runner import BackbonePool, RunContext, run_cell
from radbench_core.eval import paired_bootstrap, weighted_values


def test_round_trip_keeps_every_array(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (30, 4)).astype(np.float32)
    y[0, 1] = np.nan
    pred = classification_predictions([f"img{i}.png" for i in range(30)], [f"p{i // 3}" for i in range(30)],
                                      y, rng.random((30, 4)), "multilabel")
    rel = save_predictions(tmp_path, "dinov2_vitl14-nih-linear", pred)
    assert rel == "predictions/dinov2_vitl14-nih-linear.npz"
    back = load_predictions(tmp_path / rel)
    assert back.kind == "classification" and back.label_kind == "multilabel"
    assert back.ids.tolist() == pred.ids.tolist() and back.groups.tolist() == pred.groups.tolist()
    assert np.array_equal(back.labels, y, equal_nan=True) and back.scores.shape == (1, 30, 4)
    assert find_predictions({"predictions": rel}, [tmp_path / "elsewhere", tmp_path]) == tmp_path / rel
    assert find_predictions({}, [tmp_path]) is None


def test_malformed_predictions_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unique id"):
        classification_predictions(["a", "a"], ["p", "p"], np.array([0, 1]), np.array([.1, .2]), "binary")
    with pytest.raises(ConfigError, match="runs, 3"):
        Predictions("segmentation", ["a", "b", "c"], ["p"] * 3, dice=np.zeros((1, 2, 1)),
                    jaccard=np.zeros((1, 3, 1)), confmats=np.zeros((1, 3, 2, 2)))
    with pytest.raises(StorageError, match="not found"):
        load_predictions(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(StorageError, match="not a readable"):
        load_predictions(bad)


def _profile() -> Profile:
    hparams = _hparams(paper=False)
    hparams["linear"].update(epochs=5, bootstrap=50)
    hparams["knn"].update(bootstrap=50)
    hparams["seg_linear"].update(epochs=2, augment=False, bootstrap_resamples=20, n_examples=1)
    return Profile(name="preds", description="test", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("knn", "linear")),), hparams=hparams,
                   cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)


@pytest.mark.parametrize("target,metric", [(Cell("dinov2_vits14", "nih", "knn"), "auroc"),
                                         (Cell("dinov2_vits14", "nih", "linear"), "auroc"),
                                         (Cell("dinov2_vits14", "mc", "seg_linear", "56"), "dice_jaccard")])
def test_run_cell_writes_predictions_that_reproduce_the_record(target, metric, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    run_dir = tmp_path_factory.mktemp("run")
    ctx = RunContext(profile=_profile(), cache_dir=cache, run_dir=run_dir, progress=False)
    rec = run_cell(target, ctx, BackbonePool(), FeatureCache(cache / "features"))
    assert "test_predictions" not in rec.extra
    assert rec.extra["predictions"] == str(predictions_path(run_dir, target.id).relative_to(run_dir))
    pred = load_predictions(run_dir / rec.extra["predictions"])
    assert pred.n_items == rec.extra["n_items"]["test"]
    value = weighted_values(pred, metric, np.ones((1, pred.n_items)))[0]
    assert value == pytest.approx(rec.metrics[metric].value, abs=1e-6)
    if pred.kind == "segmentation":
        study = weighted_values(pred, "dice_jaccard_study", np.ones((1, pred.n_items)))[0]
        assert study == pytest.approx(rec.metrics["dice_jaccard_study"].value, abs=1e-6)
    assert len(json.dumps(rec.to_dict() if hasattr(rec, "to_dict") else str(rec))) < 20000
    same = paired_bootstrap(pred, pred, metric, resamples=50)
    assert same.diff == 0.0 and same.p_value == 1.0
