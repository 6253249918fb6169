"""Switch ``vit_tokens_after_final_norm``: the study fed its heads the Hugging Face ViTs' raw
``hidden_states`` (before the final LayerNorm), DINOv2's normalised tokens.

Observed on the computation: every feature kind a head gets (class tokens of the last 4 blocks, the
mean patch token, the fine-tune head input, the U-Net decoder's 5 maps, the linear decoder's map)
against transformers' own ``hidden_states`` of a ViTForImageClassification (the class the study
loads), and against a block-by-block forward of the CLIP ViT; then the class token a real demo kNN
cell extracts under each value, and the record it writes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from types import SimpleNamespace

from radbench_core.config.profiles import Grid, Profile, _hparams, get_profile
from radbench_core.config.switches import HF_VIT_MODELS, switches
from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.models.features import load_backbone, with_token_norm
from radbench_core.protocols.segmentation import _frozen_task
from radbench_core.run import inputs as inputs_mod
from test_study_vit_l16 import ATOL, _backbone, _images, official  # noqa: F401

transformers = pytest.importorskip("transformers")


def test_the_tokens_are_transformers_hidden_states_under_the_study_and_normed_under_ours(official):
    model, weights = official
    ours = _backbone(weights)
    study = with_token_norm(ours, "hidden_states")
    x = _images()
    with torch.no_grad():
        hidden = model.vit(pixel_values=x, output_hidden_states=True).hidden_states[1:]   # after each block
        normed = [model.vit.layernorm(h) for h in hidden]
        depth = len(hidden)
        for bb, want in ((study, hidden), (ours, normed)):
            pooled, head, maps = bb.pooled(x), bb.head_features(x), bb.patch_maps(x)
            torch.testing.assert_close(pooled["cls"], torch.stack([h[:, 0] for h in want[-4:]], 1),
                                       atol=ATOL, rtol=0)
            torch.testing.assert_close(pooled["patch_mean"], want[-1][:, 1:].mean(1), atol=ATOL, rtol=0)
            torch.testing.assert_close(head, want[-1][:, 0], atol=ATOL, rtol=0)
            for got, block in zip(maps, [max(0, depth - 5 + i) for i in range(5)]):
                torch.testing.assert_close(got.flatten(2).transpose(1, 2), want[block][:, 1:], atol=ATOL, rtol=0)
        # the two really differ (the final LayerNorm is not an identity here)
        assert float((hidden[-1] - normed[-1]).abs().max()) > 0.1
    # the original is untouched (the pool keeps it for other cells), weights are shared
    assert ours.token_norm == "final_norm" and study.model is ours.model


def test_the_study_linear_decoder_reads_a_fresh_layernorm_of_the_raw_last_block(official):
    """The study's forward_features: nn.LayerNorm(D, eps=1e-6) built in the wrapper (weight 1, bias 0)
    over hidden_states[-1][:, 1:]; its U-Net decoder reads hidden_states[-5:] raw."""
    model, weights = official
    x = _images(1)
    with torch.no_grad():
        hidden = model.vit(pixel_values=x, output_hidden_states=True).hidden_states[1:]
        fresh = torch.nn.LayerNorm(hidden[-1].shape[-1], eps=1e-6)
        for tokens, kind, last in (("hidden_states", "linear", fresh(hidden[-1][:, 1:])),
                                   ("hidden_states", "unet", hidden[-1][:, 1:]),
                                   ("final_norm", "linear", model.vit.layernorm(hidden[-1])[:, 1:])):
            bb = with_token_norm(_backbone(weights), tokens)
            task = _frozen_task(SimpleNamespace(backbone=bb, device="cpu", num_classes=2), {"decoder": kind})
            maps = task.encode(x)
            torch.testing.assert_close(maps[-1].flatten(2).transpose(1, 2), last, atol=ATOL, rtol=0)
            first = hidden[max(0, len(hidden) - 5)]              # the U-Net's shallowest skip
            first = first if tokens == "hidden_states" else model.vit.layernorm(first)
            torch.testing.assert_close(maps[0].flatten(2).transpose(1, 2), first[:, 1:], atol=ATOL, rtol=0)


def _clip_blocks(model, x: torch.Tensor) -> torch.Tensor:
    """A ViT written out block by block (transformers' CLIPVisionTransformer order): patch embedding,
    class token + positions, pre_layrnorm (CLIP; an identity elsewhere), the blocks; ``hidden_states[-1]`` is what the blocks leave,
    post_layernorm comes after."""
    t = model.norm_pre(model._pos_embed(model.patch_embed(x)))     # timm's embedding (+ its position rule)
    for block in model.blocks:
        t = block(t)
    return t


@pytest.mark.parametrize("model_id", ["clip_vitl14", "openclip_vith14"])
def test_clip_class_token_is_before_post_layernorm_under_the_study(model_id: str):
    bb = load_backbone(model_id, demo=True, resolution=42)
    with torch.no_grad():
        bb.model.norm.weight.normal_(1.0, 0.5)            # a final norm that is no identity
        bb.model.norm.bias.normal_(0.0, 0.5)
        x = torch.randn(2, 3, 42, 42, generator=torch.Generator().manual_seed(1))
        last = _clip_blocks(bb.model, x)
        study = with_token_norm(bb, "hidden_states")
        torch.testing.assert_close(study.pooled(x)["cls"][:, -1], last[:, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(study.head_features(x), last[:, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(bb.pooled(x)["cls"][:, -1], bb.model.norm(last)[:, 0], atol=1e-5, rtol=0)
        assert float((last[:, 0] - bb.model.norm(last)[:, 0]).abs().max()) > 0.1


def test_the_fine_tune_head_input_keeps_its_gradient_under_the_study():
    bb = with_token_norm(load_backbone("mae_vitl16", demo=True, resolution=32), "hidden_states")
    bb.head_features(torch.randn(1, 3, 32, 32)).sum().backward()
    assert bb.model.blocks[-1].mlp.fc2.weight.grad is not None
    assert bb.model.norm.weight.grad is None             # the final norm is not on the path


def test_the_switch_names_the_studys_hugging_face_vits_and_a_bad_value_is_a_config_error():
    sw = switches()["vit_tokens_after_final_norm"]
    assert set(sw.models) == set(HF_VIT_MODELS) == {"clip_vitl14", "openclip_vith14", "mae_vitl16",
                                                     "msn_vitl16", "vit_l16_in21k"}
    for protocol in sw.protocols:
        assert get_profile("paper").hparams_for(protocol)["vit_tokens"] == "hidden_states"
        assert get_profile("sound").hparams_for(protocol).get("vit_tokens", "final_norm") == "final_norm"
        assert "vit_tokens" not in get_profile("demo").hparams_for(protocol)
    paper = get_profile("paper").hparams_for("knn")
    # DINOv2's tokens stay normalised on the study side too (the study normalised them)
    assert inputs_mod.vit_tokens(Cell("dinov2_vitl14", "nih", "knn"), paper) == "final_norm"
    assert inputs_mod.vit_tokens(Cell("clip_vitl14", "nih", "knn"), paper) == "hidden_states"
    with pytest.raises(ConfigError, match="vit_tokens"):
        with_token_norm(load_backbone("mae_vitl16", demo=True, resolution=32), "pre")


def _knn_profile(value: str) -> Profile:
    return Profile(name="t", description="test", demo=True, grids=(Grid(("vit_l16_in21k",), ("nih",), ("knn",)),),
                   hparams=_hparams(paper=False), cls_resolution=32, phantom_size="tiny", batch_size=16,
                   num_workers=0, switches={"vit_tokens_after_final_norm": value})


def test_a_demo_knn_cell_gets_the_switched_class_token(tmp_path, monkeypatch):
    """The class token a real demo kNN cell extracts for its first training image, against the
    blocks written out on the image the backbone received; the record carries the switch."""
    from radbench_core.run.feature_cache import FeatureCache
    from radbench_core.run.runner import BackbonePool, RunContext, run_cell
    seen: dict = {}
    real = inputs_mod.extract_splits

    def spy(backbone, datasets, **kw):
        out = real(backbone, datasets, **kw)
        seen.update(image=datasets["train"][0]["image"], model=backbone.model, cls=out["train"]["cls"][0, -1])
        return out
    monkeypatch.setattr(inputs_mod, "extract_splits", spy)
    got, pool = {}, BackbonePool()
    for value in ("hidden_states", "final_norm"):
        ctx = RunContext(profile=_knn_profile(value), cache_dir=tmp_path / "c", run_dir=tmp_path / value,
                         progress=False)
        rec = run_cell(Cell("vit_l16_in21k", "nih", "knn"), ctx, pool, FeatureCache(tmp_path / "c" / "features"))
        assert seen, f"{value}: no extraction (a cache hit across values would be a key bug)"
        with torch.no_grad():
            last = _clip_blocks(seen["model"], seen["image"][None])[0, 0]       # plain ViT: norm_pre = Identity
            want = last if value == "hidden_states" else seen["model"].norm(last)
        np.testing.assert_allclose(seen.pop("cls"), want.numpy(), atol=1e-4, rtol=0)
        got[value] = want
        seen.clear()
        assert rec.switches["vit_tokens_after_final_norm"] == value
        assert ("vit_tokens_after_final_norm" in rec.deviations) == (value == "final_norm")
        other = {k: v for k, v in rec.switches.items() if k != "vit_tokens_after_final_norm"}
        got.setdefault("others", other)
        assert other == got["others"]                     # no other switch moved
    assert float((got["hidden_states"] - got["final_norm"]).abs().max()) > 0.1
