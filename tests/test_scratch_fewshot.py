"""Figure 5's supervised MC comparison: U-Net / TransUNet from scratch on n training images."""

from __future__ import annotations

import math

from radbench_core.core.cells import Cell
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.config.profiles import Grid, Profile, applicable, get_profile
from radbench_core.run.runner import BackbonePool, RunContext, run_cell


def test_scratch_fewshot_applies_to_scratch_models_on_mc_only():
    assert applicable(Cell("unet", "mc", "scratch_fewshot", "4"))
    assert not applicable(Cell("unet", "amos", "scratch_fewshot", "4"))
    assert not applicable(Cell("dinov2_vitl14", "mc", "scratch_fewshot", "4"))
    paper = {c.id for c in get_profile("paper").cells()}
    assert {f"{m}-mc-scratch_fewshot@{n}" for m in ("unet", "transunet") for n in (1, 2, 4, 8, 16)} <= paper
    assert not any(c.endswith("@all") for c in paper)     # the "All" points are the T5/T6 cells


def test_scratch_fewshot_trains_the_whole_net_on_n_images_per_seed(tmp_path):
    demo = get_profile("demo")
    hparams = {k: dict(v) for k, v in demo.hparams.items()}
    hparams["scratch_fewshot"].update(epochs=2, bootstrap_resamples=20, n_examples=0)
    profile = Profile(name="tiny", description="test", demo=True,
                      grids=(Grid(("unet",), ("mc",), ("scratch_fewshot@2",)),), hparams=hparams,
                      cls_resolution=64, phantom_size="tiny", batch_size=8, num_workers=0)
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    rec = run_cell(Cell("unet", "mc", "scratch_fewshot", "2"), ctx, BackbonePool(),
                   FeatureCache(tmp_path / "cache" / "features"))
    seeds = hparams["scratch_fewshot"]["seeds"]
    assert len(rec.extra["per_seed"]) == len(seeds)
    detail = rec.extra["per_seed_detail"]
    assert all(len(d["chosen"]["train_items"]) == 2 for d in detail)
    assert detail[0]["chosen"]["train_items"] != detail[1]["chosen"]["train_items"] or len(seeds) == 1
    assert math.isfinite(rec.metrics["dice_jaccard"].value) and rec.params_trainable == rec.params_total


def test_the_study_switch_trains_once_on_its_evenly_spaced_images(tmp_path):
    """Switch seg_fewshot_random_seeds: one run on np.arange(0, n, n / shots).round() (wrappers.py:17)."""
    import numpy as np
    demo = get_profile("demo")
    hparams = {k: dict(v) for k, v in demo.hparams.items()}
    hparams["scratch_fewshot"].update(epochs=1, bootstrap_resamples=20, n_examples=0, seeds=[0, 1, 2])
    profile = Profile(name="tiny", description="test", demo=True,
                      grids=(Grid(("unet",), ("mc",), ("scratch_fewshot@3",)),), hparams=hparams,
                      cls_resolution=64, phantom_size="tiny", batch_size=8, num_workers=0,
                      switches={"seg_fewshot_random_seeds": "systematic"})
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    rec = run_cell(Cell("unet", "mc", "scratch_fewshot", "3"), ctx, BackbonePool(),
                   FeatureCache(tmp_path / "cache" / "features"))
    n_train = rec.extra["n_items"]["train"]
    (detail,) = rec.extra["per_seed_detail"]
    assert detail["chosen"]["train_items"] == np.arange(0, n_train, n_train / 3).round().astype(int).tolist()
    assert rec.switches["seg_fewshot_random_seeds"] == "systematic"


def test_an_unknown_fewshot_sample_is_a_config_error():
    import pytest
    from radbench_core.core.errors import ConfigError
    from radbench_core.protocols.segmentation import _fewshot_sample
    assert _fewshot_sample({}) == "random" and _fewshot_sample({"fewshot_sample": "systematic"}) == "systematic"
    with pytest.raises(ConfigError, match="fewshot_sample"):
        _fewshot_sample({"fewshot_sample": "first"})
