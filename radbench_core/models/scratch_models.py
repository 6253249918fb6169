"""The study's from-scratch segmentation baselines, U-Net and TransUNet, as whole models.

Both map images (B, 3, R, R) to logits (B, num_classes, R, R). U-Net is Ronneberger et al.'s network
(base width 64, 4 down / 4 up, ~31M parameters). TransUNet is Chen et al.'s R50 + ViT hybrid encoder
with the cascaded upsampler; at full size it uses a ViT-L/16 on the stride-16 R50 map (the study's
Table 6 counts 324M parameters). The demo variants keep the layouts at a few channels.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from radbench_core.core.errors import ConfigError
from radbench_core.models.specs import get_model

SCRATCH_MODELS = ("unet", "transunet")


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU: the unit of every U-Net level."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(*_conv_bn_relu(cin, cout), *_conv_bn_relu(cout, cout))


def _match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pad an upsampled map to its skip's size (odd sizes lose a pixel when pooled)."""
    dh, dw = like.shape[2] - x.shape[2], like.shape[3] - x.shape[3]
    return F.pad(x, [dw // 2, dw - dw // 2, dh // 2, dh - dh // 2]) if dh or dw else x


class UNet(nn.Module):
    """Ronneberger's U-Net with same-padding convs, batch norm and transposed-conv upsampling."""

    def __init__(self, num_classes: int, in_chans: int = 3, base_width: int = 64) -> None:
        super().__init__()
        widths = [base_width * 2 ** i for i in range(5)]
        self.inc = DoubleConv(in_chans, widths[0])
        self.downs = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(4)))
        self.up_convs = nn.ModuleList(DoubleConv(widths[i] * 2, widths[i]) for i in reversed(range(4)))
        self.out = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            skip = skips.pop()
            y = conv(torch.cat([skip, _match(up(y), skip)], dim=1))
        return self.out(y)


class DecoderBlock(nn.Module):
    """TransUNet's cascaded upsampler step: x2 bilinear, concatenate the skip, two conv-BN-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv = DoubleConv(cin + skip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if skip is not None:
            x = torch.cat([_match(x, skip), skip], dim=1)
        return self.conv(x)


class TransUNet(nn.Module):
    """R50 (3, 4, 9 blocks, stride 16) + ViT on its 1x1 patches + cascaded upsampler with 3 skips."""

    def __init__(self, num_classes: int, *, resolution: int, in_chans: int = 3,
                 trunk_layers: Sequence[int] = (3, 4, 9), trunk_channels: Sequence[int] = (256, 512, 1024),
                 stem_chs: int = 64, norm_groups: int = 32, embed_dim: int = 1024, depth: int = 24,
                 num_heads: int = 16, head_channels: int = 512,
                 decoder_channels: Sequence[int] = (256, 128, 64, 16)) -> None:
        super().__init__()
        from timm.layers import GroupNormAct, StdConv2dSame
        from timm.models.resnetv2 import ResNetV2
        from timm.models.vision_transformer import VisionTransformer
        self.trunk = ResNetV2(layers=list(trunk_layers), channels=tuple(trunk_channels), num_classes=0,
                              global_pool="", in_chans=in_chans, preact=False, stem_type="same", stem_chs=stem_chs,
                              conv_layer=partial(StdConv2dSame, eps=1e-8),
                              norm_layer=partial(GroupNormAct, num_groups=norm_groups))
        self.vit = VisionTransformer(img_size=resolution // 16, patch_size=1, in_chans=trunk_channels[-1],
                                     embed_dim=embed_dim, depth=depth, num_heads=num_heads, num_classes=0,
                                     class_token=False, global_pool="", dynamic_img_size=True)
        self.conv_more = nn.Sequential(*_conv_bn_relu(embed_dim, head_channels))
        skips = (trunk_channels[1], trunk_channels[0], stem_chs, 0)
        ins = (head_channels, *decoder_channels[:-1])
        self.decoder = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, decoder_channels))
        self.seg_head = nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        stem = self.trunk.stem
        root = stem.norm(stem.conv(x))                 # 1/2
        y = stem.pool(root)
        skips = [root]
        for stage in self.trunk.stages:                # 1/4, 1/8, 1/16
            y = stage(y)
            skips.append(y)
        grid = skips.pop()
        tokens = self.vit.forward_features(grid)       # (B, N, D), final norm applied
        y = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid.shape[2:])
        y = self.conv_more(y)
        for block, skip in zip(self.decoder, [skips[2], skips[1], skips[0], None]):
            y = block(y, skip)
        y = self.seg_head(y)
        return y if y.shape[2:] == size else F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def build_scratch_model(model_id: str, num_classes: int, *, demo: bool, resolution: int,
                        in_chans: int = 3, seed: int | None = None) -> nn.Module:
    """A randomly initialised U-Net or TransUNet (full size, or the tiny demo variant).

    With ``seed`` the initial weights depend on it alone (the caller's global RNG is left as it was).
    """
    if model_id not in SCRATCH_MODELS:
        raise ConfigError(f"scratch model {model_id!r}", f"expected one of {', '.join(SCRATCH_MODELS)}",
                          "foundation-model backbones are built with radbench_core.models.features.load_backbone")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"{model_id} num_classes", f"got {num_classes!r}, expected an integer >= 1",
                          "pass the number of segmentation classes including background")
    if not isinstance(resolution, int) or resolution < 16 or resolution % 16:
        raise ConfigError(f"{model_id} resolution", f"got {resolution!r}, expected a multiple of 16 (>= 16)",
                          f"use e.g. {max(16, (resolution if isinstance(resolution, int) else 0) // 16 * 16)} or 224")
    kwargs = dict(get_model(model_id).demo_kwargs) if demo else {}
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if model_id == "unet":
            return UNet(num_classes, in_chans=in_chans, **kwargs)
        return TransUNet(num_classes, resolution=resolution, in_chans=in_chans, **kwargs)


def parameter_counts(model_id: str, num_classes: int = 1) -> tuple[int, int]:
    """(trainable, total) of the full-size scratch model, built on the meta device (Table 6).

    Everything trains from scratch, so both are equal; the study counts with one output class.
    """
    with torch.device("meta"):
        model = build_scratch_model(model_id, num_classes, demo=False, resolution=448)
    total = sum(p.numel() for p in model.parameters())
    return total, total
