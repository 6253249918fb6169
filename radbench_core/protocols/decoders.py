"""Segmentation decoders on a frozen ViT's patch maps, built as the study built them (paper 3.3).

Source: the study's ``dinov2/eval/segmentation/utils.py`` (MohammedSB/DINOv2ForRadiology). Both take
the backbone's maps (shallow to deep, ``(B, D, h, w)``, all at the patch stride) and return logits
``(B, num_classes, H, W)`` at the requested input size.

* :class:`LinearDecoder` - one 1x1 convolution (weights N(0, 0.01), zero bias) on the LAST block's
  patch tokens, bilinear upsampling of the logits; no batch norm (the study's "linear" decoder).
* :class:`UNetDecoder` - the last block is the bottleneck; four up blocks, each a 2x2 stride-2
  transposed conv, a skip from one of the four blocks before the last (deepest first) projected by
  conv3x3 + BN + ReLU and resized bilinearly to the up-sampled size, then conv3x3 + BN + ReLU on the
  concatenation. Widths D/2, D/4, D/8 and, in the last block, ``num_classes`` (so the logits pass
  through BN + ReLU, as in the study). The output (16x the patch grid) is resized bicubically.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from radbench_core.core.errors import ConfigError

DECODER_KINDS = ("linear", "unet")
UNET_MAPS = 5          # the bottleneck (last block) + 4 skips (the four blocks before it)


def _size(out_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(out_size, int):
        return (out_size, out_size)
    return (int(out_size[0]), int(out_size[1]))


def _check_maps(maps: Sequence[torch.Tensor], channels: Sequence[int], where: str) -> None:
    if len(maps) != len(channels):
        raise ConfigError(where, f"expected {len(channels)} patch maps, got {len(maps)}",
                          "pass the backbone's patch_maps(x) output (the last 5 blocks, shallow to deep)")
    for i, (m, c) in enumerate(zip(maps, channels)):
        if m.ndim != 4 or m.shape[1] != c:
            raise ConfigError(where, f"map {i} has shape {tuple(m.shape)}, expected (B, {c}, h, w)",
                              "build the decoder from the same backbone that makes the maps")


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """The study's unit: conv3x3 (with bias) + batch norm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LinearDecoder(nn.Module):
    """A 1x1 convolution on the last block's tokens: how linearly separable the patch tokens are."""

    def __init__(self, map_channels: Sequence[int], num_classes: int):
        super().__init__()
        self.map_channels = tuple(int(c) for c in map_channels)
        self.classifier = nn.Conv2d(self.map_channels[-1], num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, maps: Sequence[torch.Tensor], out_size: int | Sequence[int]) -> torch.Tensor:
        _check_maps(maps, self.map_channels, "LinearDecoder")
        return F.interpolate(self.classifier(maps[-1]), size=_size(out_size), mode="bilinear",
                             align_corners=False)


class UpBlock(nn.Module):
    """Transposed-conv x2 of the running features, fused with one projected skip map."""

    def __init__(self, cin: int, cout: int, skip_channels: int):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        self.skip_conv = _conv_bn_relu(skip_channels, cout)
        self.conv = _conv_bn_relu(2 * cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.upconv(x)
        skip = F.interpolate(self.skip_conv(skip), size=tuple(x.shape[-2:]), mode="bilinear",
                             align_corners=True)
        return self.conv(torch.cat([x, skip], dim=1))


def unet_widths(embed_dim: int, num_classes: int) -> tuple[int, int, int, int]:
    """The study's up-block widths: D/2, D/4, D/8, then the class count."""
    return (embed_dim // 2, embed_dim // 4, embed_dim // 8, int(num_classes))


class UNetDecoder(nn.Module):
    """Bottleneck = last block; skips from the 4 blocks before it, deepest first (the study's U-Net)."""

    def __init__(self, map_channels: Sequence[int], map_strides: Sequence[int], num_classes: int):
        super().__init__()
        self.map_channels = tuple(int(c) for c in map_channels)
        strides = tuple(int(s) for s in map_strides)
        if len(self.map_channels) != UNET_MAPS or len(strides) != UNET_MAPS or len(set(strides)) != 1 \
                or len(set(self.map_channels)) != 1:
            raise ConfigError("UNetDecoder", f"needs {UNET_MAPS} maps of one width at one stride (a ViT's last "
                              f"5 blocks), got channels {self.map_channels} and strides {strides}",
                              "use a ViT backbone (the study segments with ViTs only)")
        dim = self.map_channels[-1]
        widths = unet_widths(dim, num_classes)
        if min(widths[:3]) < 1:
            raise ConfigError("UNetDecoder", f"embedding width {dim} is too small for widths D/2..D/8",
                              "use a backbone with an embedding width of at least 8")
        ins = (dim, *widths[:3])
        self.ups = nn.ModuleList(UpBlock(i, o, dim) for i, o in zip(ins, widths))

    def forward(self, maps: Sequence[torch.Tensor], out_size: int | Sequence[int]) -> torch.Tensor:
        _check_maps(maps, self.map_channels, "UNetDecoder")
        x = maps[-1]
        for up, skip in zip(self.ups, (maps[3], maps[2], maps[1], maps[0])):
            x = up(x, skip)
        full = _size(out_size)
        if tuple(x.shape[-2:]) != full:
            x = F.interpolate(x, size=full, mode="bicubic", align_corners=False)
        return x


def build_decoder(kind: str, map_channels: Sequence[int], map_strides: Sequence[int],
                  num_classes: int) -> nn.Module:
    """The decoder a protocol's ``hparams["decoder"]`` names, sized for one backbone's maps."""
    if kind == "linear":
        return LinearDecoder(map_channels, num_classes)
    if kind == "unet":
        return UNetDecoder(map_channels, map_strides, num_classes)
    raise ConfigError("hparams['decoder']", f"unknown decoder {kind!r}",
                      f"use one of: {', '.join(DECODER_KINDS)}")


def parameter_counts(model_id: str, decoder: str, resolution: int, num_classes: int = 1) -> tuple[int, int]:
    """(trainable, total) of a frozen full-size backbone + decoder, as Table 6 counts them.

    The backbone is built on the meta device (no weights, no memory); trainable = the decoder. The
    count does not depend on ``resolution`` (checked only): positional embeddings keep their native
    size and are interpolated per forward.
    """
    from radbench_core.models.features import Backbone, _check_resolution
    from radbench_core.models.architectures import create_architecture, strip_unused_parts
    from radbench_core.models.specs import get_model
    spec = get_model(model_id)
    _check_resolution(spec, resolution)
    if spec.arch not in ("vit", "sam"):
        raise ConfigError(f"model {model_id!r}", "is not a ViT backbone; decoders sit on ViT patch maps",
                          "pass a ViT model id such as dinov2_vitl14")
    with torch.device("meta"):
        model = strip_unused_parts(spec, create_architecture(spec))
        backbone = Backbone(spec, model, resolution=resolution, weights="none")
        head = build_decoder(decoder, backbone.map_channels, backbone.map_strides, num_classes)
    trainable = sum(p.numel() for p in head.parameters())
    return trainable, trainable + sum(p.numel() for p in backbone.model.parameters())
