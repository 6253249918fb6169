"""Cases that kill the surviving mutants of protocols/decoders.py (issue 21, `make mutants`).

test_decoders.py uses square outputs and maps of one width only, and checks the U-Net's messages but
not the linear decoder's: these pin non-square sizes, unequal map widths, every refusal of the U-Net's
shape rule on its own, the smallest accepted width, and each one-line error word for word.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from radbench_core.core.errors import ConfigError
from radbench_core.protocols.decoders import (LinearDecoder, UNetDecoder, build_decoder, parameter_counts,
                                              unet_widths)


def maps_of(channels, grid=(3, 4), batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *grid, generator=g) for c in channels]


def message(exc_info) -> str:
    return str(exc_info.value)


# --------------------------------------------------------------------------- sizes
def test_linear_decoder_non_square_output_and_unequal_widths_by_hand():
    """(H, W) = (20, 36) from a 3x4 grid; the classifier reads the LAST map (width 7, not 6 or 3)."""
    torch.manual_seed(0)
    dec = LinearDecoder([3, 4, 5, 6, 7], num_classes=2)
    assert dec.classifier.in_channels == 7 and dec.classifier.out_channels == 2
    with torch.no_grad():
        dec.classifier.bias.copy_(torch.tensor([0.5, -1.0]))
    maps = maps_of([3, 4, 5, 6, 7])
    w = dec.classifier.weight[:, :, 0, 0]
    logits = torch.einsum("bchw,kc->bkhw", maps[-1], w) + dec.classifier.bias.view(1, -1, 1, 1)
    ref = F.interpolate(logits, size=(20, 36), mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = dec(maps, (20, 36))
        assert out.shape == (2, 2, 20, 36)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dec(maps, [20, 36]), ref, rtol=1e-5, atol=1e-6)   # any sequence
        assert dec(maps, 9).shape == (2, 2, 9, 9)                                     # an int: square


def test_unet_non_square_output():
    dec = UNetDecoder([16] * 5, [14] * 5, num_classes=3).eval()
    with torch.no_grad():
        out = dec(maps_of([16] * 5), (40, 70))          # 3x4 grid -> 48x64 -> bicubic to 40x70
        assert out.shape == (2, 3, 40, 70)
        assert dec(maps_of([16] * 5), (48, 64)).shape == (2, 3, 48, 64)   # 16x the grid: no resize


def test_unet_widths_floor_division():
    assert unet_widths(12, 2) == (6, 3, 1, 2)
    assert all(type(w) is int for w in unet_widths(12, 2.0))
    assert unet_widths(1000, 5) == (500, 250, 125, 5)


def test_smallest_unet_width_is_8():
    """D = 8 gives widths 4, 2, 1 (accepted, and it runs); D = 7 gives 3, 1, 0 (refused)."""
    dec = UNetDecoder([8] * 5, [14] * 5, num_classes=1).eval()
    assert [up.upconv.out_channels for up in dec.ups] == [4, 2, 1, 1]
    with torch.no_grad():
        assert dec(maps_of([8] * 5), 16).shape == (2, 1, 16, 16)
    with pytest.raises(ConfigError) as info:
        UNetDecoder([7] * 5, [14] * 5, num_classes=1)
    assert message(info) == ("UNetDecoder: embedding width 7 is too small for widths D/2..D/8. "
                             "Fix: use a backbone with an embedding width of at least 8.")


# --------------------------------------------------------------------------- refusals, one rule each
@pytest.mark.parametrize("channels, strides", [
    ([16] * 4, [14] * 5),                   # 4 maps
    ([16] * 5, [14] * 4),                   # 4 strides
    ([16] * 5, [14, 14, 14, 14, 16]),       # two strides
    ([16, 16, 16, 16, 32], [14] * 5),       # two widths
    ([16] * 6, [14] * 6),                   # 6 maps
])
def test_unet_refuses_each_non_vit_map_layout_on_its_own(channels, strides):
    with pytest.raises(ConfigError) as info:
        UNetDecoder(channels, strides, num_classes=2)
    assert message(info) == (
        f"UNetDecoder: needs 5 maps of one width at one stride (a ViT's last 5 blocks), got channels "
        f"{tuple(channels)} and strides {tuple(strides)}. "
        "Fix: use a ViT backbone (the study segments with ViTs only).")


@pytest.mark.parametrize("kind", ["linear", "unet"])
def test_wrong_maps_messages_word_for_word(kind):
    dec = build_decoder(kind, [16] * 5, [14] * 5, 2)
    name = {"linear": "LinearDecoder", "unet": "UNetDecoder"}[kind]
    with pytest.raises(ConfigError) as info:
        dec(maps_of([16] * 4), 28)
    assert message(info) == (f"{name}: expected 5 patch maps, got 4. Fix: pass the backbone's "
                             "patch_maps(x) output (the last 5 blocks, shallow to deep).")
    with pytest.raises(ConfigError) as info:
        dec(maps_of([16, 16, 16, 8, 16]), 28)
    assert message(info) == (f"{name}: map 3 has shape (2, 8, 3, 4), expected (B, 16, h, w). "
                             "Fix: build the decoder from the same backbone that makes the maps.")
    with pytest.raises(ConfigError) as info:
        dec([torch.zeros(2, 16, 12)] + maps_of([16] * 4), 28)            # 3-D tokens of the right width
    assert message(info).startswith(f"{name}: map 0 has shape (2, 16, 12), expected (B, 16, h, w).")


def test_unknown_decoder_message_word_for_word():
    with pytest.raises(ConfigError) as info:
        build_decoder("Linear", [16] * 5, [14] * 5, 2)
    assert message(info) == ("hparams['decoder']: unknown decoder 'Linear'. "
                             "Fix: use one of: linear, unet.")


# --------------------------------------------------------------------------- parameter_counts
def test_parameter_counts_small_vit_against_timm():
    """ViT-S/14: trainable = the 1x1 conv (384 * C + C, default C = 1); total adds timm's own count."""
    with torch.device("meta"):
        vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=518)
    backbone = sum(p.numel() for p in vit.parameters())
    assert parameter_counts("dinov2_vits14", "linear", 224) == (385, 385 + backbone)
    assert parameter_counts("dinov2_vits14", "linear", 224, 3) == (1155, 1155 + backbone)


def test_parameter_counts_accepts_sam_and_names_a_cnn():
    trainable, total = parameter_counts("medsam_vitb16", "linear", 224)
    assert trainable == 768 + 1 and total > 80_000_000
    with pytest.raises(ConfigError) as info:
        parameter_counts("resnet152", "linear", 224)
    assert message(info) == ("model 'resnet152': is not a ViT backbone; decoders sit on ViT patch maps. "
                             "Fix: pass a ViT model id such as dinov2_vitl14.")
