"""Switches ``cls_augment_square_crop``, ``knn_plain_resize`` and ``table8_cap_every_split``.

Observed on the computation: the study's training augmentation against torchvision's own
RandomResizedCrop + RandomHorizontalFlip under the same seed; the tensor a kNN cell feeds the
backbone against torchvision's Resize + CenterCrop; the items a Table 8 cell loads per split against
the study's SystemicSamplerWrapper expression.
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
from radbench_core.data.datasets import splits as splits_mod
from radbench_core.data.datasets.transforms import ClassificationAugment, ModelTransform, center_crop
from radbench_core.protocols import PROTOCOLS
from radbench_core.run import inputs as inputs_mod
from radbench_core.run.runner import RunContext, cell_hparams, load_index, load_options_of


@pytest.mark.parametrize("seed", range(6))
def test_study_augment_is_torchvisions_random_resized_crop_and_flip(seed):
    image = torch.rand(37, 53)
    study = ClassificationAugment(kind="random_resized_crop", resolution=24)
    ours_img, _ = study(image, None, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    ref = tv.Compose([tv.RandomResizedCrop((24, 24), scale=(0.75, 1), interpolation=InterpolationMode.BICUBIC,
                                           antialias=False), tv.RandomHorizontalFlip(0.5)])(image[None])[0]
    torch.testing.assert_close(ours_img, ref, rtol=1e-5, atol=1e-5)


def test_study_crops_change_aspect_ratio_and_ours_never_do():
    image = torch.arange(60 * 60, dtype=torch.float32).view(60, 60)
    boxes = {"square_crop": set(), "random_resized_crop": set()}
    for kind in boxes:
        aug = ClassificationAugment(kind=kind, resolution=60, flip_p=0.0)
        for s in range(40):
            out, _ = aug(image, None, torch.Generator().manual_seed(s))
            if kind == "square_crop":
                boxes[kind].add(round(out.shape[-1] / out.shape[-2], 2))
            else:                                  # resized to 60 x 60: read the ratio off the ramp
                assert out.shape == (60, 60)
                rows = (out[-1, 30] - out[0, 30]) / 60
                cols = (out[30, -1] - out[30, 0])
                boxes[kind].add(round(float(rows / cols), 2))
    assert boxes["square_crop"] == {1.0}
    assert min(boxes["random_resized_crop"]) < 0.9 and max(boxes["random_resized_crop"]) > 1.1
    with pytest.raises(ConfigError, match="cls_augment"):
        ClassificationAugment(kind="random_resized_crop")              # needs the input size


def test_knn_study_input_is_resize_then_centre_crop():
    image = torch.rand(50, 70)
    t = ModelTransform(28, (0.5,) * 3, (0.25,) * 3, crop_from=32)
    big = tv.functional.resize(image[None], [32, 32], InterpolationMode.BILINEAR, antialias=True)
    ref = (tv.functional.center_crop(big, [28, 28]).expand(3, -1, -1) - 0.5) / 0.25
    torch.testing.assert_close(t(image), ref, rtol=1e-5, atol=1e-5)
    assert center_crop(torch.zeros(5, 9), 3).shape == (3, 3)
    assert inputs_mod.knn_crop_from({"knn_input": "resize256_crop224"}, 224) == 256
    assert inputs_mod.knn_crop_from({}, 224) is None
    with pytest.raises(ConfigError, match="knn_input"):
        inputs_mod.knn_crop_from({"knn_input": "crop"}, 224)


def _knn_profile(value: str | None) -> Profile:
    return Profile(name="t", description="test", demo=True, grids=(Grid(("dinov2_vits14",), ("nih",), ("knn",)),),
                   hparams=_hparams(paper=False), cls_resolution=42, phantom_size="tiny", batch_size=16,
                   num_workers=0, switches={} if value is None else {"knn_plain_resize": value})


def test_a_knn_cell_feeds_the_backbone_the_switched_tensor(tmp_path, monkeypatch):
    """The first image the backbone receives in a real demo kNN cell, under each value."""
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, run_cell
    seen: dict[str, torch.Tensor] = {}
    real = inputs_mod.extract_splits

    def spy(backbone, datasets, **kw):
        seen["first"] = datasets["train"][0]["image"]
        seen["slice"] = torch.as_tensor(np.asarray(datasets["train"]._decoded(0)[0][0], dtype=np.float32))
        seen["mean"], seen["std"] = backbone.mean, backbone.std
        return real(backbone, datasets, **kw)
    monkeypatch.setattr(inputs_mod, "extract_splits", spy)
    got = {}
    for value in ("resize256_crop224", "resize"):
        ctx = RunContext(profile=_knn_profile(value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        rec = run_cell(Cell("dinov2_vits14", "nih", "knn"), ctx, BackbonePool(),
                       FeatureCache(tmp_path / "c" / "features"))
        got[value] = seen.pop("first")
        mean = torch.tensor(seen["mean"]).view(3, 1, 1)
        std = torch.tensor(seen["std"]).view(3, 1, 1)
        size = 48 if value == "resize256_crop224" else 42          # 42 * 256 / 224 = 48
        ref = tv.functional.resize(seen["slice"][None], [size, size], InterpolationMode.BILINEAR,
                                   antialias=True)
        ref = tv.functional.center_crop(ref, [42, 42])
        torch.testing.assert_close(got[value], (ref.expand(3, -1, -1) - mean) / std, rtol=1e-4, atol=1e-4)
        assert rec.switches["knn_plain_resize"] == value
        assert ("knn_plain_resize" in rec.deviations) == (value == "resize")
    assert not torch.allclose(got["resize"], got["resize256_crop224"])


def _split_sizes(tmp_path, side: str, cap: int) -> dict[str, list[str]]:
    profile = get_profile("demo").extend("t", hparams={"linear_subset": {"max_items": cap}},
                                         switches={"table8_cap_every_split": side})
    ctx = RunContext(profile=profile, cache_dir=tmp_path / "cache", run_dir=tmp_path, progress=False)
    cell = Cell("dinov2_vits14", "nih", "linear_subset", "112")
    options = load_options_of("nih", ctx, cell_hparams(cell, PROTOCOLS["linear_subset"], profile))
    index, _ = load_index("nih", ctx, options)
    return {s: [index.items[i].key for i in index.splits[s]] for s in ("train", "val", "test")}


def test_table8_study_caps_train_only_with_the_studys_systematic_rows(tmp_path, monkeypatch):
    full = _split_sizes(tmp_path, "every", 10**6)
    study = _split_sizes(tmp_path, "train", 7)
    ours = _split_sizes(tmp_path, "every", 7)
    assert study["val"] == full["val"] and study["test"] == full["test"]
    assert [len(ours[s]) for s in ("train", "val", "test")] == [7, 7, 7]
    # the rows: the study's SystemicSamplerWrapper (wrappers.py:29) written out; ours centres
    # each stride (splits._spread)
    n = len(full["train"])
    assert study["train"] == [full["train"][j] for j in np.arange(0, n, n / 7).round().astype("int")]
    assert ours["train"] == [full["train"][j] for j in splits_mod._spread(n, 7)]
    assert study["train"] != ours["train"]


def test_an_unknown_subset_splits_value_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="subset_splits"):
        _split_sizes(tmp_path, "val", 7)


def test_the_augmented_features_of_a_linear_cell_use_the_switched_augment(tmp_path, monkeypatch):
    from types import SimpleNamespace
    from radbench_core.data.datasets import transforms
    kinds: list[str] = []
    real = transforms.ClassificationAugment.__init__

    def spy(self, *args, **kw):
        kinds.append(kw.get("kind", "square_crop"))
        real(self, *args, **kw)
    monkeypatch.setattr(transforms.ClassificationAugment, "__init__", spy)
    ctx = RunContext(profile=get_profile("demo"), cache_dir=tmp_path, run_dir=tmp_path, progress=False)
    index, _ = load_index("nih", ctx)
    backbone = SimpleNamespace(mean=(0.5,) * 3, std=(0.5,) * 3)
    for kind in ("random_resized_crop", "square_crop"):
        inputs_mod.augmented_features(index, backbone, Cell("dinov2_vits14", "nih", "linear"), 42, ctx,
                                      augment_kind=kind)
        assert kinds[-2:] == [kind, kind]          # train and val draws
    for protocol in ("linear", "linear_subset", "finetune", "lora", "bitfit"):
        assert get_profile("paper").hparams_for(protocol)["cls_augment"] == "random_resized_crop"
        assert "cls_augment" not in get_profile("sound").hparams_for(protocol)
    assert get_profile("paper").hparams_for("fewshot")["cls_augment"] == "random_resized_crop"   # with its augmented heads


def test_the_augment_switch_is_recorded_only_where_augmentation_runs():
    from radbench_core.config.switches import switched_off_study, switches_in_effect
    cached = {"features": "cached", "cls_augment": "square_crop"}
    augmented = {"features": "augmented", "cls_augment": "square_crop"}
    assert "cls_augment_square_crop" not in switches_in_effect("dinov2_vits14", "nih", "linear", cached)
    assert switches_in_effect("dinov2_vits14", "nih", "linear", augmented)["cls_augment_square_crop"] == "square_crop"
    assert "cls_augment_square_crop" in switched_off_study("dinov2_vits14", "nih", "linear", augmented)
    assert "cls_augment_square_crop" in switches_in_effect("dinov2_vits14", "nih", "finetune", {})
