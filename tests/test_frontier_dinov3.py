"""Beyond the study (issue 24): DINOv3 loads its release file (facebookresearch/dinov3 key layout).

No official library installs here, so the file is the ``state_dict()`` of ``official_vits.Dinov3Release``
(the release's attribute names and shapes at a tiny width, random values) saved under the released
name; its forward follows the official code step by step, independently of timm. radbench must find
the file, hold every tensor of it (after the official k-mask of the qkv bias), and give the official
class tokens and patch maps, including with the released bfloat16-rounded RoPE periods and the
released all-zero ``bias_mask`` (both of which timm's own converter gets wrong).
"""

from __future__ import annotations

import pytest
import torch

from official_vits import Dinov3Release, assert_backbone_matches_official
from synthetic import randomise

from radbench_core.core.errors import WeightsError
from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model
from radbench_core.models.weights import find_weights

ATOL = 1e-5
MODEL = "dinov3_vits16"
FILE = "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"     # the released name of ViT-S/16


def _official(mask: str) -> Dinov3Release:
    kw = get_model(MODEL).demo_kwargs
    model = Dinov3Release(kw["embed_dim"], kw["depth"], kw["num_heads"]).eval()
    randomise(model, 11)
    with torch.no_grad():
        for block in model.blocks:      # sharp attention, so positions (RoPE) matter to every token
            block.attn.qkv.weight.mul_(10)
        model.rope_embed.periods.copy_(model.rope_embed.periods.bfloat16().float())   # as released
        if mask == "released":       # the released files' bias_mask is all zero (dinov3 issue #195)
            for block in model.blocks:
                block.attn.qkv.bias_mask.zero_()
    return model


@pytest.fixture(scope="module", params=["init", "released"])
def release(request, tmp_path_factory):
    model = _official(request.param)
    weights = tmp_path_factory.mktemp("weights")
    torch.save(model.state_dict(), weights / FILE)
    return model, weights


def _expected_timm_state(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The documented mapping, written out by hand: what each timm tensor must hold."""
    out = {}
    for key, value in official.items():
        if key in ("mask_token", "rope_embed.periods") or key.endswith("bias_mask"):
            continue
        if key.endswith("attn.qkv.bias"):
            bias = value * official[key + "_mask"]
            dim = bias.shape[0] // 3
            out[key.replace("qkv.bias", "q_bias")] = bias[:dim]
            out[key.replace("qkv.bias", "v_bias")] = bias[2 * dim:]
            continue
        key = {"storage_tokens": "reg_token"}.get(key, key)
        out[key.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2")] = value
    return out


def test_release_file_is_found_under_its_published_name(release) -> None:
    _, weights = release
    assert find_weights(get_model(MODEL), weights).path == weights / FILE


def test_every_tensor_of_the_release_file_is_in_the_timm_model(release) -> None:
    official, weights = release
    bb = load_backbone(MODEL, demo=False, weights_dir=weights, arch_kwargs=get_model(MODEL).demo_kwargs)
    ours = bb.model.state_dict()
    want = _expected_timm_state(official.state_dict())
    assert set(ours) == set(want)
    for key, value in want.items():
        torch.testing.assert_close(ours[key], value, atol=0, rtol=0, msg=key)
    # the released (bfloat16-rounded) RoPE periods replace timm's float32 recomputation
    torch.testing.assert_close(bb.model.rope.periods, official.rope_embed.periods, atol=0, rtol=0)
    assert not torch.equal(official.rope_embed.periods, bb.model.rope._compute_periods())


@pytest.mark.parametrize("pixels", [224, 256, 448])
def test_release_gives_the_official_class_tokens_and_patch_maps(release, pixels: int) -> None:
    official, weights = release
    assert_backbone_matches_official(MODEL, official, weights, pixels, patch=16, prefix=5,  # class + 4 storage
                                     atol=ATOL)


def test_timms_own_converter_would_not_give_the_official_model(release) -> None:
    """Why radbench converts the release itself: timm recomputes the RoPE periods in float32 (the
    released ones are bfloat16-rounded) and splits the raw qkv bias, ignoring the released zero mask."""
    import timm
    from timm.models.eva import checkpoint_filter_fn
    official, weights = release
    kw = get_model(MODEL).demo_kwargs
    model = timm.create_model(get_model(MODEL).timm_arch, pretrained=False, num_classes=0, **kw).eval()
    model.load_state_dict(checkpoint_filter_fn(dict(official.state_dict()), model))
    ours = load_backbone(MODEL, demo=False, weights_dir=weights, arch_kwargs=kw).model
    rope_gap = (model.rope.get_embed(shape=(14, 14)) - ours.rope.get_embed(shape=(14, 14))).abs().max()
    assert rope_gap > 1e-3                          # radians of the rotation tables at 224 px
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (model.forward_features(x) - official.intermediate(x, 1)[-1]).abs().max()
    masked = not any(block.attn.qkv.bias_mask.any() for block in official.blocks)
    assert gap > 1e-3 if masked else gap > 1e-6


def test_timm_hub_file_without_qkv_bias_loads_as_zero_bias(tmp_path) -> None:
    import timm
    kw = get_model(MODEL).demo_kwargs
    plain = timm.create_model("vit_small_patch16_dinov3", pretrained=False, num_classes=0, **kw).eval()
    randomise(plain, 12)
    from safetensors.torch import save_file
    save_file(plain.state_dict(), str(tmp_path / f"{MODEL}.safetensors"))
    bb = load_backbone(MODEL, demo=False, weights_dir=tmp_path, arch_kwargs=kw)
    assert all(not v.any() for k, v in bb.model.state_dict().items() if k.endswith(("q_bias", "v_bias")))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(bb.pooled(x)["cls"][:, -1], plain.forward_features(x)[:, 0], atol=ATOL, rtol=0)


def test_a_release_file_with_another_head_count_is_refused_naming_the_rope_periods(tmp_path) -> None:
    """Same width, other head count: every weight has the model's shape, only the RoPE periods (one
    per 4 head dims) tell; loading it would silently run the wrong attention split."""
    kw = get_model(MODEL).demo_kwargs
    wrong = Dinov3Release(kw["embed_dim"], kw["depth"], kw["num_heads"] * 2)
    torch.save(wrong.state_dict(), tmp_path / FILE)
    with pytest.raises(WeightsError, match=r"rope\.periods has shape \(2,\), the model's is \(4,\)"):
        load_backbone(MODEL, demo=False, weights_dir=tmp_path, arch_kwargs=kw)
