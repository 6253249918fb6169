"""protocols/decoders.py pinned layer by layer, on tiny sizes (issue 21, `make mutants`).

Fast (the mutation run re-runs these per mutant): embedding widths 6..33, 1-3 classes, 2x3 patch
grids. Every constructor detail is checked against numbers written out here, not read back from the
module: each layer's type, channels, kernel, stride, padding, bias, the batch norm's eps and momentum,
the ReLU's inplace flag, the absence of anything else (no dropout), the widths D/2, D/4, D/8 (floor
division) and the smallest accepted D. Forwards are compared to references written with
torch.nn.functional and the exact interpolation arguments of the study (bilinear align_corners=False
for the linear decoder's logits, bilinear align_corners=True for the skips, bicubic
align_corners=False for the U-Net's output); each comparison also shows that the other setting gives
a different result, so the test can tell them apart. Every error message is compared whole.
"""

from __future__ import annotations

from collections import Counter

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

# parameter_counts imports these two on its first call; imported here, at collection, that cost is paid
# once and not in every run of `make mutants` (mutmut forks each run from a collected process)
import radbench_core.models.architectures  # noqa: F401
import radbench_core.models.features  # noqa: F401
from radbench_core.core.errors import ConfigError
from radbench_core.protocols.decoders import (DECODER_KINDS, UNET_MAPS, LinearDecoder, UNetDecoder, UpBlock,
                                              _conv_bn_relu, build_decoder, parameter_counts, unet_widths)


def maps_of(channels, grid=(2, 3), batch=2, seed=0) -> list[torch.Tensor]:
    """Distinct random maps (so swapping any two of them changes a decoder's output)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *grid, generator=g) for c in channels]


def raised(fn, *args) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    return str(info.value)


def randomize_batch_norms(module: nn.Module, seed: int = 1) -> None:
    """Non-trivial running statistics and affine parameters, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.5)


def unit_ref(x: torch.Tensor, unit: nn.Sequential) -> torch.Tensor:
    """The study's conv3x3 (bias, padding 1) + eval-mode batch norm (eps 1e-5) + ReLU, functionally."""
    conv, bn = unit[0], unit[1]
    y = F.conv2d(x, conv.weight, conv.bias, stride=1, padding=1)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=1e-5)
    return F.relu(y)


def up_ref(x: torch.Tensor, skip: torch.Tensor, up: nn.Module) -> torch.Tensor:
    x = F.conv_transpose2d(x, up.upconv.weight, up.upconv.bias, stride=2, padding=0)
    s = F.interpolate(unit_ref(skip, up.skip_conv), size=tuple(x.shape[-2:]), mode="bilinear",
                      align_corners=True)
    return unit_ref(torch.cat([x, s], dim=1), up.conv)


def up_block_shapes(prefix: str, cin: int, cout: int, skip: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}upconv.weight": (cin, cout, 2, 2), f"{prefix}upconv.bias": (cout,),
            f"{prefix}skip_conv.0.weight": (cout, skip, 3, 3), f"{prefix}skip_conv.0.bias": (cout,),
            f"{prefix}skip_conv.1.weight": (cout,), f"{prefix}skip_conv.1.bias": (cout,),
            f"{prefix}conv.0.weight": (cout, 2 * cout, 3, 3), f"{prefix}conv.0.bias": (cout,),
            f"{prefix}conv.1.weight": (cout,), f"{prefix}conv.1.bias": (cout,)}


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


# --------------------------------------------------------------------------- constants and widths
def test_module_constants():
    assert DECODER_KINDS == ("linear", "unet")
    assert UNET_MAPS == 5


def test_unet_widths_floor_divide_each_level():
    # 33 is odd and no multiple of 3, 4, 5, 8 or 9: /2, //3, /4, //5, /8, //9 would all differ
    assert unet_widths(33, 2) == (16, 8, 4, 2)
    assert [type(w) for w in unet_widths(33, 2.0)] == [int] * 4
    assert unet_widths(8, 1) == (4, 2, 1, 1)
    assert unet_widths(7, 3) == (3, 1, 0, 3)
    assert unet_widths(1024, 1) == (512, 256, 128, 1)


# --------------------------------------------------------------------------- the conv-BN-ReLU unit
def test_conv_bn_relu_unit_layers():
    unit = _conv_bn_relu(5, 4)
    assert [type(m) for m in unit] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    conv, bn, relu = unit
    assert (conv.in_channels, conv.out_channels) == (5, 4)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
    assert conv.bias is not None and tuple(conv.bias.shape) == (4,)
    assert bn.num_features == 4 and bn.eps == 1e-5 and bn.momentum == 0.1
    assert bn.affine is True and bn.track_running_stats is True
    assert relu.inplace is True
    assert shapes(unit) == {"0.weight": (4, 5, 3, 3), "0.bias": (4,), "1.weight": (4,), "1.bias": (4,)}


def test_conv_bn_relu_unit_training_step_by_hand():
    """Train mode: batch statistics, running stats moved by momentum 0.1 (unbiased variance)."""
    torch.manual_seed(0)
    unit = _conv_bn_relu(3, 2)
    x = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    y = F.conv2d(x, unit[0].weight, unit[0].bias, padding=1)
    mean, var = y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False)
    ref = F.relu((y - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5))
    out = unit(x)
    torch.testing.assert_close(out, ref.detach(), rtol=1e-4, atol=1e-5)
    assert (out == 0).any() and (out > 0).any()
    n = 2 * 4 * 5                                           # values per channel
    torch.testing.assert_close(unit[1].running_mean, 0.1 * mean.detach())
    torch.testing.assert_close(unit[1].running_var, 0.9 + 0.1 * var.detach() * n / (n - 1))


# --------------------------------------------------------------------------- up block
def test_up_block_layers():
    up = UpBlock(6, 4, 10)                      # cin, cout, skip width all different
    assert isinstance(up.upconv, nn.ConvTranspose2d)
    assert (up.upconv.in_channels, up.upconv.out_channels) == (6, 4)
    assert up.upconv.kernel_size == (2, 2) and up.upconv.stride == (2, 2)
    assert up.upconv.padding == (0, 0) and up.upconv.output_padding == (0, 0)
    assert up.upconv.bias is not None
    for unit, cin in ((up.skip_conv, 10), (up.conv, 8)):
        assert [type(m) for m in unit] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
        assert (unit[0].in_channels, unit[0].out_channels, unit[1].num_features) == (cin, 4, 4)
        assert unit[0].kernel_size == (3, 3) and unit[0].padding == (1, 1) and unit[2].inplace is True
    assert shapes(up) == up_block_shapes("", 6, 4, 10)
    assert [name for name, _ in up.named_children()] == ["upconv", "skip_conv", "conv"]


def test_up_block_forward_equals_the_functional_reference():
    """The skip (3x2 here) is resized to the up-sampled 4x6 bilinearly WITH align_corners."""
    torch.manual_seed(0)
    up = UpBlock(6, 4, 10).eval()
    randomize_batch_norms(up)
    g = torch.Generator().manual_seed(5)
    x, skip = torch.randn(2, 6, 2, 3, generator=g), torch.randn(2, 10, 3, 2, generator=g)
    with torch.no_grad():
        out = up(x, skip)
        ref = up_ref(x, skip, up)
        assert out.shape == (2, 4, 4, 6)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        assert (out > 0).sum() > out.numel() // 4
        # the other corner rule gives another result: the comparison above tells them apart
        x2 = F.conv_transpose2d(x, up.upconv.weight, up.upconv.bias, stride=2)
        s = F.interpolate(unit_ref(skip, up.skip_conv), size=(4, 6), mode="bilinear", align_corners=False)
        other = unit_ref(torch.cat([x2, s], dim=1), up.conv)
        assert (other - out).abs().max() > 1e-2


# --------------------------------------------------------------------------- U-Net
def test_unet_layers_and_parameter_shapes_by_hand():
    dec = UNetDecoder([16] * 5, [14] * 5, num_classes=3)
    assert dec.map_channels == (16, 16, 16, 16, 16)
    assert isinstance(dec.ups, nn.ModuleList) and len(dec.ups) == 4
    assert all(type(up) is UpBlock for up in dec.ups)
    ins, outs = (16, 8, 4, 2), (8, 4, 2, 3)                  # D, D/2, D/4, D/8 -> D/2, D/4, D/8, classes
    assert [(up.upconv.in_channels, up.upconv.out_channels) for up in dec.ups] == list(zip(ins, outs))
    assert [up.skip_conv[0].in_channels for up in dec.ups] == [16] * 4          # every skip is D wide
    assert [up.conv[0].in_channels for up in dec.ups] == [16, 8, 4, 6]
    want = {}
    for k, (i, o) in enumerate(zip(ins, outs)):
        want.update(up_block_shapes(f"ups.{k}.", i, o, 16))
    assert shapes(dec) == want
    assert sum(p.numel() for p in dec.parameters()) == (
        (16 * 8 * 4 + 8) + (8 * 16 * 9 + 8 + 16) + (8 * 16 * 9 + 8 + 16)       # 16 -> 8
        + (8 * 4 * 4 + 4) + (4 * 16 * 9 + 4 + 8) + (4 * 8 * 9 + 4 + 8)         # 8 -> 4
        + (4 * 2 * 4 + 2) + (2 * 16 * 9 + 2 + 4) + (2 * 4 * 9 + 2 + 4)         # 4 -> 2
        + (2 * 3 * 4 + 3) + (3 * 16 * 9 + 3 + 6) + (3 * 6 * 9 + 3 + 6))        # 2 -> 3 classes
    # nothing else: no dropout, no extra norm or activation
    assert Counter(type(m).__name__ for m in dec.modules()) == Counter(
        UNetDecoder=1, ModuleList=1, UpBlock=4, ConvTranspose2d=4, Sequential=8, Conv2d=8, BatchNorm2d=8,
        ReLU=8)
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in dec.modules() if isinstance(bn, nn.BatchNorm2d))


def test_unet_forward_equals_the_functional_reference():
    """Bottleneck = map 4, skips maps 3, 2, 1, 0; 2x3 grid -> 32x48 -> bicubic (align_corners=False)."""
    torch.manual_seed(0)
    dec = UNetDecoder([16] * 5, [14] * 5, num_classes=2).eval()
    randomize_batch_norms(dec)
    maps = maps_of([16] * 5)
    with torch.no_grad():
        x = maps[4]
        for up, skip in zip(dec.ups, (maps[3], maps[2], maps[1], maps[0])):
            x = up_ref(x, skip, up)
        assert x.shape == (2, 2, 32, 48)
        assert (x > 0).sum() > x.numel() // 4
        ref = F.interpolate(x, size=(20, 36), mode="bicubic", align_corners=False)
        out = dec(maps, (20, 36))
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dec(maps, [20, 36]), ref, rtol=1e-4, atol=1e-5)
        for other in (F.interpolate(x, size=(20, 36), mode="bicubic", align_corners=True),
                      F.interpolate(x, size=(20, 36), mode="bilinear", align_corners=False)):
            assert (other - out).abs().max() > 1e-3
        torch.testing.assert_close(dec(maps, 24), F.interpolate(x, size=(24, 24), mode="bicubic",
                                                                align_corners=False), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dec(maps, (32, 48)), x, rtol=1e-4, atol=1e-5)


def test_unet_output_at_16x_the_grid_is_not_resampled():
    dec = UNetDecoder([16] * 5, [14] * 5, num_classes=2)
    maps = maps_of([16] * 5)
    assert type(dec(maps, (32, 48)).grad_fn).__name__.startswith("Relu")        # the last block's ReLU
    assert type(dec(maps, (32, 47)).grad_fn).__name__.startswith("UpsampleBicubic2D")


def test_smallest_unet_width_is_8_and_7_is_refused():
    dec = UNetDecoder([8] * 5, [16] * 5, num_classes=1)
    assert [(up.upconv.in_channels, up.upconv.out_channels) for up in dec.ups] == [(8, 4), (4, 2), (2, 1),
                                                                                 (1, 1)]
    assert raised(UNetDecoder, [7] * 5, [16] * 5, 1) == (
        "UNetDecoder: embedding width 7 is too small for widths D/2..D/8. "
        "Fix: use a backbone with an embedding width of at least 8.")


@pytest.mark.parametrize("channels, strides", [
    ([16] * 4, [14] * 4),                   # 4 maps
    ([16] * 6, [14] * 6),                   # 6 maps
    ([16] * 5, [14] * 4),                   # 4 strides
    ([16] * 5, [14] * 6),                   # 6 strides
    ([16] * 5, [14, 14, 14, 14, 16]),       # two strides, one width
    ([16, 16, 16, 16, 32], [14] * 5),       # two widths, one stride
])
def test_unet_layout_refusals_word_for_word(channels, strides):
    assert raised(UNetDecoder, channels, strides, 2) == (
        f"UNetDecoder: needs 5 maps of one width at one stride (a ViT's last 5 blocks), got channels "
        f"{tuple(channels)} and strides {tuple(strides)}. "
        "Fix: use a ViT backbone (the study segments with ViTs only).")


# --------------------------------------------------------------------------- linear decoder
def test_linear_decoder_layers_and_init():
    torch.manual_seed(0)
    dec = LinearDecoder([3, 4, 5, 6, 32], num_classes=3)
    assert dec.map_channels == (3, 4, 5, 6, 32)
    c = dec.classifier
    assert type(c) is nn.Conv2d and (c.in_channels, c.out_channels) == (32, 3)          # the LAST map
    assert c.kernel_size == (1, 1) and c.stride == (1, 1) and c.padding == (0, 0) and c.groups == 1
    assert shapes(dec) == {"classifier.weight": (3, 32, 1, 1), "classifier.bias": (3,)}
    assert [type(m) for m in dec.modules()] == [LinearDecoder, nn.Conv2d]              # no BN, no dropout
    assert torch.equal(c.bias.detach(), torch.zeros(3))
    w = c.weight.detach()
    assert 0.007 < float(w.std()) < 0.013 and abs(float(w.mean())) < 0.004          # N(0, 0.01), 96 draws


def test_linear_decoder_forward_equals_the_functional_reference():
    torch.manual_seed(0)
    dec = LinearDecoder([3, 4, 5, 6, 7], num_classes=2)
    with torch.no_grad():
        dec.classifier.weight.normal_()
        dec.classifier.bias.copy_(torch.tensor([0.5, -1.0]))
    maps = maps_of([3, 4, 5, 6, 7])
    w = dec.classifier.weight.detach()[:, :, 0, 0]
    logits = torch.einsum("bchw,kc->bkhw", maps[4], w) + torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    with torch.no_grad():
        for size, full in (((5, 7), (5, 7)), ([5, 7], (5, 7)), (9, (9, 9)), ((2, 3), (2, 3))):
            ref = F.interpolate(logits, size=full, mode="bilinear", align_corners=False)
            out = dec(maps, size)
            assert out.shape == (2, 2, *full)
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        other = F.interpolate(logits, size=(5, 7), mode="bilinear", align_corners=True)
        assert (other - dec(maps, (5, 7))).abs().max() > 1e-2
        changed = [m + 1.0 for m in maps[:4]] + [maps[4]]                   # earlier maps are not read
        torch.testing.assert_close(dec(changed, (5, 7)), dec(maps, (5, 7)))


# --------------------------------------------------------------------------- map checks
@pytest.mark.parametrize("kind, name", [("linear", "LinearDecoder"), ("unet", "UNetDecoder")])
def test_map_checks_word_for_word(kind, name):
    dec = build_decoder(kind, [16] * 5, [14] * 5, 2)
    fix_count = "Fix: pass the backbone's patch_maps(x) output (the last 5 blocks, shallow to deep)."
    fix_shape = "Fix: build the decoder from the same backbone that makes the maps."
    good = maps_of([16] * 5)
    assert raised(dec, good[:4], 28) == f"{name}: expected 5 patch maps, got 4. {fix_count}"
    assert raised(dec, good + good[:1], 28) == f"{name}: expected 5 patch maps, got 6. {fix_count}"
    assert raised(dec, [torch.zeros(2, 16, 6)] + good[1:], 28) == (                  # 3-D, right width
        f"{name}: map 0 has shape (2, 16, 6), expected (B, 16, h, w). {fix_shape}")
    assert raised(dec, [torch.zeros(1, 2, 16, 2, 3)] + good[1:], 28) == (             # 5-D
        f"{name}: map 0 has shape (1, 2, 16, 2, 3), expected (B, 16, h, w). {fix_shape}")
    assert raised(dec, good[:3] + [torch.zeros(2, 8, 2, 3), good[4]], 28) == (
        f"{name}: map 3 has shape (2, 8, 2, 3), expected (B, 16, h, w). {fix_shape}")
    assert raised(dec, good[:4] + [torch.zeros(2, 2, 16, 16)], 28) == (                # h = w = D, C != D
        f"{name}: map 4 has shape (2, 2, 16, 16), expected (B, 16, h, w). {fix_shape}")
    with torch.no_grad():
        assert dec(good, (4, 5)).shape == (2, 2, 4, 5)


# --------------------------------------------------------------------------- build_decoder
def test_build_decoder_builds_the_named_decoder():
    lin = build_decoder("linear", [3, 4, 5, 6, 7], [9, 9, 9, 9, 1], 2)           # strides unused
    assert type(lin) is LinearDecoder and lin.map_channels == (3, 4, 5, 6, 7)
    assert (lin.classifier.in_channels, lin.classifier.out_channels) == (7, 2)
    unet = build_decoder("unet", [16] * 5, [14] * 5, 3)
    assert type(unet) is UNetDecoder and shapes(unet) == shapes(UNetDecoder([16] * 5, [14] * 5, 3))
    assert unet.ups[-1].upconv.out_channels == 3
    assert raised(build_decoder, "unet", [16] * 5, [14, 14, 14, 14, 16], 3).startswith(
        "UNetDecoder: needs 5 maps of one width at one stride")                  # the strides reach it


@pytest.mark.parametrize("kind", ["mlp", "Linear", "UNET", ""])
def test_unknown_decoder_word_for_word(kind):
    assert raised(build_decoder, kind, [16] * 5, [14] * 5, 2) == (
        f"hparams['decoder']: unknown decoder {kind!r}. Fix: use one of: linear, unet.")


# --------------------------------------------------------------------------- parameter_counts
def test_parameter_counts_vit_small_linear_and_unet():
    """dinov2_vits14 (D = 384): trainable = the decoder alone (default C = 1); total adds timm's ViT-S/14
    at its native 518 (the count does not depend on the resolution asked for)."""
    with torch.device("meta"):
        vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518)
    backbone = sum(p.numel() for p in vit.parameters())
    assert parameter_counts("dinov2_vits14", "linear", 448) == (385, 385 + backbone)
    unet_by_hand = 0
    for cin, w in ((384, 192), (192, 96), (96, 48), (48, 1)):
        unet_by_hand += (cin * w * 4 + w) + (384 * w * 9 + w + 2 * w) + (2 * w * w * 9 + w + 2 * w)
    assert unet_by_hand == 2_425_225
    assert parameter_counts("dinov2_vits14", "unet", 224) == (unet_by_hand, unet_by_hand + backbone)


def test_parameter_counts_accepts_sam_and_passes_the_class_count():
    """medsam_vitb16 (SAM ViT-B, D = 768): the class count reaches both decoders."""
    trainable, total = parameter_counts("medsam_vitb16", "linear", 224, 3)
    assert trainable == 768 * 3 + 3 and total > 80_000_000
    with torch.device("meta"):
        unet = sum(p.numel() for p in UNetDecoder([768] * 5, [16] * 5, 2).parameters())
    assert parameter_counts("medsam_vitb16", "unet", 224, 2) == (unet, total - trainable + unet)


def test_parameter_counts_messages_word_for_word():
    assert raised(parameter_counts, "resnet152", "linear", 224) == (
        "model 'resnet152': is not a ViT backbone; decoders sit on ViT patch maps. "
        "Fix: pass a ViT model id such as dinov2_vitl14.")
    assert raised(parameter_counts, "dinov2_vits14", "unet", 450) == (
        "model dinov2_vits14 resolution: got 450; expected an integer >= 32 that is a multiple of the "
        "patch size 14. Fix: use e.g. 448 or 224 (the study's default).")
    assert raised(parameter_counts, "medsam_vitb16", "mlp", 224) == (
        "hparams['decoder']: unknown decoder 'mlp'. Fix: use one of: linear, unet.")
