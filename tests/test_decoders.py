"""Decoders on frozen patch maps: full-resolution logits for ViT and CNN map sets, real values."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from radbench_core.errors import ConfigError
from radbench_core.protocols.decoders import LinearDecoder, UNetDecoder, build_decoder

SMALL = (8, 8, 8, 8)


def vit_maps(res: int, patch: int, dim: int = 12, batch: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(res * 100 + patch)
    grid = res // patch
    return [torch.randn(batch, dim, grid, grid, generator=g) for _ in range(4)]


def cnn_maps(res: int, channels=(4, 6, 8, 10), strides=(4, 8, 16, 32), batch: int = 1):
    g = torch.Generator().manual_seed(res)
    return [torch.randn(batch, c, -(-res // s), -(-res // s), generator=g) for c, s in zip(channels, strides)]


@pytest.mark.parametrize("res", [112, 224, 448])
@pytest.mark.parametrize("patch", [14, 16])
@pytest.mark.parametrize("kind", ["linear", "unet"])
def test_vit_maps_give_full_resolution_logits(res, patch, kind):
    maps = vit_maps(res, patch)
    dec = build_decoder(kind, [12] * 4, [patch] * 4, num_classes=3, channels=SMALL).eval()
    with torch.no_grad():
        out = dec(maps, res)
    assert out.shape == (1, 3, res, res)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("res", [112, 224, 448])
@pytest.mark.parametrize("kind", ["linear", "unet"])
def test_cnn_stage_maps_give_full_resolution_logits(res, kind):
    maps = cnn_maps(res)
    dec = build_decoder(kind, (4, 6, 8, 10), (4, 8, 16, 32), num_classes=4, channels=SMALL).eval()
    with torch.no_grad():
        out = dec(maps, (res, res))
    assert out.shape == (1, 4, res, res)


def test_tiny_timm_vit_maps_feed_both_decoders():
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=56, patch_size=14,
                            embed_dim=16, depth=4, num_heads=2, num_classes=0).eval()
    x = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = vit.forward_intermediates(x, indices=4, intermediates_only=True)
        for kind in ("linear", "unet"):
            out = build_decoder(kind, [16] * 4, [14] * 4, 2, channels=SMALL).eval()(maps, 56)
            assert out.shape == (2, 2, 56, 56)


def test_skip_sources_resample_vit_and_keep_cnn_native():
    vit = UNetDecoder([8] * 4, [14] * 4, 2, SMALL)
    assert vit.resample and vit.skip_of_block == [3, 2, 1, 0]
    cnn = UNetDecoder((4, 6, 8, 10), (4, 8, 16, 32), 2, SMALL)
    assert not cnn.resample and cnn.skip_of_block == [2, 1, 0, None]
    # CNN maps are used at their native sizes: block k's level is the native size of its skip
    sizes = cnn._level_sizes(cnn_maps(224), (224, 224))
    assert sizes == [(7, 7), (14, 14), (28, 28), (56, 56), (112, 112)]
    # ViT levels are 1/16 .. 1/1 of the input, whatever the patch grid
    assert vit._level_sizes(vit_maps(448, 14), (448, 448)) == [(28, 28), (56, 56), (112, 112),
                                                               (224, 224), (448, 448)]


def test_linear_decoder_equals_batchnorm_conv_upsample_reference():
    torch.manual_seed(0)
    dec = LinearDecoder([5, 5, 5, 7], num_classes=3).eval()
    with torch.no_grad():
        dec.classifier.weight.normal_()
        dec.classifier.bias.normal_()
        dec.norm.running_mean.uniform_(-1, 1)
        dec.norm.running_var.uniform_(0.5, 2.0)
    maps = [torch.randn(2, 5, 4, 4) for _ in range(3)] + [torch.randn(2, 7, 4, 4)]
    x = maps[-1]
    normed = (x - dec.norm.running_mean[None, :, None, None]) / torch.sqrt(
        dec.norm.running_var[None, :, None, None] + dec.norm.eps)
    normed = normed * dec.norm.weight[None, :, None, None] + dec.norm.bias[None, :, None, None]
    logits = torch.einsum("bchw,kc->bkhw", normed, dec.classifier.weight[:, :, 0, 0])
    logits = logits + dec.classifier.bias[None, :, None, None]
    ref = F.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(dec(maps, 32), ref, rtol=1e-5, atol=1e-5)


def test_unet_gradients_reach_every_parameter():
    dec = UNetDecoder([6] * 4, [16] * 4, 3, SMALL)
    maps = vit_maps(64, 16, dim=6, batch=2)
    dec(maps, 64).square().mean().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@settings(max_examples=20, deadline=None)
@given(res=st.integers(16, 96), patch=st.sampled_from([8, 14, 16]), kind=st.sampled_from(["linear", "unet"]),
       batch=st.integers(1, 2))
def test_any_size_gives_logits_at_that_size(res, patch, kind, batch):
    if res < patch:
        res = patch
    maps = vit_maps(res, patch, dim=4, batch=batch)
    dec = build_decoder(kind, [4] * 4, [patch] * 4, 2, channels=(4, 4, 4, 4)).eval()
    with torch.no_grad():
        assert dec(maps, res).shape == (batch, 2, res, res)


def test_unknown_decoder_kind_names_the_option():
    with pytest.raises(ConfigError, match=r"hparams\['decoder'\].*unknown decoder 'mlp'.*linear, unet"):
        build_decoder("mlp", [4] * 4, [14] * 4, 2)


def test_wrong_maps_are_rejected_with_a_fix():
    dec = UNetDecoder([4] * 4, [14] * 4, 2, SMALL)
    with pytest.raises(ConfigError, match="expected 4 patch maps, got 3.*patch_maps"):
        dec(vit_maps(56, 14, dim=4)[:3], 56)
    with pytest.raises(ConfigError, match=r"map 0 has shape \(1, 5, 4, 4\), expected \(B, 4, h, w\)"):
        dec([torch.zeros(1, 5, 4, 4)] + vit_maps(56, 14, dim=4)[1:], 56)
    with pytest.raises(ConfigError, match="not shallow to deep.*finest to the coarsest"):
        UNetDecoder([4] * 4, [32, 16, 8, 4], 2, SMALL)
    with pytest.raises(ConfigError, match="4 map channels.*4 decoder channels"):
        UNetDecoder([4] * 3, [14] * 3, 2, SMALL)


@pytest.mark.parametrize("model_id", ["dinov2_vitl14", "resnet152"])
def test_real_demo_backbones_feed_both_decoders(model_id):
    from radbench_core.features import load_backbone
    for res in (112, 224):
        backbone = load_backbone(model_id, demo=True, resolution=res).frozen()
        x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(res))
        with torch.no_grad():
            maps = backbone.patch_maps(x)
            for kind in ("linear", "unet"):
                dec = build_decoder(kind, backbone.map_channels, backbone.map_strides, 3, SMALL).eval()
                assert dec(maps, res).shape == (1, 3, res, res)
