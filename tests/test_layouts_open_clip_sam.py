"""Beyond the study (issue 24): BiomedCLIP (open_clip hub layout, timm trunk) and MedSAM (SAM ViT-B)
load the files their official libraries write, every tensor equal, the official features."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from synthetic import randomise

from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model
from radbench_core.models.weights import find_weights

ATOL = 1e-5



def _tiny_trunk_name() -> str:
    """open_clip builds its image tower with ``timm.create_model(name)``; BiomedCLIP names
    vit_base_patch16_224. A tiny ViT of the same class is registered under its own name for the test."""
    import timm
    from timm.models import register_model
    name = "radbench_test_tiny_biomedclip_trunk"
    if not timm.is_model(name):
        kw = get_model("biomedclip_vitb16").demo_kwargs

        def radbench_test_tiny_biomedclip_trunk(pretrained: bool = False, **extra):
            extra = {k: v for k, v in extra.items() if not k.startswith(("pretrained_cfg", "cache_dir"))}
            return timm.create_model("vit_base_patch16_224", pretrained=False, **{**kw, **extra})
        register_model(radbench_test_tiny_biomedclip_trunk)
    return name


@pytest.fixture(scope="module")
def biomedclip(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip")
    from open_clip.model import CLIP
    # BiomedCLIP's open_clip_config.json vision_cfg: timm trunk, no pooling in timm, linear projection
    vision = dict(timm_model_name=_tiny_trunk_name(), timm_model_pretrained=False, timm_pool="", timm_proj="linear",
                  image_size=224)
    text = dict(context_length=8, vocab_size=64, width=16, heads=2, layers=1)
    model = CLIP(embed_dim=24, vision_cfg=vision, text_cfg=text).eval()
    randomise(model, 3)
    folder = tmp_path_factory.mktemp("weights") / "BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    assert open_clip.__version__
    return model, folder.parent


@pytest.mark.parametrize("pixels", [224, 448])
def test_biomedclip_trunk_loads_every_tensor_and_gives_the_official_tokens(biomedclip, pixels: int) -> None:
    official, weights = biomedclip
    assert find_weights(get_model("biomedclip_vitb16"), weights).path.name == "open_clip_pytorch_model.bin"
    bb = load_backbone("biomedclip_vitb16", demo=False, resolution=pixels, weights_dir=weights,
                       arch_kwargs=get_model("biomedclip_vitb16").demo_kwargs)
    theirs = official.state_dict()
    ours = bb.model.state_dict()
    assert {f"visual.trunk.{k}" for k in ours} == {k for k in theirs if k.startswith("visual.trunk.")}
    for key, value in ours.items():
        torch.testing.assert_close(value, theirs[f"visual.trunk.{key}"], atol=0, rtol=0)
    x = torch.randn(2, 3, pixels, pixels, generator=torch.Generator().manual_seed(4))
    trunk = official.visual.trunk
    with torch.no_grad():
        if pixels != 224:   # open_clip resizes a timm trunk's table with timm's resample (antialiased bicubic)
            trunk.set_input_size(img_size=pixels)
        want = trunk.forward_features(x)
        trunk.set_input_size(img_size=224)
        pooled = bb.pooled(x)
    torch.testing.assert_close(pooled["cls"][:, -1], want[:, 0], atol=ATOL, rtol=0)


@pytest.fixture(scope="module")
def medsam(tmp_path_factory):
    pytest.importorskip("segment_anything")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    kw = get_model("medsam_vitb16").demo_kwargs
    encoder = ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=kw["embed_dim"], depth=kw["depth"],
                              num_heads=kw["num_heads"], mlp_ratio=4, out_chans=kw["neck_chans"], qkv_bias=True,
                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=14,
                              global_attn_indexes=tuple(kw["global_attn_indexes"]))
    chans = kw["neck_chans"]
    sam = Sam(image_encoder=encoder,
              prompt_encoder=PromptEncoder(embed_dim=chans, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                                           mask_in_chans=4),
              mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=chans, iou_head_hidden_dim=8,
                                       transformer=TwoWayTransformer(depth=1, embedding_dim=chans, mlp_dim=16,
                                                                     num_heads=2))).eval()
    randomise(sam, 5)
    weights = tmp_path_factory.mktemp("weights")
    torch.save(sam.state_dict(), weights / "medsam_vit_b.pth")   # the released file name, as published
    return sam, weights


def test_medsam_loads_the_image_encoder_and_gives_the_official_last_block(medsam) -> None:
    sam, weights = medsam
    assert find_weights(get_model("medsam_vitb16"), weights).path.name == "medsam_vit_b.pth"
    bb = load_backbone("medsam_vitb16", demo=False, resolution=1024, weights_dir=weights,
                       arch_kwargs=get_model("medsam_vitb16").demo_kwargs)
    theirs = sam.state_dict()
    for key, value in bb.model.state_dict().items():
        torch.testing.assert_close(value, theirs["image_encoder." + key.replace(".mlp.fc", ".mlp.lin")], atol=0, rtol=0)
    encoder = sam.image_encoder
    x = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(6))   # MedSAM: [0, 1] input
    seen = {}
    hook = encoder.blocks[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("last", o))
    with torch.no_grad():
        encoder(x)
        ours = bb.head_features(bb.normalize(x))
    hook.remove()
    torch.testing.assert_close(bb.normalize(x), x, atol=0, rtol=0)      # no mean/std, as MedSAM feeds it
    torch.testing.assert_close(ours, seen["last"].mean(dim=(1, 2)), atol=ATOL, rtol=0)
