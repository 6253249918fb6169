"""Switch ``input_norm_per_model``: the study fed every model ImageNet mean/std.

Observed on the computation: the constants the runner's input transform is built with for a real
cell under each value, and the tensor a backbone's own ``normalize`` produces.
"""

from __future__ import annotations

import torch

from radbench_core.config.profiles import Grid, Profile, _hparams
from radbench_core.config.switches import NON_IMAGENET_MODELS, SCRATCH_MODELS, switches
from radbench_core.core.cells import Cell
from radbench_core.data.datasets import transforms
from radbench_core.models.features import load_backbone, with_input_norm
from radbench_core.models.specs import FRONTIER, IMAGENET_MEAN, IMAGENET_STD, MODELS, preprocessing


def test_the_switch_names_exactly_the_models_whose_constants_are_not_imagenet():
    differ = {m for m, spec in MODELS.items() if spec.arch in ("vit", "sam", "cnn") and m not in FRONTIER
              and tuple(map(tuple, preprocessing(spec))) != (IMAGENET_MEAN, IMAGENET_STD)}
    assert differ == set(NON_IMAGENET_MODELS)
    assert set(switches()["input_norm_per_model"].models) == differ | set(SCRATCH_MODELS)


def test_a_renormalised_backbone_feeds_imagenet_scaled_tensors_and_leaves_the_original():
    original = load_backbone("vit_l16_in21k", demo=True, resolution=32, weights_dir=None, device="cpu")
    x = torch.rand(2, 1, 32, 32)
    study = with_input_norm(original, IMAGENET_MEAN, IMAGENET_STD)
    want = (x.expand(-1, 3, -1, -1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(study.normalize(x), want)
    torch.testing.assert_close(original.normalize(x), (x.expand(-1, 3, -1, -1) - 0.5) / 0.5)
    assert study.model is original.model and original.mean == (0.5, 0.5, 0.5)
    assert with_input_norm(original, original.mean, original.std) is original


def test_a_cell_builds_its_inputs_with_the_switched_constants(tmp_path, monkeypatch):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    built: list[tuple] = []
    real = transforms.ModelTransform.__init__

    def spy(self, resolution, mean, std, **kw):
        built.append(tuple(float(m) for m in mean))
        real(self, resolution, mean, std, **kw)
    monkeypatch.setattr(transforms.ModelTransform, "__init__", spy)
    for value, mean in (("imagenet", IMAGENET_MEAN), ("model", (0.5, 0.5, 0.5))):
        built.clear()
        profile = Profile(name="t", description="test", demo=True,
                          grids=(Grid(("vit_l16_in21k",), ("nih",), ("knn",)),),
                          hparams=_hparams(paper=False), cls_resolution=32, phantom_size="tiny",
                          batch_size=16, num_workers=0, switches={"input_norm_per_model": value})
        ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
        rec = run_cell(Cell("vit_l16_in21k", "nih", "knn"), ctx, BackbonePool(),
                       FeatureCache(tmp_path / "cache" / "features"))
        assert built and set(built) == {tuple(mean)}, value
        assert rec.switches["input_norm_per_model"] == value
        assert ("input_norm_per_model" in rec.deviations) == (value == "model")


def test_a_scratch_cell_builds_its_inputs_with_the_switched_constants(tmp_path, monkeypatch):
    """The study's U-Net / TransUNet notebooks normalise with ImageNet mean/std; ours with 0.5 / 0.5."""
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    built: list[tuple] = []
    real = transforms.ModelTransform.__init__

    def spy(self, resolution, mean, std, **kw):
        built.append((tuple(float(m) for m in mean), tuple(float(s) for s in std)))
        real(self, resolution, mean, std, **kw)
    monkeypatch.setattr(transforms.ModelTransform, "__init__", spy)
    for value, want in (("imagenet", (IMAGENET_MEAN, IMAGENET_STD)), ("model", ((0.5,) * 3, (0.5,) * 3))):
        built.clear()
        hp = _hparams(paper=False)
        hp["scratch"] = {**hp["scratch"], "epochs": 1, "lrs": [1e-2]}
        profile = Profile(name="t", description="test", demo=True,
                          grids=(Grid(("unet",), ("mc",), ("scratch@32",)),),
                          hparams=hp, phantom_size="tiny",
                          batch_size=8, num_workers=0, switches={"input_norm_per_model": value})
        ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
        rec = run_cell(Cell("unet", "mc", "scratch", "32"), ctx, BackbonePool(),
                       FeatureCache(tmp_path / "cache" / "features"))
        assert built and set(built) == {tuple(map(tuple, want))}, value
        assert rec.switches["input_norm_per_model"] == value
        assert ("input_norm_per_model" in rec.deviations) == (value == "model")
