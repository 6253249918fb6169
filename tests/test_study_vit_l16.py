"""The study's ViT-L/16 is transformers' google/vit-large-patch16-224 (its dinov2/eval/utils.py:63):
the file transformers writes loads into radbench's ViT with every tensor equal, and radbench's
features are transformers' own (atol 1e-5).

The folder here is written by transformers itself (``save_pretrained``, random values, the demo
width); the hub file's older key names (transformers 4: ``vit.encoder.layer.N.attention.attention
.query``, ``intermediate.dense``, ``output.dense``) are produced by renaming and must load the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from radbench_core.models.features import load_backbone
from radbench_core.models.specs import get_model, preprocessing
from radbench_core.models.weights import find_weights
from synthetic import randomise

transformers = pytest.importorskip("transformers")
ATOL = 1e-5
HUB_ID = "google/vit-large-patch16-224"


def _official_config():
    kw = get_model("vit_l16_in21k").demo_kwargs
    # the hub config of google/vit-large-patch16-224 at the demo width: 224 px, patch 16, exact GELU,
    # LayerNorm eps 1e-12, qkv bias, 1000 ImageNet classes
    return transformers.ViTConfig(hidden_size=kw["embed_dim"], num_hidden_layers=kw["depth"],
                                  num_attention_heads=kw["num_heads"], intermediate_size=4 * kw["embed_dim"],
                                  image_size=224, patch_size=16, num_labels=1000)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A ViTForImageClassification (the class the study loads) saved as the hub folder is named."""
    model = transformers.ViTForImageClassification(_official_config()).eval()
    randomise(model, 3)
    weights = tmp_path_factory.mktemp("weights")
    model.save_pretrained(weights / "vit-large-patch16-224")
    return model, weights


def _backbone(weights: Path, **kw):
    spec = get_model("vit_l16_in21k")
    return load_backbone("vit_l16_in21k", demo=False, resolution=224, weights_dir=weights,
                         arch_kwargs=spec.demo_kwargs, **kw)


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def test_the_spec_names_the_studys_checkpoint_and_its_input_constants() -> None:
    spec = get_model("vit_l16_in21k")
    assert spec.hub_id == HUB_ID and spec.layout == "hf_vit"
    # the checkpoint's preprocessor_config.json: image_mean = image_std = [0.5, 0.5, 0.5]
    processor = transformers.ViTImageProcessor()
    assert preprocessing(spec) == (tuple(processor.image_mean), tuple(processor.image_std)) == ((0.5,) * 3,) * 2


def test_the_hub_folder_is_found_by_its_repo_name(official) -> None:
    _, weights = official
    found = find_weights(get_model("vit_l16_in21k"), weights)
    assert found.path == weights / "vit-large-patch16-224" / "model.safetensors"


def test_every_tensor_loads_equal(official) -> None:
    model, weights = official
    ours, theirs = _backbone(weights).model.state_dict(), model.state_dict()
    v = "vit."
    pairs = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
             "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
             "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
             "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    for i in range(model.config.num_hidden_layers):
        a = f"layers.{i}."
        pairs.update({f"blocks.{i}.norm1.weight": a + "layernorm_before.weight",
                      f"blocks.{i}.norm2.bias": a + "layernorm_after.bias",
                      f"blocks.{i}.attn.proj.weight": a + "attention.o_proj.weight",
                      f"blocks.{i}.mlp.fc1.weight": a + "mlp.fc1.weight", f"blocks.{i}.mlp.fc2.bias": a + "mlp.fc2.bias"})
        for part in ("weight", "bias"):
            fused = torch.cat([theirs[f"{v}{a}attention.{p}_proj.{part}"] for p in "qkv"], dim=0)
            torch.testing.assert_close(ours[f"blocks.{i}.attn.qkv.{part}"], fused, atol=0, rtol=0)
    for mine, hf in pairs.items():
        torch.testing.assert_close(ours[mine], theirs[v + hf], atol=0, rtol=0)
    # every tensor of the encoder is somewhere in ours: the same number of values, nothing else
    encoder = sum(t.numel() for k, t in theirs.items() if k.startswith(v) and not k.startswith(v + "pooler"))
    assert sum(t.numel() for t in ours.values()) == encoder


def test_features_equal_transformers_outputs(official) -> None:
    """Class tokens of the last 4 blocks (linear probe, kNN: the last), the 5 patch maps of the
    U-Net decoder and the fine-tune head input, each after the final LayerNorm as radbench takes
    them (the study's pre-norm hidden states: switch vit_tokens_after_final_norm, test_switch_vit_tokens.py)."""
    model, weights = official
    bb = _backbone(weights)
    norms = [m for m in bb.model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * len(bb.model.blocks) + 1
    assert {m.eps for m in norms} == {model.config.layer_norm_eps} == {1e-12}     # transformers' eps
    x = _images()
    with torch.no_grad():
        out = model.vit(pixel_values=x, output_hidden_states=True)
        normed = [model.vit.layernorm(h) for h in out.hidden_states[1:]]     # after each block, normed
        pooled, maps, head = bb.pooled(x), bb.patch_maps(x), bb.head_features(x)
    want_last = out.last_hidden_state
    torch.testing.assert_close(normed[-1], want_last, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled["cls"][:, -1], want_last[:, 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(head, want_last[:, 0], atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled["cls"], torch.stack([h[:, 0] for h in normed[-4:]], dim=1), atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled["patch_mean"], want_last[:, 1:].mean(dim=1), atol=ATOL, rtol=0)
    depth = len(normed)
    for got, block in zip(maps, [max(0, depth - 5 + i) for i in range(5)]):
        torch.testing.assert_close(got.flatten(2).transpose(1, 2), normed[block][:, 1:], atol=ATOL, rtol=0)


def test_the_hub_files_transformers_4_key_names_load_the_same(official, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file
    _, weights = official
    state = load_file(str(weights / "vit-large-patch16-224" / "model.safetensors"))
    renames = [(".layers.", ".encoder.layer."), ("attention.q_proj.", "attention.attention.query."),
               ("attention.k_proj.", "attention.attention.key."), ("attention.v_proj.", "attention.attention.value."),
               ("attention.o_proj.", "attention.output.dense."), ("mlp.fc1.", "intermediate.dense."),
               ("mlp.fc2.", "output.dense.")]
    v4 = {}
    for key, value in state.items():
        for new, old in renames:
            key = key.replace(new, old)
        v4[key] = value
    assert "vit.encoder.layer.0.attention.attention.query.weight" in v4 and "classifier.weight" in v4
    (tmp_path / "vit_l16_in21k").mkdir()
    save_file(v4, str(tmp_path / "vit_l16_in21k" / "model.safetensors"))    # the model id as folder name
    a, b = _backbone(weights).model.state_dict(), _backbone(tmp_path).model.state_dict()
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, atol=0, rtol=0)


def test_the_hugging_face_cache_entry_is_found_without_download(official, tmp_path: Path) -> None:
    _, weights = official
    repo = tmp_path / "hub" / "models--google--vit-large-patch16-224"
    snapshot = repo / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((weights / "vit-large-patch16-224" / name).read_bytes())
    found = find_weights(get_model("vit_l16_in21k"), None, hf_cache_dir=tmp_path / "hub")
    assert found.path == snapshot / "model.safetensors" and found.provenance == f"hf-cache:{HUB_ID}"
    bb = _backbone(None, hf_cache_dir=tmp_path / "hub")
    assert bb.weights == f"hf-cache:{HUB_ID}"
