"""The study's linear probe through run_cell: heads trained on a fresh augmentation every epoch."""

from __future__ import annotations

import numpy as np

from radbench_core.run import extraction
from radbench_core.core.cells import Cell
from radbench_core.run.feature_cache import FeatureCache
from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.run.inputs import augmented_features
from radbench_core.run.runner import BackbonePool, RunContext, load_index, run_cell


def profile(features: str, epochs: int = 3) -> Profile:
    hparams = _hparams(paper=False)
    hparams["linear"] = {**hparams["linear"], "features": features, "epochs": epochs, "lrs": (1e-1,)}
    return Profile(name="aug", description="test", demo=True,
                   grids=(Grid(("dinov2_vits14",), ("nih",), ("linear",)),), hparams=hparams,
                   cls_resolution=56, phantom_size="tiny", batch_size=16, num_workers=0)


def test_augmented_cell_runs_one_backbone_pass_per_epoch_and_records_it(tmp_path):
    cell = Cell("dinov2_vits14", "nih", "linear")
    cache = FeatureCache(tmp_path / "cache" / "features")
    cached_ctx = RunContext(profile=profile("cached"), cache_dir=tmp_path / "cache", progress=False)
    pool = BackbonePool()
    cached = run_cell(cell, cached_ctx, pool, cache)            # fills the cache (val/test come from it)
    before = extraction.FORWARD_BATCHES
    aug_ctx = RunContext(profile=profile("augmented"), cache_dir=tmp_path / "cache", progress=False)
    augmented = run_cell(cell, aug_ctx, pool, cache)
    index, _ = load_index("nih", aug_ctx)
    n_train, n_val = len(index.splits["train"]), len(index.splits["val"])
    refit = augmented.hparams["epochs"]
    batches = lambda n: -(-n // 16)                              # noqa: E731
    assert extraction.FORWARD_BATCHES - before == 3 * batches(n_train) + refit * (
        batches(n_train) + batches(n_val)), "one pass over train per epoch, + val in the refit"
    assert (augmented.hparams["features"], cached.hparams["features"]) == ("augmented", "cached")
    assert 0.0 <= augmented.metrics["auroc"].value <= 1.0
    assert "linear_cached_features" not in augmented.deviations


def test_each_epoch_is_a_new_reproducible_augmentation_draw(tmp_path):
    ctx = RunContext(profile=profile("augmented"), cache_dir=tmp_path / "cache", progress=False)
    index, _ = load_index("nih", ctx)
    backbone = BackbonePool().get("dinov2_vits14", demo=True, resolution=56, weights_dir=None, device="cpu")
    draws = augmented_features(index, backbone, Cell("dinov2_vits14", "nih", "linear"), 56, ctx)
    first, again, second = draws["train"](0), draws["train"](0), draws["train"](1)
    assert first["cls"].shape == (len(index.splits["train"]), 4, backbone.embed_dim)
    np.testing.assert_array_equal(first["cls"], again["cls"])
    assert not np.allclose(first["cls"], second["cls"])
