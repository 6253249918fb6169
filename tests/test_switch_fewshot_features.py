"""Switch ``fewshot_cached_features``: the study trained its few-shot heads on its train transform's
images (a new augmentation of the n-shot sample every epoch; in the refit, of the val images too).

Observed on the computation: which items' augmented draws the heads ask for, epoch by epoch, and
that the cached features are never augmented; then, in a real demo few-shot cell, the items the
backbone is given augmented (exactly the study's sample, once per epoch) under each value.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.config.switches import switches_in_effect
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.protocols.fewshot import run_fewshot, study_fewshot
from radbench_core.run import inputs as inputs_mod
from synthetic import frozen_features

HP = {"shots": 2, "sampler": "study", "seeds": 1, "lrs": (1e-1,), "epochs": 4, "batch_size": 8,
      "n_blocks": (1,), "avgpool": (False,)}


def _with_logged_augmentation(inputs):
    """``inputs`` with augmented draws = the cached features + epoch noise, every call logged."""
    calls: list[tuple[str, int, tuple | None]] = []

    def draw(split):
        def at(epoch, items=None):
            calls.append((split, epoch, None if items is None else tuple(int(i) for i in items)))
            feats = inputs.features[split]
            idx = np.arange(len(feats["cls"])) if items is None else np.asarray(items)
            rng = np.random.default_rng(epoch)
            return {k: np.asarray(v)[idx] + rng.normal(size=np.asarray(v)[idx].shape).astype(np.float32)
                    for k, v in feats.items()}
        return at
    return dataclasses.replace(inputs, augmented={"train": draw("train"), "val": draw("val")}), calls


def test_augmented_heads_see_the_samples_images_redrawn_every_epoch():
    inputs, calls = _with_logged_augmentation(
        frozen_features(60, 1.0, "multilabel", 3, seed=1, per_patient=2))
    sample = tuple(study_fewshot(inputs.labels["train"], inputs.patients["train"], "multilabel", 2))
    study = run_fewshot(inputs, {**HP, "features": "augmented"}, seed=0)
    assert calls == [("train", e, sample) for e in range(HP["epochs"])]
    calls.clear()
    ours = run_fewshot(inputs, {**HP, "features": "cached"}, seed=0)
    assert calls == []                                  # cached: the augmentation is never drawn
    assert study.metrics["auroc"].value != ours.metrics["auroc"].value


def test_the_studys_refit_augments_the_sample_and_the_whole_val_split():
    inputs, calls = _with_logged_augmentation(
        frozen_features(60, 1.0, "multilabel", 3, seed=1, per_patient=2))
    sample = tuple(study_fewshot(inputs.labels["train"], inputs.patients["train"], "multilabel", 2))
    run_fewshot(inputs, {**HP, "features": "augmented", "fewshot_selection": "final_refit_val"}, seed=0)
    sweep, refit = calls[:HP["epochs"]], calls[HP["epochs"]:]
    assert sweep == [("train", e, sample) for e in range(HP["epochs"])]
    assert refit == [c for e in range(HP["epochs"]) for c in (("train", e, sample), ("val", e, None))]


def test_a_bad_value_or_missing_draws_are_config_errors():
    inputs = frozen_features(40, 1.0, "multilabel", 3, seed=1)
    with pytest.raises(ConfigError, match="features"):
        run_fewshot(inputs, {**HP, "features": "both"}, seed=0)
    with pytest.raises(ConfigError, match="augmented"):
        run_fewshot(inputs, {**HP, "features": "augmented"}, seed=0)


def _profile(value: str) -> Profile:
    hp = _hparams(paper=False)
    hp = {**hp, "fewshot": {**hp["fewshot"], "epochs": 3}}
    return Profile(name="t", description="test", demo=True, grids=(Grid(("dinov2_vits14",), ("nih",), ("fewshot",)),),
                   hparams=hp, cls_resolution=42, phantom_size="tiny", batch_size=16, num_workers=0,
                   switches={"fewshot_cached_features": value})


def test_a_demo_fewshot_cell_augments_exactly_the_studys_sample_once_per_epoch(tmp_path, monkeypatch):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, load_index, run_cell
    augmented: list[list[str]] = []
    real = inputs_mod.extract_splits

    def spy(backbone, datasets, **kw):
        if "augmented" in kw.get("desc", ""):
            augmented.append([it.key for it in datasets["train"].items])
        return real(backbone, datasets, **kw)
    monkeypatch.setattr(inputs_mod, "extract_splits", spy)
    for value in ("augmented", "cached"):
        augmented.clear()
        ctx = RunContext(profile=_profile(value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        cell = Cell("dinov2_vits14", "nih", "fewshot", "2")
        rec = run_cell(cell, ctx, BackbonePool(), FeatureCache(tmp_path / "c" / "features"))
        index, _ = load_index("nih", ctx)
        labels, patients = index.labels("train"), index.patients("train")
        sample = [index.split_items("train")[i].key for i in study_fewshot(labels, patients, "multilabel", 2)]
        assert augmented == ([sample] * 3 if value == "augmented" else [])
        assert rec.switches["fewshot_cached_features"] == value
        assert ("fewshot_cached_features" in rec.deviations) == (value == "cached")
        assert ("cls_augment_square_crop" in rec.switches) == (value == "augmented")
    paper = get_profile("paper").hparams_for("fewshot")
    assert paper["features"] == "augmented" and paper["cls_augment"] == "random_resized_crop"
    assert "features" not in get_profile("sound").hparams_for("fewshot")
    assert switches_in_effect("m", "nih", "fewshot", {})["fewshot_cached_features"] == "cached"
