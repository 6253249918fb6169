"""Position tables resized as each model's official code resizes them, checked against references
written here from that code (each a few lines calling F.interpolate exactly as the official code
calls it), and the tables a loaded backbone really adds to its tokens at 448 and 1024 px."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from radbench_core.core.errors import ConfigError
from radbench_core.models.features import Backbone, load_backbone
from radbench_core.models.specs import MODELS, get_model
from radbench_core.models.pos_embed import RULES, OfficialPosEmbedViT, resize_pos_embed, rule_for


def table(grid: int, dim: int = 24, prefix: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, prefix + grid * grid, dim, generator=torch.Generator().manual_seed(seed))


# --- references, transcribed from the official code (square tables with one class entry) ---------

def ref_dinov2(pos_embed: torch.Tensor, w: int, h: int, patch_size: int) -> torch.Tensor:
    """dinov2/models/vision_transformer.py DinoVisionTransformer.interpolate_pos_encoding."""
    N = pos_embed.shape[1] - 1
    class_pos_embed, patch_pos_embed = pos_embed[:, 0], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch_size + 0.1, h // patch_size + 0.1
    patch_pos_embed = F.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def ref_mae(pos_embed: torch.Tensor, new_size: int) -> torch.Tensor:
    """facebookresearch/mae util/pos_embed.py interpolate_pos_embed."""
    embedding_size = pos_embed.shape[-1]
    orig_size = int((pos_embed.shape[-2] - 1) ** 0.5)
    extra_tokens, pos_tokens = pos_embed[:, :1], pos_embed[:, 1:]
    pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
    pos_tokens = F.interpolate(pos_tokens, size=(new_size, new_size), mode="bicubic", align_corners=False)
    pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra_tokens, pos_tokens), dim=1)


def ref_msn(pos_embed: torch.Tensor, npatch: int) -> torch.Tensor:
    """facebookresearch/msn src/deit.py VisionTransformer.interpolate_pos_encoding."""
    N = pos_embed.shape[1] - 1
    class_emb, pos = pos_embed[:, 0], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    pos = F.interpolate(pos.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
                        scale_factor=math.sqrt(npatch / N), mode="bicubic")
    pos = pos.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_emb.unsqueeze(0), pos), dim=1)


def ref_dinov2_hub(pos_embed: torch.Tensor, w: int, h: int, patch_size: int, *, offset: float,
                   antialias: bool) -> torch.Tensor:
    """facebookresearch/dinov2 (current) interpolate_pos_encoding with the hub's interpolate_offset and
    interpolate_antialias: a scale factor when the offset is set, an output size when it is 0."""
    N = pos_embed.shape[1] - 1
    M = int(math.sqrt(N))
    class_pos_embed, patch_pos_embed = pos_embed[:, 0], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch_size, h // patch_size
    kwargs = {"scale_factor": ((w0 + offset) / M, (h0 + offset) / M)} if offset else {"size": (w0, h0)}
    patch_pos_embed = F.interpolate(patch_pos_embed.reshape(1, M, M, dim).permute(0, 3, 1, 2),
                                    mode="bicubic", antialias=antialias, **kwargs)
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def ref_open_clip(pos_embed: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """mlfoundations/open_clip resize_pos_embed (interpolation='bicubic', antialias=True)."""
    old = pos_embed[0]
    pos_emb_tok, pos_emb_img = old[:1], old[1:]
    old_grid = int(math.sqrt(len(pos_emb_img)))
    pos_emb_img = pos_emb_img.reshape(1, old_grid, old_grid, -1).permute(0, 3, 1, 2)
    pos_emb_img = F.interpolate(pos_emb_img, size=grid_size, mode="bicubic", antialias=True, align_corners=False)
    pos_emb_img = pos_emb_img.permute(0, 2, 3, 1).reshape(1, grid_size[0] * grid_size[1], -1)[0]
    return torch.cat([pos_emb_tok, pos_emb_img], dim=0)[None]


def ref_vit_jax(pos_embed: torch.Tensor, gs_new: int) -> np.ndarray:
    """google-research/vision_transformer vit_jax checkpoint.py: scipy.ndimage.zoom(order=1)."""
    posemb = pos_embed.double().numpy()
    posemb_tok, posemb_grid = posemb[:, :1], posemb[0, 1:]
    gs_old = int(np.sqrt(len(posemb_grid)))
    posemb_grid = posemb_grid.reshape(gs_old, gs_old, -1)
    zoom = (gs_new / gs_old, gs_new / gs_old, 1)
    posemb_grid = scipy.ndimage.zoom(posemb_grid, zoom, order=1).reshape(1, gs_new * gs_new, -1)
    return np.concatenate([posemb_tok, posemb_grid], axis=1)


def ours(family: str, pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    old = int(math.sqrt(pos_embed.shape[1] - 1))
    return resize_pos_embed(pos_embed, (grid, grid), (old, old), 1, rule_for(family))


# --- each rule against its reference ----------------------------------------------------------------

@pytest.mark.parametrize("pixels", [112, 224, 448, 1022])
def test_dinov2_rule_is_dinov2s_interpolate_pos_encoding(pixels: int) -> None:
    pos = table(37)                                   # the 518 px table DINOv2 interpolates on every forward
    assert torch.equal(ours("dinov2", pos, pixels // 14), ref_dinov2(pos, pixels, pixels, 14))


@pytest.mark.parametrize("pixels", [112, 448, 1024])
def test_mae_rule_is_maes_interpolate_pos_embed(pixels: int) -> None:
    pos = table(14)
    assert torch.equal(ours("mae", pos, pixels // 16), ref_mae(pos, pixels // 16))


@pytest.mark.parametrize("pixels", [112, 448, 1024])
def test_msn_rule_is_msns_interpolate_pos_encoding(pixels: int) -> None:
    pos = table(14)
    assert torch.equal(ours("msn", pos, pixels // 16), ref_msn(pos, (pixels // 16) ** 2))


@pytest.mark.parametrize("pixels", [112, 448, 1022])
def test_clip_rule_is_open_clips_resize_pos_embed(pixels: int) -> None:
    pos = table(16)
    grid = pixels // 14
    assert torch.equal(ours("clip", pos, grid), ref_open_clip(pos, (grid, grid)))
    # OpenCLIP's formula is also timm's default: nothing changes for the CLIP family
    assert torch.equal(ours("clip", pos, grid), resample_abs_pos_embed(pos, [grid, grid], num_prefix_tokens=1))


@pytest.mark.parametrize("pixels", [112, 448, 1024])
def test_supervised_vit_rule_is_vit_jax_linear_zoom(pixels: int) -> None:
    pos = table(14)
    want = ref_vit_jax(pos, pixels // 16).astype(np.float32)      # numpy zooms in float64
    np.testing.assert_allclose(ours("supervised_vit", pos, pixels // 16).numpy(), want, atol=1e-6, rtol=0)


def test_dinov2_rule_is_not_timms_default() -> None:
    """Why this module exists: timm's antialiased bicubic is not DINOv2's formula at 224 or 448."""
    pos = table(37)
    for grid in (16, 32):
        timm_default = resample_abs_pos_embed(pos, [grid, grid], num_prefix_tokens=1)
        assert (ours("dinov2", pos, grid) - timm_default).abs().max() > 1e-2


def test_native_grid_is_returned_unchanged_and_prefix_entries_are_kept() -> None:
    pos = table(37, prefix=1)
    for family in RULES:
        assert ours(family, pos, 37) is pos
    resized = resize_pos_embed(table(37, prefix=5), (16, 16), (37, 37), 5, RULES["dinov2"])
    assert resized.shape == (1, 5 + 256, 24) and torch.equal(resized[:, :5], table(37, prefix=5)[:, :5])


def test_bf16_table_is_resized_in_float32() -> None:
    pos = table(37)
    got = ours("dinov2", pos.bfloat16(), 32)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got[:, 1:], ref_dinov2(pos.bfloat16().float(), 448, 448, 14)[:, 1:].bfloat16())


def test_a_grid_the_official_formula_cannot_reach_is_a_config_error() -> None:
    # MSN's scale factor sqrt(841 / 196) times 14 floors to 28, not 29 (464 px): its code would crash
    with pytest.raises(ConfigError, match=r"resizing \(14, 14\) to \(29, 29\) gave \(28, 28\)"):
        ours("msn", table(14), 29)


def test_sam_and_cnns_keep_timm() -> None:
    assert rule_for("sam") is None and rule_for("cnn") is None
    assert type(load_backbone("sam_vitl16", demo=True, resolution=112).model).__name__ == "VisionTransformerSAM"


# --- what a loaded backbone really adds to its tokens --------------------------------------------

def added_position_table(bb: Backbone, pixels: int) -> torch.Tensor:
    """(tokens entering the first block) - (class/register tokens and patch embeddings)."""
    seen: dict[str, torch.Tensor] = {}
    model = bb.model
    hooks = [model.patch_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("patches", o)),
             model.pos_drop.register_forward_pre_hook(lambda m, i: seen.__setitem__("tokens", i[0]))]
    try:
        with torch.inference_mode():
            bb.pooled(torch.randn(1, 3, pixels, pixels, generator=torch.Generator().manual_seed(1)))
    finally:
        for hook in hooks:
            hook.remove()
    patches, tokens = seen["patches"], seen["tokens"]
    if bb.spec.arch == "sam":
        return tokens - patches
    flat = patches.reshape(1, -1, patches.shape[-1])
    prefix = [t for t in (model.cls_token, model.reg_token) if t is not None]
    if model.no_embed_class:            # registers: the table covers the patches only
        return tokens[:, sum(t.shape[1] for t in prefix):] - flat
    return tokens - torch.cat(prefix + [flat], dim=1)


def loaded(model_id: str, pixels: int, tmp_path: Path) -> tuple[Backbone, torch.Tensor]:
    """A backbone loaded through the real weights path, and the stored table of its file."""
    source = load_backbone(model_id, demo=True, resolution=pixels)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    save_file(state, tmp_path / f"{model_id}.safetensors")
    bb = load_backbone(model_id, demo=False, resolution=pixels, weights_dir=tmp_path,
                       arch_kwargs=get_model(model_id).demo_kwargs)
    return bb, state["pos_embed"]


REFERENCE_AT = {
    "dinov2_vitl14": lambda pos, px: ref_dinov2(pos, px, px, 14),
    "mae_vitl16": lambda pos, px: ref_mae(pos, px // 16),
    "msn_vitl16": lambda pos, px: ref_msn(pos, (px // 16) ** 2),
    "clip_vitl14": lambda pos, px: ref_open_clip(pos, (px // 14, px // 14)),
    "openclip_vith14": lambda pos, px: ref_open_clip(pos, (px // 14, px // 14)),
    "vit_l16_in21k": lambda pos, px: torch.from_numpy(ref_vit_jax(pos, px // 16)).float(),
}


@pytest.mark.parametrize("model_id", sorted(REFERENCE_AT))
def test_loaded_backbone_adds_the_official_table_at_448(model_id: str, tmp_path: Path) -> None:
    bb, stored = loaded(model_id, 448, tmp_path)
    assert isinstance(bb.model, OfficialPosEmbedViT)
    want = REFERENCE_AT[model_id](stored, 448)
    assert want.shape[1] == 1 + (448 // MODELS[model_id].patch_size) ** 2
    torch.testing.assert_close(added_position_table(bb, 448), want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("model_id", ["dinov2_vitl14_reg4", "dinov2_vitg14_reg4"])
@pytest.mark.parametrize("pixels", [224, 448])
def test_dinov2_with_registers_resizes_its_patch_table_by_the_hubs_reg_rule(model_id: str, pixels: int,
                                                                             tmp_path: Path) -> None:
    """Issue 20/24: the reg checkpoints run with antialias=True and no 0.1 offset (hub/backbones.py)."""
    bb, stored = loaded(model_id, pixels, tmp_path)
    assert bb.model.no_embed_class and stored.shape[1] == 37 * 37
    padded = torch.cat([torch.zeros_like(stored[:, :1]), stored], dim=1)
    want = ref_dinov2_hub(padded, pixels, pixels, 14, offset=0.0, antialias=True)[:, 1:]
    torch.testing.assert_close(added_position_table(bb, pixels), want, atol=1e-6, rtol=0)
    # the plain DINOv2 rule (0.1 offset, no antialias) is measurably different here
    old = ref_dinov2_hub(padded, pixels, pixels, 14, offset=0.1, antialias=False)[:, 1:]
    assert (old - want).abs().max() > 1e-3


def test_the_hub_reference_with_the_plain_settings_is_the_studys_dinov2_formula() -> None:
    pos = torch.randn(1, 1 + 37 * 37, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ref_dinov2_hub(pos, 448, 448, 14, offset=0.1, antialias=False),
                               ref_dinov2(pos, 448, 448, 14), atol=0, rtol=0)


def test_dinov2_at_its_own_518_px_adds_the_stored_table(tmp_path: Path) -> None:
    bb, stored = loaded("dinov2_vits14", 518, tmp_path)
    torch.testing.assert_close(added_position_table(bb, 518), stored, atol=1e-6, rtol=0)


def test_sam_at_1024_adds_its_stored_table_unchanged(tmp_path: Path) -> None:
    """The official SAM encoder adds its 64x64 table as is (it only runs at 1024 px)."""
    bb, stored = loaded("sam_vitl16", 1024, tmp_path)
    assert stored.shape == (1, 64, 64, 64)
    torch.testing.assert_close(added_position_table(bb, 1024), stored, atol=1e-6, rtol=0)


def test_fine_tuning_trains_the_stored_518_table_through_the_resize() -> None:
    """As in the study: DINOv2 interpolates its 37x37 table on every forward, so gradients reach it."""
    bb = load_backbone("dinov2_vits14", demo=True, resolution=224)
    bb.train()
    bb.head_features(torch.randn(2, 3, 224, 224)).square().sum().backward()
    grad = bb.model.pos_embed.grad
    assert grad is not None and grad.shape == (1, 1 + 37 * 37, 32) and grad[:, 1:].abs().sum() > 0


def test_deep_copy_keeps_the_rule() -> None:
    bb = load_backbone("mae_vitl16", demo=True, resolution=448)
    twin = copy.deepcopy(bb)
    assert isinstance(twin.model, OfficialPosEmbedViT) and twin.model.pos_embed_rule == RULES["mae"]
    x = torch.randn(1, 3, 448, 448)
    with torch.inference_mode():
        assert torch.equal(bb.head_features(x), twin.head_features(x))
