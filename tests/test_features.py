"""The Backbone feature interface: every registry entry, every feature kind, at the declared shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from radbench_core.core.errors import ConfigError
from radbench_core.models.features import Backbone, load_backbone, spread_blocks
from radbench_core.models.specs import MODELS, count_parameters
from radbench_core.core.results import DEMO_WEIGHTS

BACKBONES = sorted(m for m, s in MODELS.items() if s.arch != "seg_scratch")
_CACHE: dict[tuple[str, int], Backbone] = {}


def demo(model_id: str, resolution: int = 112) -> Backbone:
    if (model_id, resolution) not in _CACHE:
        _CACHE[model_id, resolution] = load_backbone(model_id, demo=True, resolution=resolution)
    return _CACHE[model_id, resolution]


def images(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("model_id", BACKBONES)
def test_every_backbone_returns_its_declared_features(model_id: str) -> None:
    bb, x = demo(model_id), images(2, 112)
    spec = MODELS[model_id]
    assert bb.weights == DEMO_WEIGHTS and bb.resolution == 112 and not bb.training
    with torch.inference_mode():
        pooled, maps, head = bb.pooled(x), bb.patch_maps(x), bb.head_features(x)
    assert pooled["cls"].shape == (2, bb.n_cls_blocks, bb.embed_dim)
    assert head.shape == (2, bb.embed_dim)
    assert ("patch_mean" in pooled) == bb.has_patch_tokens
    assert len(maps) == len(bb.map_channels) == len(bb.map_strides) >= 4
    for fmap, channels, stride in zip(maps, bb.map_channels, bb.map_strides):
        assert fmap.shape[:2] == (2, channels)
        # exact for ViTs; CNN stages round odd sizes down (pooling) or up (strided conv)
        assert fmap.shape[2] in (112 // stride, -(-112 // stride)) and fmap.shape[2] == fmap.shape[3]
    assert list(bb.map_strides) == sorted(bb.map_strides)
    if spec.arch == "vit":
        assert bb.n_cls_blocks == 4 and bb.has_patch_tokens and all(s == spec.patch_size for s in bb.map_strides)
        # the last cls is head_features; the mean patch is the mean of the deepest patch map
        torch.testing.assert_close(pooled["cls"][:, -1], head)
        torch.testing.assert_close(pooled["patch_mean"], maps[-1].mean(dim=(2, 3)))
    elif spec.arch == "sam":
        assert bb.n_cls_blocks == 1
        torch.testing.assert_close(pooled["cls"][:, 0], pooled["patch_mean"])
        torch.testing.assert_close(head, maps[-1].mean(dim=(2, 3)))
    else:
        assert bb.map_strides == (4, 8, 16, 32) and bb.n_cls_blocks == 1
        torch.testing.assert_close(pooled["cls"][:, 0], head)
    assert bb(x).shape == head.shape


@pytest.mark.parametrize("model_id", ["resnet152", "densenet201", "vgg19"])
def test_cnn_maps_are_exact_at_multiples_of_32(model_id: str) -> None:
    bb = demo(model_id, 128)
    with torch.inference_mode():
        maps = bb.patch_maps(images(1, 128))
    assert [m.shape[2:] for m in maps] == [(128 // s, 128 // s) for s in bb.map_strides]
    # VGG's feature is fc7 (4096-d, the study's), the others' the pooled last stage
    assert bb.embed_dim == (4096 if model_id == "vgg19" else bb.map_channels[-1])


def test_vit_at_224_and_dinov2_at_448_interpolate_position_embeddings() -> None:
    for resolution, grid in ((224, 16), (448, 32)):
        bb = demo("dinov2_vits14", resolution)
        with torch.inference_mode():
            maps = bb.patch_maps(images(1, resolution))
            pooled = bb.pooled(images(1, resolution))
        assert maps and all(m.shape == (1, 32, grid, grid) for m in maps)
        assert pooled["cls"].shape == (1, 4, 32)
    assert demo("mae_vitl16", 224).patch_maps(images(1, 224))[0].shape[2:] == (14, 14)


@settings(max_examples=8, deadline=None)
@given(patches=st.integers(3, 12), batch=st.integers(1, 3))
def test_patch_grid_follows_resolution(patches: int, batch: int) -> None:
    resolution = 14 * patches
    bb = load_backbone("dinov2_vitb14", demo=True, resolution=resolution)
    with torch.inference_mode():
        maps = bb.patch_maps(images(batch, resolution))
    assert all(m.shape == (batch, 48, patches, patches) for m in maps)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), model_id=st.sampled_from(["dinov2_vits14", "sam_vitl16", "resnet152"]))
def test_features_of_an_image_do_not_depend_on_its_batch(seed: int, model_id: str) -> None:
    bb, x = demo(model_id), images(3, 112, seed)
    with torch.inference_mode():
        together = bb.pooled(x)["cls"]
        alone = bb.pooled(x[1:2])["cls"]
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-4)


def test_vit_blocks_for_maps_are_the_last_of_each_quarter() -> None:
    assert spread_blocks(24) == [5, 11, 17, 23]
    assert spread_blocks(40) == [9, 19, 29, 39]
    assert spread_blocks(4) == [0, 1, 2, 3]


def test_demo_variants_are_tiny() -> None:
    for model_id in BACKBONES:
        assert count_parameters(demo(model_id))[1] < 1_500_000, model_id


def test_demo_weights_are_seeded_by_id_and_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_backbone("mae_vitl16", demo=True, resolution=112)
    assert torch.equal(torch.rand(3), expected)
    b = load_backbone("mae_vitl16", demo=True, resolution=224)
    other = load_backbone("vit_l16_in21k", demo=True, resolution=112)   # same architecture, other id
    for (name, p), q, r in zip(a.state_dict().items(), b.state_dict().values(), other.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.model.patch_embed.proj.weight, other.model.patch_embed.proj.weight)


def test_demo_weights_are_identical_in_another_process() -> None:
    code = ("import torch; from radbench_core.models.features import load_backbone; "
            "print(float(sum(p.detach().double().sum() for p in load_backbone('sam_vitl16', demo=True).parameters())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    here = float(sum(p.detach().double().sum() for p in demo("sam_vitl16").parameters()))
    assert float(out.stdout.strip()) == here


def test_frozen_and_head_features_gradients() -> None:
    bb = load_backbone("dinov2_vits14", demo=True, resolution=56)
    bb.train()
    bb.head_features(images(2, 56)).square().sum().backward()
    assert bb.model.blocks[-1].attn.qkv.weight.grad is not None
    assert bb.frozen() is bb and not bb.training
    assert count_parameters(bb)[0] == 0 and not bb.model.training


def test_normalize_uses_the_backbone_statistics_and_expands_grayscale() -> None:
    bb = demo("clip_vitl14")
    gray = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = bb.normalize(gray)
    assert out.shape == (2, 3, 8, 8)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (gray[:, 0] - bb.mean[c]) / bb.std[c])
    assert bb.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    with pytest.raises(ConfigError, match=r"expected \(B, 1\|3, H, W\) images, got \(2, 2, 8, 8\)"):
        bb.normalize(torch.zeros(2, 2, 8, 8))


def test_wrong_input_shape_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        demo("dinov2_vits14").pooled(torch.zeros(2, 1, 112, 112))
    assert "dinov2_vits14 input" in str(info.value) and "(2, 1, 112, 112)" in str(info.value)
    assert "Backbone.normalize" in str(info.value)


@pytest.mark.parametrize("model_id, resolution, hint", [("dinov2_vits14", 100, "multiple of the patch size 14"),
                                                        ("sam_vitl16", 120, "multiple of the patch size 16"),
                                                        ("resnet152", 16, "integer >= 32")])
def test_bad_resolution_is_a_config_error(model_id: str, resolution: int, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_backbone(model_id, demo=True, resolution=resolution)
    assert f"model {model_id} resolution" in str(info.value) and hint in str(info.value)
    assert f"got {resolution}" in str(info.value) and "Fix: use e.g." in str(info.value)


def test_scratch_models_and_bad_devices_are_refused() -> None:
    with pytest.raises(ConfigError, match="build_scratch_model"):
        load_backbone("unet", demo=True)
    with pytest.raises(ConfigError, match="unknown model id"):
        load_backbone("dinov3_vitl14", demo=True)
    with pytest.raises(ConfigError, match="'gpu0' is not a torch device"):
        load_backbone("resnet152", demo=True, device="gpu0")


def test_default_resolution_is_the_study_default() -> None:
    bb = load_backbone("resnet152", demo=True)
    assert bb.resolution == MODELS["resnet152"].default_resolution == 224
