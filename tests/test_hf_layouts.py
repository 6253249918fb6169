"""Beyond the study (issue 24): each new model loads the file its official library writes.

Every file here is written by the official library itself (transformers, open_clip, segment-anything)
at a tiny config with random values; radbench must find it where a user puts it (weights folder,
copied hub folder, Hugging Face cache), load every tensor equal, and give the official model's
features on the same input (atol 1e-5), also off the native grid (the position-table rule).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radbench_core.core.errors import WeightsError
from synthetic import randomise

from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model
from radbench_core.models.weights import find_weights

transformers = pytest.importorskip("transformers")
ATOL = 1e-5



def _images(pixels: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, pixels, pixels, generator=torch.Generator().manual_seed(seed))


def _fused(state: dict[str, torch.Tensor], q: str, k: str, v: str) -> torch.Tensor:
    return torch.cat([state[q], state[k], state[v]], dim=0)


# ---- RAD-DINO: transformers Dinov2Model, 518 px, 37x37 table --------------------------------------

def _rad_dino_official(folder: Path):
    kw = get_model("rad_dino").demo_kwargs
    config = transformers.Dinov2Config(hidden_size=kw["embed_dim"], num_hidden_layers=kw["depth"],
                                       num_attention_heads=kw["num_heads"], intermediate_size=4 * kw["embed_dim"],
                                       image_size=518, patch_size=14, layerscale_value=1.0)
    model = transformers.Dinov2Model(config).eval()
    randomise(model, 1)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def rad_dino(tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights")
    official = _rad_dino_official(weights / "rad-dino")       # the hub repo's name, copied as is
    return official, weights


def test_rad_dino_folder_is_found_by_its_repo_name(rad_dino) -> None:
    _, weights = rad_dino
    found = find_weights(get_model("rad_dino"), weights)
    assert found.path == weights / "rad-dino" / "model.safetensors"


@pytest.mark.parametrize("pixels", [518, 224])
def test_rad_dino_loads_every_tensor_and_gives_the_official_features(rad_dino, pixels: int) -> None:
    official, weights = rad_dino
    spec = get_model("rad_dino")
    bb = load_backbone("rad_dino", demo=False, resolution=pixels, weights_dir=weights, arch_kwargs=spec.demo_kwargs)
    ours, theirs = bb.model.state_dict(), official.state_dict()
    assert set(ours) == {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
                         "norm.bias"} | {k for k in ours if k.startswith("blocks.")}
    torch.testing.assert_close(ours["pos_embed"], theirs["embeddings.position_embeddings"], atol=0, rtol=0)
    torch.testing.assert_close(ours["cls_token"], theirs["embeddings.cls_token"], atol=0, rtol=0)
    for i in range(len(bb.model.blocks)):
        a = f"encoder.layer.{i}.attention."
        for part in ("weight", "bias"):
            torch.testing.assert_close(ours[f"blocks.{i}.attn.qkv.{part}"],
                                       _fused(theirs, a + f"q_proj.{part}", a + f"k_proj.{part}", a + f"v_proj.{part}"),
                                       atol=0, rtol=0)
        torch.testing.assert_close(ours[f"blocks.{i}.ls2.gamma"], theirs[f"encoder.layer.{i}.layer_scale2.lambda1"],
                                   atol=0, rtol=0)
    x = _images(pixels)
    with torch.no_grad():
        want = official(pixel_values=x).last_hidden_state
        pooled = bb.pooled(x)
        maps = bb.patch_maps(x)
    torch.testing.assert_close(pooled["cls"][:, -1], want[:, 0], atol=ATOL, rtol=0)
    grid = pixels // 14
    torch.testing.assert_close(maps[-1].flatten(2).transpose(1, 2), want[:, 1:], atol=ATOL, rtol=0)
    assert want.shape[1] == 1 + grid * grid


def test_rad_dino_in_the_hugging_face_cache_is_found_without_download(rad_dino, tmp_path: Path) -> None:
    _, weights = rad_dino
    repo = tmp_path / "hub" / "models--microsoft--rad-dino"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((weights / "rad-dino" / name).read_bytes())
    found = find_weights(get_model("rad_dino"), None, hf_cache_dir=tmp_path / "hub")
    assert found.path == snapshot / "model.safetensors" and found.provenance == "hf-cache:microsoft/rad-dino"


def test_a_hub_folder_of_another_model_type_is_refused_naming_its_config(rad_dino, tmp_path: Path) -> None:
    _, weights = rad_dino
    folder = tmp_path / "medsiglip-448"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((weights / "rad-dino" / name).read_bytes())
    with pytest.raises(WeightsError, match=r"config\.json.*model_type 'dinov2' is not a MedSigLIP"):
        find_weights(get_model("medsiglip_448"), tmp_path)


# ---- MedSigLIP: transformers SiglipModel, 448 px, no class token ----------------------------------

@pytest.fixture(scope="module")
def medsiglip(tmp_path_factory):
    kw = get_model("medsiglip_448").demo_kwargs
    width = kw["embed_dim"]
    config = transformers.SiglipConfig(
        vision_config=dict(hidden_size=width, num_hidden_layers=kw["depth"], num_attention_heads=kw["num_heads"],
                           intermediate_size=int(width * kw["mlp_ratio"]), image_size=448, patch_size=14),
        text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=64, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    model = transformers.SiglipModel(config).eval()
    randomise(model, 2)
    weights = tmp_path_factory.mktemp("weights")
    model.save_pretrained(weights / "medsiglip_448")           # the model id as the folder name
    return model, weights


@pytest.mark.parametrize("pixels", [448, 224])
def test_medsiglip_loads_the_vision_tower_and_gives_the_official_features(medsiglip, pixels: int) -> None:
    official, weights = medsiglip
    spec = get_model("medsiglip_448")
    bb = load_backbone("medsiglip_448", demo=False, resolution=pixels, weights_dir=weights,
                       arch_kwargs=spec.demo_kwargs)
    ours, theirs = bb.model.state_dict(), official.state_dict()
    torch.testing.assert_close(ours["pos_embed"][0], theirs["vision_model.embeddings.position_embedding.weight"],
                               atol=0, rtol=0)
    a = "vision_model.encoder.layers.0.self_attn."
    torch.testing.assert_close(ours["blocks.0.attn.qkv.weight"],
                               _fused(theirs, a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"),
                               atol=0, rtol=0)
    torch.testing.assert_close(ours["norm.weight"], theirs["vision_model.post_layernorm.weight"], atol=0, rtol=0)
    x = _images(pixels, 1)
    with torch.no_grad():
        want = official.vision_model(pixel_values=x, interpolate_pos_encoding=pixels != 448).last_hidden_state
        maps = bb.patch_maps(x)
        pooled = bb.pooled(x)
    torch.testing.assert_close(maps[-1].flatten(2).transpose(1, 2), want, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled["patch_mean"], want.mean(dim=1), atol=ATOL, rtol=0)


def test_rad_dino_hub_file_with_transformers_v4_key_names_loads_the_same(rad_dino, tmp_path: Path) -> None:
    """The file on the hub predates transformers 5's renames (attention.attention.query, output.dense)."""
    from safetensors.torch import load_file, save_file
    _, weights = rad_dino
    renames = {"attention.q_proj.": "attention.attention.query.", "attention.k_proj.": "attention.attention.key.",
               "attention.v_proj.": "attention.attention.value.", "attention.o_proj.": "attention.output.dense."}
    state = load_file(str(weights / "rad-dino" / "model.safetensors"))
    v4 = {}
    for key, value in state.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        v4[key] = value
    assert "encoder.layer.0.attention.attention.query.weight" in v4
    (tmp_path / "rad_dino").mkdir()
    save_file(v4, str(tmp_path / "rad_dino" / "model.safetensors"))
    kw = get_model("rad_dino").demo_kwargs
    a = load_backbone("rad_dino", demo=False, resolution=224, weights_dir=weights, arch_kwargs=kw)
    b = load_backbone("rad_dino", demo=False, resolution=224, weights_dir=tmp_path, arch_kwargs=kw)
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[key], value, atol=0, rtol=0)
