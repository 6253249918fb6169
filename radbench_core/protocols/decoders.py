"""Segmentation decoders trained on the patch maps of a frozen backbone (study 3.3 / appendix B.4).

Both decoders take the backbone's four maps (shallow to deep, ``(B, C_i, h_i, w_i)``) and return
logits ``(B, num_classes, H, W)`` at the requested full input size.

* :class:`LinearDecoder` - batch norm + 1x1 convolution on the deepest map, bilinear upsampling
  (DINOv2's linear segmentation head; the study's "linear" decoder).
* :class:`UNetDecoder` - four decoder blocks, each conv3x3 + BN + ReLU on the concatenation of the
  x2-upsampled running features and one skip map, as in a classical U-Net. Skips are first
  projected (conv3x3 + BN + ReLU, as the study's decoder does) at their native resolution so that
  1024-channel ViT maps are never upsampled to full size. ViT maps all share one stride, so their
  skips are resampled to the level sizes 1/8, 1/4, 1/2, 1/1 (the running features start at 1/16);
  hierarchical (CNN) maps are used at their native strides and the last level is upsampled
  bilinearly to full size.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from radbench_core.errors import ConfigError

PAPER_UNET_CHANNELS = (256, 128, 64, 32)
DECODER_KINDS = ("linear", "unet")


def _size(out_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(out_size, int):
        return (out_size, out_size)
    return (int(out_size[0]), int(out_size[1]))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _check_maps(maps: Sequence[torch.Tensor], channels: Sequence[int], where: str) -> None:
    if len(maps) != len(channels):
        raise ConfigError(where, f"expected {len(channels)} patch maps, got {len(maps)}",
                          "pass the backbone's patch_maps(x) output (4 maps, shallow to deep)")
    for i, (m, c) in enumerate(zip(maps, channels)):
        if m.ndim != 4 or m.shape[1] != c:
            raise ConfigError(where, f"map {i} has shape {tuple(m.shape)}, expected (B, {c}, h, w)",
                              "build the decoder from the same backbone that makes the maps")


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class LinearDecoder(nn.Module):
    """A 1x1 convolution on the deepest map: measures how linearly separable the patch tokens are."""

    def __init__(self, map_channels: Sequence[int], num_classes: int):
        super().__init__()
        self.map_channels = tuple(int(c) for c in map_channels)
        in_ch = self.map_channels[-1]
        self.norm = nn.BatchNorm2d(in_ch)
        self.classifier = nn.Conv2d(in_ch, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, maps: Sequence[torch.Tensor], out_size: int | Sequence[int]) -> torch.Tensor:
        _check_maps(maps, self.map_channels, "LinearDecoder")
        return _resize(self.classifier(self.norm(maps[-1])), _size(out_size))


class UNetDecoder(nn.Module):
    """Hierarchical decoder: multi-depth skips fused level by level up to full resolution."""

    def __init__(self, map_channels: Sequence[int], map_strides: Sequence[int], num_classes: int,
                 channels: Sequence[int] = PAPER_UNET_CHANNELS):
        super().__init__()
        self.map_channels = tuple(int(c) for c in map_channels)
        self.map_strides = tuple(int(s) for s in map_strides)
        channels = tuple(int(c) for c in channels)
        if len(self.map_channels) != 4 or len(self.map_strides) != 4 or len(channels) != 4:
            raise ConfigError("UNetDecoder", "needs 4 map channels, 4 map strides and 4 decoder widths",
                              "use a backbone whose patch_maps returns 4 maps and 4 decoder channels")
        # one stride for all maps (plain ViT) -> resample skips to 1/8..1/1; else native strides
        self.resample = len(set(self.map_strides)) == 1
        if not self.resample and list(self.map_strides) != sorted(self.map_strides):
            raise ConfigError("UNetDecoder", f"map strides {self.map_strides} are not shallow to deep",
                              "order the patch maps from the finest to the coarsest stride")
        self.skip_of_block = self._skip_sources()
        skips, blocks = [], []
        cin = self.map_channels[3]
        for k, cout in enumerate(channels):
            src = self.skip_of_block[k]
            if src is None:
                skips.append(nn.Identity())
                blocks.append(_conv_bn_relu(cin, cout))
            else:
                skips.append(_conv_bn_relu(self.map_channels[src], cout))
                blocks.append(_conv_bn_relu(cin + cout, cout))
            cin = cout
        self.skips = nn.ModuleList(skips)
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, num_classes, 1)

    def _skip_sources(self) -> list[int | None]:
        """Which map feeds the skip of each block (None: no map lives at that level)."""
        if self.resample:
            return [3, 2, 1, 0]
        deepest = self.map_strides[3]
        out: list[int | None] = []
        for k in range(4):
            level = deepest // 2 ** (k + 1)
            out.append(self.map_strides.index(level) if level in self.map_strides else None)
        return out

    def _level_sizes(self, maps: Sequence[torch.Tensor], full: tuple[int, int]) -> list[tuple[int, int]]:
        if self.resample:   # 1/16 (start), then 1/8, 1/4, 1/2, 1/1 of the input
            return [(max(1, round(full[0] / 2 ** (4 - k))), max(1, round(full[1] / 2 ** (4 - k))))
                    for k in range(5)]
        h, w = maps[3].shape[-2:]
        return [(h * 2 ** k, w * 2 ** k) for k in range(5)]

    def forward(self, maps: Sequence[torch.Tensor], out_size: int | Sequence[int]) -> torch.Tensor:
        _check_maps(maps, self.map_channels, "UNetDecoder")
        full = _size(out_size)
        sizes = self._level_sizes(maps, full)
        x = _resize(maps[3], sizes[0])
        for k, (skip, block) in enumerate(zip(self.skips, self.blocks)):
            x = _resize(x, sizes[k + 1])
            src = self.skip_of_block[k]
            if src is not None:
                x = torch.cat([x, _resize(skip(maps[src]), sizes[k + 1])], dim=1)
            x = block(x)
        return _resize(self.head(x), full)


def build_decoder(kind: str, map_channels: Sequence[int], map_strides: Sequence[int],
                  num_classes: int, channels: Sequence[int] = PAPER_UNET_CHANNELS) -> nn.Module:
    """The decoder a protocol's ``hparams["decoder"]`` names, sized for one backbone's maps."""
    if kind == "linear":
        return LinearDecoder(map_channels, num_classes)
    if kind == "unet":
        return UNetDecoder(map_channels, map_strides, num_classes, channels)
    raise ConfigError("hparams['decoder']", f"unknown decoder {kind!r}",
                      f"use one of: {', '.join(DECODER_KINDS)}")
