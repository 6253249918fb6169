"""Position-table rules (models/pos_embed.py) where the square-grid tests of test_pos_embed.py cannot
tell a mistake apart: transformers' own ``interpolate_pos_encoding`` as the reference of the Hugging
Face rules, non-square targets (an image wider than tall) against each official formula, the dtype
each rule returns, and a ViT without dynamic image size left to timm. Written to kill the mutants
that survived ``make mutants MUTANT=models/pos_embed.py`` (docs/testing.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from transformers import Dinov2Config
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings

from radbench_core.models.pos_embed import RULES, OfficialPosEmbedViT, install, resize_pos_embed


def _table(side: int, dim: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 1 + side * side, dim, generator=torch.Generator().manual_seed(seed))


def _ref_dinov2(pos_embed: torch.Tensor, w: int, h: int, patch: int) -> torch.Tensor:
    """dinov2/models/vision_transformer.py interpolate_pos_encoding(x, w, h), ``B, nc, w, h = x.shape``:
    w is the image's height in pixels, h its width."""
    n = pos_embed.shape[1] - 1
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch + 0.1, h // patch + 0.1
    patches = F.interpolate(patches.reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), dim).permute(0, 3, 1, 2),
                            scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)), mode="bicubic")
    assert (int(w0), int(h0)) == tuple(patches.shape[-2:])
    return torch.cat((cls, patches.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)


@pytest.mark.parametrize("rule", ["hf_dinov2", "hf_siglip"])
@pytest.mark.parametrize("height,width", [(224, 224), (224, 448), (448, 112)])
def test_hugging_face_rules_are_transformers_interpolate_pos_encoding(rule, height, width):
    config = Dinov2Config(hidden_size=12, num_attention_heads=2, image_size=518, patch_size=14)
    embeddings = Dinov2Embeddings(config)
    with torch.no_grad():
        embeddings.position_embeddings.copy_(_table(37))
    grid = (height // 14, width // 14)
    tokens = torch.zeros(1, 1 + grid[0] * grid[1], 12)
    want = embeddings.interpolate_pos_encoding(tokens, height, width)
    got = resize_pos_embed(embeddings.position_embeddings.detach(), grid, (37, 37), 1, RULES[rule])
    assert got.shape == want.shape
    assert torch.equal(got, want.detach())


@pytest.mark.parametrize("height,width", [(224, 448), (448, 224), (112, 336)])
def test_dinov2_rule_at_a_non_square_grid_is_dinov2s_formula(height, width):
    pos = _table(37)
    got = resize_pos_embed(pos, (height // 14, width // 14), (37, 37), 1, RULES["dinov2"])
    assert torch.equal(got, _ref_dinov2(pos, height, width, 14))


@pytest.mark.parametrize("grid", [(16, 32), (32, 8)])
def test_size_rules_reach_a_non_square_grid_in_its_orientation(grid):
    """MAE, OpenCLIP, DINOv2-reg resize to an output size: each equals its call with (rows, columns)."""
    pos = _table(14)
    patches = pos[:, 1:].reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
    calls = {"mae": dict(mode="bicubic", align_corners=False),
             "clip": dict(mode="bicubic", antialias=True, align_corners=False),
             "dinov2_reg": dict(mode="bicubic", antialias=True)}
    for family, kwargs in calls.items():
        want = F.interpolate(patches, size=grid, **kwargs).permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)
        got = resize_pos_embed(pos, grid, (14, 14), 1, RULES[family])
        assert torch.equal(got[:, 1:], want), family


def test_vit_jax_rule_is_linear_zoom_at_a_non_square_grid_and_keeps_the_dtype():
    pos = _table(7)
    grid = pos[:, 1:].reshape(1, 7, 7, -1).permute(0, 3, 1, 2).contiguous()
    out = RULES["supervised_vit"].resize(grid, (14, 21))
    assert out.dtype == torch.float32                               # float64 inside, cast back
    want = scipy.ndimage.zoom(grid.double().numpy()[0], (1, 2, 3), order=1)
    np.testing.assert_allclose(out[0].double().numpy(), want, atol=1e-6)


def test_a_vit_without_dynamic_image_size_keeps_timms_position_add():
    torch.manual_seed(0)
    plain = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2,
                              num_classes=0, dynamic_img_size=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = plain.forward_features(x)
        model = install(plain, "dinov2")
        assert type(model) is OfficialPosEmbedViT
        got = model.forward_features(x)
    assert torch.equal(got, want)


def test_a_non_square_stored_table_is_read_rows_first():
    """A ViT built for a non-square image (timm img_size=(56, 112), grid 4 x 8) stores rows x columns."""
    pos = torch.randn(1, 1 + 4 * 8, 6, generator=torch.Generator().manual_seed(3))
    got = resize_pos_embed(pos, (8, 16), (4, 8), 1, RULES["mae"])
    patches = pos[:, 1:].reshape(1, 4, 8, 6).permute(0, 3, 1, 2)
    want = F.interpolate(patches, size=(8, 16), mode="bicubic", align_corners=False)
    assert torch.equal(got[:, 1:], want.permute(0, 2, 3, 1).reshape(1, 128, 6))


def test_an_unreachable_grid_is_a_one_line_error_naming_the_rule():
    from radbench_core.core.errors import ConfigError
    with pytest.raises(ConfigError) as err:
        resize_pos_embed(_table(14), (29, 29), (14, 14), 1, RULES["msn"])
    assert str(err.value) == ("position table (msn rule): resizing (14, 14) to (29, 29) gave (28, 28). "
                              "Fix: use a resolution whose patch grid the model's own formula reaches exactly.")


def test_install_leaves_models_without_an_official_rule_or_not_a_plain_vit_alone():
    from timm.models.resnet import ResNet, BasicBlock
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=0)
    assert type(install(vit, "sam")) is VisionTransformer           # no rule: timm's resampling stays
    cnn = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=0)
    assert type(install(cnn, "dinov2")) is ResNet and not hasattr(cnn, "pos_embed_rule")
