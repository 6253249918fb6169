"""Position tables resized the way each model's own code resizes them, not the way timm does.

timm resamples every absolute position table with antialiased bicubic (``resample_abs_pos_embed``).
The official code of the study's models does not: DINOv2 interpolates bicubic with the 0.1
scale-factor offset and no antialias on every forward from its 37x37 (518 px) table, MAE resizes by
size with plain bicubic, MSN by a scale factor, OpenCLIP with antialiased bicubic, Google's ViT with
linear ``scipy.ndimage.zoom``. A DINOv2 cell at 224 or 448 px therefore only sees the study's
features if the table is resized with DINOv2's formula. DINOv2 *with registers* was released with
another rule (antialiased, no offset), and Hugging Face ports (RAD-DINO, MedSigLIP) use transformers'
own (bicubic by size, no antialias): a spec names its rule in ``pos_rule`` when it is not its family's. Each rule below is that formula on a
(1, C, h, w) float32 grid; :class:`OfficialPosEmbedViT` applies the model's rule on every forward
from the stored table, as DINOv2 (and the study, through it) does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from radbench_core.core.errors import ConfigError

Grid = tuple[int, int]


def dinov2_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """DINOv2 ``interpolate_pos_encoding``: scale factor (g + 0.1) / M, bicubic, no antialias."""
    side = grid.shape[-1]
    return F.interpolate(grid, scale_factor=((size[0] + 0.1) / side, (size[1] + 0.1) / side), mode="bicubic")


def dinov2_reg_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """DINOv2 *with registers* (hub ``dinov2_vit*14_reg``: ``interpolate_antialias=True,
    interpolate_offset=0.0``): bicubic to the new size, antialiased, no 0.1 offset."""
    return F.interpolate(grid, size=size, mode="bicubic", antialias=True)


def transformers_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """transformers ``Dinov2Embeddings`` / ``SiglipVisionEmbeddings.interpolate_pos_encoding``
    (RAD-DINO, MedSigLIP): bicubic to the new size, align_corners=False, no antialias."""
    return F.interpolate(grid, size=size, mode="bicubic", align_corners=False, antialias=False)


def mae_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """MAE ``util/pos_embed.interpolate_pos_embed``: bicubic to the new size, align_corners=False."""
    return F.interpolate(grid, size=size, mode="bicubic", align_corners=False)


def msn_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """MSN ``src/deit.interpolate_pos_encoding``: bicubic by scale factor sqrt(new / old patches)."""
    old = grid.shape[-2] * grid.shape[-1]
    return F.interpolate(grid, scale_factor=math.sqrt(size[0] * size[1] / old), mode="bicubic")


def open_clip_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """OpenCLIP ``resize_pos_embed`` (also how open_clip loads OpenAI CLIP): antialiased bicubic."""
    return F.interpolate(grid, size=size, mode="bicubic", antialias=True, align_corners=False)


def vit_jax_resize(grid: torch.Tensor, size: Grid) -> torch.Tensor:
    """Google ``vit_jax`` ``scipy.ndimage.zoom(order=1)``: linear with corners on corners, in float64
    as numpy computes it."""
    return F.interpolate(grid.double(), size=size, mode="bilinear", align_corners=True).to(grid.dtype)


@dataclass(frozen=True)
class PosEmbedRule:
    """How one model family resizes its absolute position table, and whose code says so."""
    name: str
    source: str
    resize: Callable[[torch.Tensor, Grid], torch.Tensor]


RULES: dict[str, PosEmbedRule] = {
    "dinov2": PosEmbedRule("dinov2", "dinov2/models/vision_transformer.py interpolate_pos_encoding "
                           "(the study's fork of facebookresearch/dinov2)", dinov2_resize),
    "dinov2_reg": PosEmbedRule("dinov2_reg", "facebookresearch/dinov2 hub/backbones.py dinov2_vit*14_reg "
                               "(interpolate_antialias=True, interpolate_offset=0.0)", dinov2_reg_resize),
    "hf_dinov2": PosEmbedRule("hf_dinov2", "transformers models/dinov2/modeling_dinov2.py "
                              "Dinov2Embeddings.interpolate_pos_encoding", transformers_resize),
    "hf_siglip": PosEmbedRule("hf_siglip", "transformers models/siglip/modeling_siglip.py "
                              "SiglipVisionEmbeddings.interpolate_pos_encoding", transformers_resize),
    "mae": PosEmbedRule("mae", "facebookresearch/mae util/pos_embed.py interpolate_pos_embed", mae_resize),
    "msn": PosEmbedRule("msn", "facebookresearch/msn src/deit.py interpolate_pos_encoding", msn_resize),
    "clip": PosEmbedRule("open_clip", "mlfoundations/open_clip resize_pos_embed", open_clip_resize),
    "supervised_vit": PosEmbedRule("vit_jax", "google-research/vision_transformer vit_jax "
                                   "checkpoint.py (scipy.ndimage.zoom order=1)", vit_jax_resize),
}


def rule_for(family: str) -> PosEmbedRule | None:
    """The rule of a model family; None where timm's own resampling stays (SAM, CNNs)."""
    return RULES.get(family)


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: Grid, old_grid: Grid, num_prefix: int,
                     rule: PosEmbedRule) -> torch.Tensor:
    """(1, prefix + h*w, C) -> (1, prefix + H*W, C); prefix (class) entries are kept as they are.

    Computed in float32 and cast back, as the official code does; the stored table is returned
    unchanged at its own grid (every official rule early-outs there).
    """
    new_grid, old_grid = (int(new_grid[0]), int(new_grid[1])), (int(old_grid[0]), int(old_grid[1]))
    if new_grid == old_grid:
        return pos_embed
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    dim = patches.shape[-1]
    grid = patches.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    out = rule.resize(grid, new_grid)
    if tuple(out.shape[-2:]) != new_grid:
        raise ConfigError(f"position table ({rule.name} rule)",
                          f"resizing {old_grid} to {new_grid} gave {tuple(out.shape[-2:])}",
                          "use a resolution whose patch grid the model's own formula reaches exactly")
    out = out.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, out], dim=1)


class OfficialPosEmbedViT(VisionTransformer):
    """timm's ViT whose position table is resized on every forward by its family's official rule.

    Built by timm as a plain ``VisionTransformer`` and then given this class (:func:`install`): the
    parameters, state-dict keys and every other method stay timm's; only ``_pos_embed`` changes.
    """
    pos_embed_rule: PosEmbedRule

    def pos_embed_at(self, grid: Grid) -> torch.Tensor:
        """The table added to the tokens of a ``grid`` of patches (what a forward really uses)."""
        prefix = 0 if self.no_embed_class else self.num_prefix_tokens
        return resize_pos_embed(self.pos_embed, grid, self.patch_embed.grid_size, prefix, self.pos_embed_rule)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos_embed is None or not self.dynamic_img_size:
            return super()._pos_embed(x)
        batch, height, width, dim = x.shape
        pos_embed = self.pos_embed_at((height, width))
        x = x.view(batch, -1, dim)
        to_cat = [t.expand(batch, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if self.no_embed_class:     # DINOv2 with registers: registers get no position
            x = torch.cat(to_cat + [x + pos_embed], dim=1)
        else:
            x = torch.cat(to_cat + [x], dim=1) + pos_embed
        return self.pos_drop(x)


def install(model: torch.nn.Module, family: str) -> torch.nn.Module:
    """Give a timm ViT its family's (or its spec's ``pos_rule``) official resizing; other models are
    returned untouched."""
    rule = rule_for(family)
    if rule is None or type(model) not in (VisionTransformer, OfficialPosEmbedViT):
        return model
    model.__class__ = OfficialPosEmbedViT
    model.pos_embed_rule = rule
    return model
