"""Small re-implementations of the DINOv2 (hub) and DINOv3 (release) ViTs, written for the tests.

Why: neither official library installs here (and their code is not vendored), so a test needs a model
that (1) has the official attribute names, so its ``state_dict()`` is a file in the released key
layout with the released shapes, and (2) computes what the official forward computes, step by step,
independently of timm. Each step names the official function it follows:

* DINOv2: facebookresearch/dinov2 ``models/vision_transformer.py`` (``prepare_tokens_with_masks``,
  ``interpolate_pos_encoding``, ``get_intermediate_layers``), ``layers/`` (``Attention``, ``LayerScale``,
  ``Mlp``, ``SwiGLUFFNFused``); hub settings from ``hub/backbones.py`` (``*_reg``: 4 registers,
  ``interpolate_antialias=True``, ``interpolate_offset=0.0``; giant: ``ffn_layer="swiglufused"``).
* DINOv3: facebookresearch/dinov3 ``models/vision_transformer.py`` (``DinoVisionTransformer``:
  ``storage_tokens``, ``rope_embed``, norm eps 1e-5 of ``layernormbf16``), ``layers/attention.py``
  (``LinearKMaskedBias``: bias times ``bias_mask``; RoPE on the patch tokens only, rotate-half),
  ``layers/rope_position_encoding.py`` (``separate`` coords in [-1, 1], periods ``base ** (2i / (D/2))``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _SwiGLU(nn.Module):
    """DINOv2 ``SwiGLUFFNFused``: hidden = (int(4D * 2/3) + 7) // 8 * 8; w12 -> chunk -> silu(a) * b -> w3."""
    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, masked_k_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        if masked_k_bias:
            self.qkv.register_buffer("bias_mask", torch.ones(3 * dim))

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        batch, tokens, dim = x.shape
        mask = getattr(self.qkv, "bias_mask", None)
        bias = self.qkv.bias if mask is None else self.qkv.bias * mask
        q, k, v = F.linear(x, self.qkv.weight, bias).reshape(batch, tokens, 3, self.heads, -1).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if rope is not None:                      # only the patch tokens (the last HW) are rotated
            sin, cos = rope
            first = tokens - sin.shape[0]
            q, k = (torch.cat([t[:, :, :first], t[:, :, first:] * cos + _rotate_half(t[:, :, first:]) * sin], dim=2)
                    for t in (q, k))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, eps: float, swiglu: bool = False, masked_k_bias: bool = False) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.attn = _Attention(dim, heads, masked_k_bias)
        self.ls1, self.ls2 = _LayerScale(dim), _LayerScale(dim)
        self.mlp = _SwiGLU(dim) if swiglu else _Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope) * self.ls1.gamma
        return x + self.mlp(self.norm2(x)) * self.ls2.gamma


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)


class Dinov2Hub(nn.Module):
    """``dinov2_vit*14_reg`` of the hub at a tiny width: 518 px table (37 x 37), 4 registers."""

    def __init__(self, dim: int, depth: int, heads: int, *, registers: int = 4, swiglu: bool = False,
                 grid: int = 37, patch: int = 14) -> None:
        super().__init__()
        self.patch = patch
        self.patch_embed = _PatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, registers, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads, 1e-6, swiglu) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _positions(self, height: int, width: int) -> torch.Tensor:
        side = int(math.sqrt(self.pos_embed.shape[1] - 1))
        h, w = height // self.patch, width // self.patch
        if (h, w) == (side, side):
            return self.pos_embed
        grid = self.pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)   # reg: offset 0, antialias
        return torch.cat([self.pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def intermediate(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        """The normed tokens (cls, registers, patches) of the last ``n`` blocks."""
        batch = x.shape[0]
        tokens = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1) + self._positions(*x.shape[-2:])
        tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(batch, -1, -1), tokens[:, 1:]], dim=1)
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i >= len(self.blocks) - n:
                out.append(self.norm(tokens))
        return out


class _Rope(nn.Module):
    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        super().__init__()
        self.register_buffer("periods", base ** (2 * torch.arange(head_dim // 4) / (head_dim // 2)))

    def forward(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        coords_h = torch.arange(0.5, height) / height
        coords_w = torch.arange(0.5, width) / width
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1) * 2 - 1
        angles = (2 * math.pi * coords[:, :, None] / self.periods[None, None, :]).flatten(1, 2).tile(2)
        return torch.sin(angles), torch.cos(angles)


class Dinov3Release(nn.Module):
    """``dinov3_vit*16`` of the release at a tiny width: 4 storage tokens, RoPE, k-masked qkv bias."""

    def __init__(self, dim: int, depth: int, heads: int, *, storage: int = 4, patch: int = 16) -> None:
        super().__init__()
        self.patch_embed = _PatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, storage, dim))
        self.rope_embed = _Rope(dim // heads)
        self.blocks = nn.ModuleList(_Block(dim, heads, 1e-5, masked_k_bias=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        for block in self.blocks:      # init_weights_vit: the k third of the mask is 0
            block.attn.qkv.bias_mask[dim:2 * dim] = 0

    def intermediate(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        batch = x.shape[0]
        patches = self.patch_embed.proj(x)
        height, width = patches.shape[-2:]
        cls = self.cls_token + 0 * self.mask_token
        tokens = torch.cat([cls.expand(batch, -1, -1), self.storage_tokens.expand(batch, -1, -1),
                            patches.flatten(2).transpose(1, 2)], dim=1)
        out = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, self.rope_embed(height, width))
            if i >= len(self.blocks) - n:
                out.append(self.norm(tokens))
        return out


def assert_backbone_matches_official(model_id: str, official: nn.Module, weights, pixels: int, *,
                                     patch: int, prefix: int = 5, atol: float = 1e-5) -> None:
    """radbench's backbone loaded from ``weights`` gives the official forward's class tokens of the
    last 4 blocks, mean patch token and last patch map (``prefix`` = class + register/storage tokens)."""
    from radbench_core.models.features import load_backbone
    from radbench_core.models.specs import get_model
    bb = load_backbone(model_id, demo=False, resolution=pixels, weights_dir=weights,
                       arch_kwargs=get_model(model_id).demo_kwargs)
    x = torch.randn(2, 3, pixels, pixels, generator=torch.Generator().manual_seed(pixels))
    with torch.no_grad():
        want = official.intermediate(x, 4)
        pooled = bb.pooled(x)
        maps = bb.patch_maps(x)
    torch.testing.assert_close(pooled["cls"], torch.stack([t[:, 0] for t in want], dim=1), atol=atol, rtol=0)
    patches = want[-1][:, prefix:]
    torch.testing.assert_close(pooled["patch_mean"], patches.mean(dim=1), atol=atol, rtol=0)
    side = pixels // patch
    torch.testing.assert_close(maps[-1], patches.transpose(1, 2).reshape(2, -1, side, side), atol=atol, rtol=0)
