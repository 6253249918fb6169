"""Beyond the study (issue 24): DINOv2 with registers (torch hub files) and SigLIP so400m (open_clip's
hub file ``timm/ViT-SO400M-14-SigLIP-384``) load as published, every tensor accounted for, official features.

DINOv2: the file is the ``state_dict()`` of ``official_vits.Dinov2Hub`` (the hub's key names and
shapes at a tiny width: ``register_tokens``, ``mask_token``, ``blocks.N.ls1.gamma``, a 1 + 37*37
table; ViT-g's SwiGLU ``mlp.w12``/``mlp.w3``), saved under the released name; its forward follows
the hub model (registers after the class token, reg table rule: antialiased, no offset).
SigLIP: the file is written by open_clip itself (``CustomTextCLIP`` with a timm trunk, MAP head and
a text tower), as open_clip's hub repo holds it; the reference is that model's own trunk.
"""

from __future__ import annotations

import pytest
import torch

from official_vits import Dinov2Hub, assert_backbone_matches_official
from synthetic import randomise

from radbench_core.core.errors import WeightsError
from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model
from radbench_core.models.weights import find_weights

ATOL = 1e-5
REG = {"dinov2_vitl14_reg4": False, "dinov2_vitg14_reg4": True}      # id -> SwiGLU (ViT-g)


@pytest.fixture(scope="module", params=sorted(REG))
def hub_file(request, tmp_path_factory):
    model_id = request.param
    kw = get_model(model_id).demo_kwargs
    official = Dinov2Hub(kw["embed_dim"], kw["depth"], kw["num_heads"], swiglu=REG[model_id]).eval()
    randomise(official, 21)
    with torch.no_grad():
        for block in official.blocks:
            block.attn.qkv.weight.mul_(10)     # sharp attention: positions matter to every token
    weights = tmp_path_factory.mktemp("weights")
    torch.save(official.state_dict(), weights / f"{model_id}_pretrain.pth")   # the hub's file name
    return model_id, official, weights


def test_hub_file_is_found_under_its_published_name(hub_file) -> None:
    model_id, _, weights = hub_file
    assert find_weights(get_model(model_id), weights).path.name == f"{model_id}_pretrain.pth"


def test_every_tensor_of_the_hub_file_is_in_the_timm_model(hub_file) -> None:
    model_id, official, weights = hub_file
    bb = load_backbone(model_id, demo=False, weights_dir=weights, arch_kwargs=get_model(model_id).demo_kwargs)
    ours, theirs = bb.model.state_dict(), official.state_dict()
    # timm's no_embed_class model: the class row of the table folded into the class token
    torch.testing.assert_close(ours["cls_token"], theirs["cls_token"] + theirs["pos_embed"][:, :1], atol=0, rtol=0)
    torch.testing.assert_close(ours["pos_embed"], theirs["pos_embed"][:, 1:], atol=0, rtol=0)
    torch.testing.assert_close(ours["reg_token"], theirs["register_tokens"], atol=0, rtol=0)
    renamed = {k.replace("mlp.w12", "mlp.fc1").replace("mlp.w3", "mlp.fc2"): v for k, v in theirs.items()
               if k not in ("cls_token", "pos_embed", "register_tokens", "mask_token")}
    assert set(ours) == set(renamed) | {"cls_token", "pos_embed", "reg_token"}
    for key, value in renamed.items():
        torch.testing.assert_close(ours[key], value, atol=0, rtol=0, msg=key)


@pytest.mark.parametrize("pixels", [518, 224])
def test_hub_file_gives_the_official_class_tokens_and_patch_maps(hub_file, pixels: int) -> None:
    model_id, official, weights = hub_file
    assert_backbone_matches_official(model_id, official, weights, pixels, patch=14, prefix=5,  # class + 4 registers
                                     atol=ATOL)


def test_a_plain_dinov2_file_under_the_reg_name_is_refused(tmp_path) -> None:
    """A hub file without registers is another model: named, not loaded with random registers."""
    kw = get_model("dinov2_vitl14_reg4").demo_kwargs
    plain = Dinov2Hub(kw["embed_dim"], kw["depth"], kw["num_heads"])
    state = {k: v for k, v in plain.state_dict().items() if k != "register_tokens"}
    torch.save(state, tmp_path / "dinov2_vitl14_reg4.pth")
    with pytest.raises(WeightsError, match="reg_token"):
        load_backbone("dinov2_vitl14_reg4", demo=False, weights_dir=tmp_path, arch_kwargs=kw)


# ---- SigLIP so400m/14: open_clip's hub file (timm trunk under visual.trunk., MAP head, text tower) ---

def _tiny_siglip_trunk() -> str:
    """open_clip builds the image tower with ``timm.create_model(name)``; the so400m config names
    vit_so400m_patch14_siglip_384 (MAP pooling). A tiny model of that class, under its own name."""
    import timm
    from timm.models import register_model
    name = "radbench_test_tiny_siglip_so400m_trunk"
    if not timm.is_model(name):
        kw = {**get_model("siglip_so400m14").demo_kwargs, **get_model("siglip_so400m14").arch_kwargs}

        def radbench_test_tiny_siglip_so400m_trunk(pretrained: bool = False, **extra):
            extra = {k: v for k, v in extra.items() if not k.startswith(("pretrained_cfg", "cache_dir"))}
            return timm.create_model("vit_so400m_patch14_siglip_384", pretrained=False, **{**kw, **extra})
        register_model(radbench_test_tiny_siglip_so400m_trunk)
    return name


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    pytest.importorskip("open_clip")
    from open_clip.model import CustomTextCLIP
    # open_clip's ViT-SO400M-14-SigLIP-384.json: timm trunk, timm_pool "map", no projection; text tower
    vision = dict(timm_model_name=_tiny_siglip_trunk(), timm_model_pretrained=False, timm_pool="map",
                  timm_proj="none", image_size=384)
    text = dict(context_length=8, vocab_size=64, width=32, heads=2, layers=1, no_causal_mask=True,
                proj_bias=True, pool_type="last")
    model = CustomTextCLIP(embed_dim=32, vision_cfg=vision, text_cfg=text, init_logit_bias=-10).eval()
    randomise(model, 31)
    weights = tmp_path_factory.mktemp("weights")
    torch.save(model.state_dict(), weights / "siglip_so400m14.pth")   # open_clip_pytorch_model.bin, renamed
    return model, weights


@pytest.mark.parametrize("pixels", [378, 224])   # 378: its 27 x 27 table as is (384 px floors to it)
def test_siglip_open_clip_file_loads_every_trunk_tensor_and_gives_its_tokens(siglip, pixels: int) -> None:
    official, weights = siglip
    theirs = official.state_dict()
    assert any(k.startswith("text.") for k in theirs) and any(".attn_pool." in k for k in theirs)
    bb = load_backbone("siglip_so400m14", demo=False, resolution=pixels, weights_dir=weights,
                       arch_kwargs=get_model("siglip_so400m14").demo_kwargs)
    ours = bb.model.state_dict()
    trunk = {k[len("visual.trunk."):]: v for k, v in theirs.items()
             if k.startswith("visual.trunk.") and ".attn_pool." not in k and not k.startswith("visual.trunk.attn_pool.")}
    assert set(ours) == set(trunk)
    for key, value in trunk.items():
        torch.testing.assert_close(ours[key], value, atol=0, rtol=0, msg=key)
    x = torch.randn(2, 3, pixels, pixels, generator=torch.Generator().manual_seed(3))
    tower = official.visual.trunk
    with torch.no_grad():
        if pixels != 384:     # open_clip / timm resize a timm trunk's table with timm's resample
            tower.set_input_size(img_size=pixels)
        want = tower.forward_features(x)
        tower.set_input_size(img_size=384)
        pooled = bb.pooled(x)
    torch.testing.assert_close(pooled["patch_mean"], want.mean(dim=1), atol=ATOL, rtol=0)
