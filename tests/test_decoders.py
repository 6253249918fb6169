"""The study's decoders (repo dinov2/eval/segmentation/utils.py): structure, Table 6 sizes, values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from radbench_core.core.errors import ConfigError
from radbench_core.models.specs import get_model
from radbench_core.protocols.decoders import (LinearDecoder, UNetDecoder, build_decoder, parameter_counts,
                                              unet_widths)


def vit_maps(res: int, patch: int, dim: int = 12, batch: int = 1, n: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(res * 100 + patch)
    grid = res // patch
    return [torch.randn(batch, dim, grid, grid, generator=g) for _ in range(n)]


def unet_params_by_hand(dim: int, num_classes: int) -> int:
    """Up block: transposed conv 2x2 (+bias), skip conv3x3 D->w (+bias) + BN, conv3x3 2w->w + BN."""
    total, cin = 0, dim
    for w in (dim // 2, dim // 4, dim // 8, num_classes):
        total += cin * w * 4 + w                     # upconv
        total += dim * w * 9 + w + 2 * w             # skip_conv + its batch norm
        total += 2 * w * w * 9 + w + 2 * w           # conv + its batch norm
        cin = w
    return total


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- structure and sizes
def test_unet_decoder_has_the_studys_layers():
    with torch.device("meta"):
        dec = UNetDecoder([1024] * 5, [14] * 5, num_classes=1)
    assert unet_widths(1024, 1) == (512, 256, 128, 1)
    assert len(dec.ups) == 4
    cin = 1024
    for up, w in zip(dec.ups, (512, 256, 128, 1)):
        assert isinstance(up.upconv, nn.ConvTranspose2d)
        assert (up.upconv.in_channels, up.upconv.out_channels) == (cin, w)
        assert up.upconv.kernel_size == (2, 2) and up.upconv.stride == (2, 2)
        for unit, c_in in ((up.skip_conv, 1024), (up.conv, 2 * w)):
            conv, bn, relu = unit
            assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
            assert (conv.in_channels, conv.out_channels) == (c_in, w) and conv.bias is not None
            assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == w and isinstance(relu, nn.ReLU)
        cin = w


@pytest.mark.parametrize("dim, classes", [(1024, 1), (1536, 1), (1024, 16), (64, 3)])
def test_unet_parameter_count_matches_the_hand_formula(dim, classes):
    with torch.device("meta"):
        dec = UNetDecoder([dim] * 5, [14] * 5, num_classes=classes)
    assert n_params(dec) == unet_params_by_hand(dim, classes)


@pytest.mark.parametrize("model_id, dim, study_trainable_m, study_pct, study_total_m", [
    ("dinov2_vitl14", 1024, 17, 5, 317), ("dinov2_vitg14", 1536, 38, 3, 1138)])
def test_table6_parameter_counts(model_id, dim, study_trainable_m, study_pct, study_total_m):
    trainable, total = parameter_counts(model_id, "unet", 448, num_classes=1)
    assert trainable == unet_params_by_hand(dim, 1)
    # the study prints truncated millions (38.73M -> "38M") and percentages (3.3% -> "3%")
    assert int(trainable / 1e6) == study_trainable_m
    assert int(100 * trainable / total) == study_pct
    # the study's total is its nominal backbone size (300M / 1,100M, Table 2) plus the decoder
    assert int(get_model(model_id).study_params_m + trainable / 1e6) == study_total_m
    assert parameter_counts(model_id, "unet", 224) == (trainable, total)      # no resolution dependence


def test_linear_decoder_size_and_counts():
    trainable, total = parameter_counts("dinov2_vitl14", "linear", 448, num_classes=3)
    assert trainable == 1024 * 3 + 3
    assert total - trainable == parameter_counts("dinov2_vitl14", "unet", 448)[1] - \
        parameter_counts("dinov2_vitl14", "unet", 448)[0]
    with pytest.raises(ConfigError, match="not a ViT backbone"):
        parameter_counts("resnet152", "unet", 224)
    with pytest.raises(ConfigError, match="resolution"):
        parameter_counts("dinov2_vitl14", "unet", 450)


# --------------------------------------------------------------------------- values
def _bn_eval(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def _unit(x: torch.Tensor, unit: nn.Sequential) -> torch.Tensor:
    conv, bn, _ = unit
    return torch.clamp(_bn_eval(F.conv2d(x, conv.weight, conv.bias, padding=1), bn), min=0)


def test_unet_forward_equals_a_functional_reference_of_the_study():
    torch.manual_seed(0)
    dec = UNetDecoder([16] * 5, [14] * 5, num_classes=3).eval()
    with torch.no_grad():
        for m in dec.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    maps = vit_maps(56, 14, dim=16, batch=2)                 # 4x4 grid, 5 maps shallow to deep
    x = maps[4]                                              # bottleneck: the last block
    for up, skip in zip(dec.ups, (maps[3], maps[2], maps[1], maps[0])):   # skips deepest first
        x = F.conv_transpose2d(x, up.upconv.weight, up.upconv.bias, stride=2)
        s = F.interpolate(_unit(skip, up.skip_conv), size=x.shape[-2:], mode="bilinear", align_corners=True)
        x = _unit(torch.cat([x, s], dim=1), up.conv)
    assert x.shape[-2:] == (64, 64)                          # 16x the patch grid
    ref = F.interpolate(x, size=(56, 56), mode="bicubic", align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(dec(maps, 56), ref, rtol=1e-4, atol=1e-5)
        assert dec(maps, 64).shape == (2, 3, 64, 64)
        assert (dec(maps, 64) >= 0).all()                    # the last block's ReLU, as in the study


def test_linear_decoder_is_a_1x1_conv_on_the_last_block_then_bilinear():
    torch.manual_seed(0)
    dec = LinearDecoder([7] * 5, num_classes=3)
    assert dec.classifier.bias.abs().sum() == 0
    assert 0.005 < float(dec.classifier.weight.detach().std()) < 0.02                     # N(0, 0.01)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in dec.modules())
    with torch.no_grad():
        dec.classifier.weight.normal_()
        dec.classifier.bias.normal_()
    maps = vit_maps(56, 14, dim=7, batch=2)
    logits = torch.einsum("bchw,kc->bkhw", maps[-1], dec.classifier.weight[:, :, 0, 0])
    ref = F.interpolate(logits + dec.classifier.bias.view(1, -1, 1, 1), size=(32, 32), mode="bilinear",
                        align_corners=False)
    with torch.no_grad():
        torch.testing.assert_close(dec(maps, 32), ref, rtol=1e-5, atol=1e-5)
        other = [m + 1.0 for m in maps[:4]] + [maps[4]]
        torch.testing.assert_close(dec(other, 32), ref, rtol=1e-5, atol=1e-5)     # earlier blocks unused


def test_unet_gradients_reach_every_parameter():
    dec = UNetDecoder([16] * 5, [16] * 5, 3)
    dec(vit_maps(64, 16, dim=16, batch=2), 64).square().mean().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@settings(max_examples=20, deadline=None)
@given(cells=st.integers(1, 7), patch=st.sampled_from([8, 14, 16]), kind=st.sampled_from(["linear", "unet"]),
       batch=st.integers(1, 2), extra=st.integers(0, 5))
def test_any_size_gives_logits_at_that_size(cells, patch, kind, batch, extra):
    res = cells * patch
    dec = build_decoder(kind, [16] * 5, [patch] * 5, 2).eval()
    with torch.no_grad():
        assert dec(vit_maps(res, patch, dim=16, batch=batch), res + extra).shape == (batch, 2, res + extra,
                                                                                     res + extra)


# --------------------------------------------------------------------------- errors and backbones
def test_unknown_decoder_kind_names_the_option():
    with pytest.raises(ConfigError, match=r"hparams\['decoder'\].*unknown decoder 'mlp'.*linear, unet"):
        build_decoder("mlp", [4] * 5, [14] * 5, 2)


def test_wrong_maps_are_rejected_with_a_fix():
    dec = UNetDecoder([16] * 5, [14] * 5, 2)
    with pytest.raises(ConfigError, match="expected 5 patch maps, got 4.*last 5 blocks"):
        dec(vit_maps(56, 14, dim=16)[:4], 56)
    with pytest.raises(ConfigError, match=r"map 0 has shape \(1, 5, 4, 4\), expected \(B, 16, h, w\)"):
        dec([torch.zeros(1, 5, 4, 4)] + vit_maps(56, 14, dim=16)[1:], 56)
    with pytest.raises(ConfigError, match="5 maps of one width at one stride.*ViT"):
        UNetDecoder((4, 6, 8, 10), (4, 8, 16, 32), 2)           # CNN stage maps
    with pytest.raises(ConfigError, match="too small"):
        UNetDecoder([4] * 5, [14] * 5, 2)


def test_demo_backbone_gives_its_last_five_blocks_to_both_decoders():
    from radbench_core.models.features import load_backbone
    backbone = load_backbone("dinov2_vitl14", demo=True, resolution=112).frozen()
    depth = len(backbone.model.blocks)
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps = backbone.patch_maps(x)
        ref = backbone.model.forward_intermediates(x, indices=list(range(depth)), norm=True,
                                                   output_fmt="NCHW", intermediates_only=True)
        assert len(maps) == 5 == len(backbone.map_channels) == len(backbone.map_strides)
        want = [max(0, depth - 5 + i) for i in range(5)]          # demo depth 4 repeats block 0
        for m, b in zip(maps, want):
            torch.testing.assert_close(m, ref[b])
        for kind in ("linear", "unet"):
            dec = build_decoder(kind, backbone.map_channels, backbone.map_strides, 3).eval()
            assert dec(maps, 112).shape == (1, 3, 112, 112)
