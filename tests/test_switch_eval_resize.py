"""Switch ``cls_eval_resize_antialiased``: the study resized classification inputs bicubic without
antialiasing (torchvision 0.15's Resize on a tensor), then min-maxed the resized image.

Observed on the computation: ModelTransform against the study's transform written with torchvision
(Resize, CenterCrop, its RescaleImage, Normalize) on a hand image; the tensor a real demo linear
cell feeds the backbone, and the one a fine-tune cell's validation split holds, under each value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import transforms as tv
from torchvision.transforms import InterpolationMode

from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.data.datasets.preprocess import to_unit
from radbench_core.data.datasets.transforms import ModelTransform
from radbench_core.run import inputs as inputs_mod

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _hand_image() -> np.ndarray:
    """12-bit-like raw values: a 1-pixel checkerboard (aliases when shrunk) over a ramp, 61 x 83."""
    rows, cols = np.mgrid[0:61, 0:83]
    return (((rows + cols) % 2) * 900 + rows * 20 + cols * 5 + 100).astype(np.float32)


def _study(raw: np.ndarray, size: int, crop: int | None = None) -> torch.Tensor:
    """The study's make_classification_eval_transform on its (3, H, W) float tensor: Resize bicubic
    (antialias=False, what its torchvision 0.15 does on tensors), CenterCrop, RescaleImage (per
    channel min-max, transforms.py:26-39), Normalize."""
    image = torch.from_numpy(np.stack([raw] * 3))
    out = tv.Resize((size, size), interpolation=InterpolationMode.BICUBIC, antialias=False)(image)
    out = tv.CenterCrop((crop or size, crop or size))(out)
    lo = out.reshape(3, -1).min(dim=1)[0].reshape(-1, 1, 1)
    hi = out.reshape(3, -1).max(dim=1)[0].reshape(-1, 1, 1)
    return tv.Normalize(MEAN, STD)((out - lo) / (hi - lo))


def _ours(unit: np.ndarray, size: int) -> torch.Tensor:
    out = tv.functional.resize(torch.from_numpy(unit)[None], [size, size], InterpolationMode.BILINEAR,
                               antialias=True)
    return tv.Normalize(MEAN, STD)(out.expand(3, -1, -1))


@pytest.mark.parametrize("size", [24, 32, 100])
def test_the_study_resize_is_torchvisions_bicubic_without_antialias_then_min_max(size: int):
    raw = _hand_image()
    unit = to_unit(raw)                                 # what a dataset loader hands the transform
    study = ModelTransform(size, MEAN, STD, resize="bicubic")(unit)
    torch.testing.assert_close(study, _study(raw, size), rtol=1e-4, atol=1e-4)
    sound = ModelTransform(size, MEAN, STD)(unit)
    torch.testing.assert_close(sound, _ours(unit, size), rtol=1e-5, atol=1e-5)
    if size < 61:                                        # shrinking: the two differ by far more than rounding
        assert float((study - sound).abs().max()) > 0.5


def test_the_study_knn_input_crops_before_its_min_max():
    raw = _hand_image()
    study = ModelTransform(28, MEAN, STD, crop_from=32, resize="bicubic")(to_unit(raw))
    torch.testing.assert_close(study, _study(raw, 32, crop=28), rtol=1e-4, atol=1e-4)


def test_profiles_set_the_switch_and_a_bad_value_is_a_config_error():
    for protocol in ("knn", "linear", "linear_subset", "fewshot", "finetune", "lora", "bitfit"):
        assert get_profile("paper").hparams_for(protocol)["eval_resize"] == "bicubic"
        assert inputs_mod.eval_resize(get_profile("sound").hparams_for(protocol)) == "bilinear_antialias"
        assert "eval_resize" not in get_profile("demo").hparams_for(protocol)
    assert "eval_resize" not in get_profile("paper").hparams_for("seg_unet")
    with pytest.raises(ConfigError, match="eval_resize"):
        ModelTransform(32, MEAN, STD, resize="bicubic_antialias")


def _profile(protocol: str, value: str) -> Profile:
    return Profile(name="t", description="test", demo=True, grids=(Grid(("dinov2_vits14",), ("nih",), (protocol,)),),
                   hparams=_hparams(paper=False), cls_resolution=42, phantom_size="tiny", batch_size=16,
                   num_workers=0, switches={"cls_eval_resize_antialiased": value})


def _reference(slice_: torch.Tensor, value: str, mean, std) -> torch.Tensor:
    if value == "bicubic":
        out = tv.Resize((42, 42), interpolation=InterpolationMode.BICUBIC, antialias=False)(slice_[None])
        out = (out - out.min()) / (out.max() - out.min())
    else:
        out = tv.functional.resize(slice_[None], [42, 42], InterpolationMode.BILINEAR, antialias=True)
    return (out.expand(3, -1, -1) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_a_demo_linear_cell_feeds_the_backbone_the_switched_tensor(tmp_path, monkeypatch):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    seen: dict = {}
    real = inputs_mod.extract_splits

    def spy(backbone, datasets, **kw):
        seen["first"] = datasets["test"][0]["image"]
        seen["slice"] = torch.as_tensor(np.asarray(datasets["test"]._decoded(0)[0][0], dtype=np.float32))
        seen["mean"], seen["std"] = backbone.mean, backbone.std
        return real(backbone, datasets, **kw)
    monkeypatch.setattr(inputs_mod, "extract_splits", spy)
    got = {}
    for value in ("bicubic", "bilinear_antialias"):
        ctx = RunContext(profile=_profile("linear", value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        rec = run_cell(Cell("dinov2_vits14", "nih", "linear"), ctx, BackbonePool(),
                       FeatureCache(tmp_path / "c" / "features"))
        assert "first" in seen, f"{value}: no extraction (a cache hit across values would be a key bug)"
        got[value] = seen.pop("first")
        torch.testing.assert_close(got[value], _reference(seen["slice"], value, seen["mean"], seen["std"]),
                                   rtol=1e-4, atol=1e-4)
        assert rec.switches["cls_eval_resize_antialiased"] == value
        assert ("cls_eval_resize_antialiased" in rec.deviations) == (value == "bilinear_antialias")
    assert not torch.allclose(got["bicubic"], got["bilinear_antialias"], atol=1e-3)


def test_a_fine_tune_cells_validation_images_are_resized_the_switched_way(tmp_path):
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, load_index
    from radbench_core.protocols import PROTOCOLS
    for value in ("bicubic", "bilinear_antialias"):
        profile = _profile("finetune", value)
        ctx = RunContext(profile=profile, cache_dir=tmp_path / "c", run_dir=tmp_path, progress=False)
        index, _ = load_index("nih", ctx)
        hparams = {**profile.hparams_for("finetune"), "head_lr": 1e-3}        # no probe run here
        setup = inputs_mod.CellSetup(Cell("dinov2_vits14", "nih", "finetune"), PROTOCOLS["finetune"], hparams,
                                     42, index, ctx, BackbonePool(), FeatureCache(tmp_path / "c" / "f"))
        val = inputs_mod.live(setup).inputs.datasets["val"]
        slice_ = torch.as_tensor(np.asarray(val._decoded(0)[0][0], dtype=np.float32))
        bb = setup.pool.get("dinov2_vits14", demo=True, resolution=42, weights_dir=None, device="cpu")
        torch.testing.assert_close(val[0]["image"], _reference(slice_, value, bb.mean, bb.std),
                                   rtol=1e-4, atol=1e-4)
