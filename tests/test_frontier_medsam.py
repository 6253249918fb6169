"""Beyond the study (issue 24): MedSAM's patch maps are the official encoder's, and its demo variant
sees the image (the demo cell ``medsam_vitb16-mc-seg_linear@112`` scored Dice 0.000 before).

Finding: not a bug of the real path (the maps below equal segment-anything's last block, in its
orientation), but of the demo's random init, which assumes standardised inputs while MedSAM feeds
[0, 1] images: the image reached the tokens at ~1/4.4 of the contrast, so the patch maps barely
varied across the image and the linear decoder never left "background". The demo variant now
folds ImageNet's mean/std into its patch embedding (``features.scale_demo_patch_kernels``), so it
computes what the same random net computes on standardised images.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

from synthetic import randomise

from radbench_core.models.architectures import create_architecture, strip_unused_parts
from radbench_core.models.features import build_demo_model, load_backbone
from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD, MODELS, demo_seed, get_model, preprocessing


def _lung_phantom() -> torch.Tensor:
    """(4, 1, 112, 112) in [0, 1]: dark background, two brighter 'lungs' at varying places."""
    gen = torch.Generator().manual_seed(0)
    images = 0.15 + 0.05 * torch.rand(4, 1, 112, 112, generator=gen)
    for i in range(4):
        top = 20 + 5 * i
        images[i, :, top:top + 60, 15:50] += 0.5
        images[i, :, top:top + 55, 62:97] += 0.5
    return images


def _spatial_spread(model_id: str) -> float:
    bb = load_backbone(model_id, demo=True, resolution=112)
    with torch.no_grad():
        maps = bb.patch_maps(bb.normalize(_lung_phantom()))[-1]
    return float(maps.std(dim=(2, 3)).mean() / maps.std())


def test_demo_medsam_maps_vary_across_the_image_like_sams() -> None:
    medsam, sam = _spatial_spread("medsam_vitb16"), _spatial_spread("sam_vitl16")
    assert medsam > 0.6 * sam, (medsam, sam)


def test_only_models_fed_unstandardised_inputs_get_the_folded_demo_init() -> None:
    scaled = {m for m, s in MODELS.items() if s.arch in ("vit", "sam") and all(v == 1.0 for v in preprocessing(s)[1])}
    assert scaled == {"medsam_vitb16"}
    images = _lung_phantom().expand(-1, 3, -1, -1)
    standardised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for model_id, fed in (("medsam_vitb16", images), ("sam_vitl16", standardised)):
        spec = get_model(model_id)
        demo = build_demo_model(spec).eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(demo_seed(model_id))             # the demo's own seed: its raw random net
            raw = strip_unused_parts(spec, create_architecture(spec, spec.demo_kwargs)).eval()
        with torch.no_grad():
            # demo MedSAM on its [0, 1] inputs = the raw random net on standardised images
            torch.testing.assert_close(demo.forward_features(fed), raw.forward_features(standardised),
                                       atol=1e-4, rtol=1e-4)


def test_medsam_patch_maps_are_the_official_last_block_in_its_orientation(tmp_path) -> None:
    pytest.importorskip("segment_anything")
    from segment_anything.modeling import ImageEncoderViT
    kw = get_model("medsam_vitb16").demo_kwargs
    encoder = ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=kw["embed_dim"], depth=kw["depth"],
                              num_heads=kw["num_heads"], mlp_ratio=4, out_chans=kw["neck_chans"], qkv_bias=True,
                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True, window_size=14,
                              global_attn_indexes=tuple(kw["global_attn_indexes"])).eval()
    randomise(encoder, 7)
    torch.save({f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}, tmp_path / "medsam_vit_b.pth")
    bb = load_backbone("medsam_vitb16", demo=False, resolution=1024, weights_dir=tmp_path, arch_kwargs=kw)
    x = torch.zeros(1, 3, 1024, 1024)
    x[..., :512, :256] = 1.0                         # asymmetric: a transposed map would not match
    seen = {}
    hook = encoder.blocks[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("last", o))
    with torch.no_grad():
        encoder(x)
        maps = bb.patch_maps(bb.normalize(x))
    hook.remove()
    want = seen["last"].permute(0, 3, 1, 2)          # SAM blocks are (B, H, W, C)
    torch.testing.assert_close(maps[-1], want, atol=1e-4, rtol=1e-5)
    assert (want - want.transpose(-1, -2)).abs().max() > 1e-3
