"""The file layouts the newer foundation models are published in, converted to timm's keys on load.

Why: beyond the study (issue 24) a user drops the files the authors publish, as published, and they
must load with every tensor equal. The study's own ViT-L/16 is one too: ``google/vit-large-patch16-224``
(the original ViT, ImageNet-21k + ImageNet-1k), a transformers ``ViTForImageClassification`` folder.
RAD-DINO and MedSigLIP are Hugging Face transformers folders
(``config.json`` + ``model.safetensors``, a ``Dinov2Model`` / ``SiglipModel``), BiomedCLIP is an
open_clip hub folder whose image tower is a timm ViT under ``visual.trunk.``, MedSAM is the SAM
ViT-B checkpoint (``image_encoder.`` + prompt encoder + mask decoder). Each converter keeps the
image encoder only, renames its keys to timm's, and fuses transformers' separate q/k/v projections
into timm's ``qkv`` (rows stacked q, k, v: values untouched). Text towers, projection and pooling
heads, the mask token and SAM's decoders are dropped: radbench uses the image trunk's tokens.

Where the files are looked for (nothing is ever downloaded): ``<weights dir>/<model id>/`` or
``<weights dir>/<repo name>/`` (a copied hub folder), then the Hugging Face cache
(``models--org--name/snapshots/<sha>/``) for the spec's ``hub_id``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Mapping

import torch

from radbench_core.core.errors import WeightsError
from radbench_core.models.release_layouts import RELEASE_FILES, dinov2_hub, dinov3
from radbench_core.models.specs import ModelSpec

State = Mapping[str, torch.Tensor]

# the weights file of each layout, as its hub repo names it, in order of preference
LAYOUT_FILES: dict[str, tuple[str, ...]] = {
    "hf_dinov2": ("model.safetensors", "pytorch_model.bin"),
    "hf_siglip": ("model.safetensors", "pytorch_model.bin"),
    "hf_vit": ("model.safetensors", "pytorch_model.bin"),
    "open_clip_timm": ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    "sam": ("medsam_vit_b.pth",),
}
# the ``model_type`` a Hugging Face ``config.json`` must declare for the layout
CONFIG_MODEL_TYPES = {"hf_dinov2": ("dinov2",), "hf_siglip": ("siglip", "siglip_vision_model"), "hf_vit": ("vit",)}

# transformers Dinov2Model: v5 names (q_proj, o_proj) and the v4 names the hub files carry
_DINOV2_BLOCK = [
    (r"attention\.(?:attention\.query|q_proj)\.", "attn.q."), (r"attention\.(?:attention\.key|k_proj)\.", "attn.k."),
    (r"attention\.(?:attention\.value|v_proj)\.", "attn.v."),
    (r"attention\.(?:output\.dense|o_proj)\.", "attn.proj."),
    (r"layer_scale1\.lambda1", "ls1.gamma"), (r"layer_scale2\.lambda1", "ls2.gamma"),
    (r"norm1\.", "norm1."), (r"norm2\.", "norm2."), (r"mlp\.fc1\.", "mlp.fc1."), (r"mlp\.fc2\.", "mlp.fc2."),
]
_DINOV2_TOP = {"embeddings.cls_token": "cls_token", "embeddings.position_embeddings": "pos_embed",
               "embeddings.register_tokens": "reg_token",
               "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
               "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
               "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
_SIGLIP_BLOCK = [(r"self_attn\.q_proj\.", "attn.q."), (r"self_attn\.k_proj\.", "attn.k."),
                 (r"self_attn\.v_proj\.", "attn.v."), (r"self_attn\.out_proj\.", "attn.proj."),
                 (r"layer_norm1\.", "norm1."), (r"layer_norm2\.", "norm2."),
                 (r"mlp\.fc1\.", "mlp.fc1."), (r"mlp\.fc2\.", "mlp.fc2.")]
_SIGLIP_TOP = {"embeddings.patch_embedding.weight": "patch_embed.proj.weight",
               "embeddings.patch_embedding.bias": "patch_embed.proj.bias",
               "embeddings.position_embedding.weight": "pos_embed",
               "post_layernorm.weight": "norm.weight", "post_layernorm.bias": "norm.bias"}

# transformers ViTModel / ViTForImageClassification (google/vit-large-patch16-224): v5 names, and the
# v4 names the hub file carries (attention.attention.query, intermediate.dense = fc1, output.dense = fc2)
_VIT_BLOCK = [
    (r"attention\.(?:attention\.query|q_proj)\.", "attn.q."), (r"attention\.(?:attention\.key|k_proj)\.", "attn.k."),
    (r"attention\.(?:attention\.value|v_proj)\.", "attn.v."),
    (r"attention\.(?:output\.dense|o_proj)\.", "attn.proj."),
    (r"layernorm_before\.", "norm1."), (r"layernorm_after\.", "norm2."),
    (r"(?:intermediate\.dense|mlp\.fc1)\.", "mlp.fc1."), (r"(?:output\.dense|mlp\.fc2)\.", "mlp.fc2."),
]
_VIT_TOP = {k: v for k, v in _DINOV2_TOP.items() if k != "embeddings.register_tokens"}


def _rename_blocks(state: State, prefix: str, block: str, rules: list[tuple[str, str]],
                   top: dict[str, str]) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` renamed to timm's; blocks' q/k/v fused into ``qkv``; the rest dropped."""
    out: dict[str, torch.Tensor] = {}
    pattern = re.compile(rf"^{re.escape(block)}(\d+)\.(.*)$")
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        if key in top:
            out[top[key]] = value
            continue
        match = pattern.match(key)
        if match is None:
            continue                                  # mask token, pooling head: not the trunk
        rest = match.group(2)
        for old, new in rules:
            if re.match(old, rest):
                out[f"blocks.{match.group(1)}.{re.sub(old, new, rest, count=1)}"] = value
                break
    return _fuse_qkv(out)


def _fuse_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for key in [k for k in state if ".attn.q." in k]:
        stem, suffix = key.split(".attn.q.")
        parts = [state.pop(f"{stem}.attn.{p}.{suffix}") for p in "qkv"]
        state[f"{stem}.attn.qkv.{suffix}"] = torch.cat(parts, dim=0)
    return state


def hf_dinov2(state: State) -> dict[str, torch.Tensor]:
    """transformers ``Dinov2Model`` (RAD-DINO; ``dinov2.``-prefixed in a classification model)."""
    prefix = "dinov2." if any(k.startswith("dinov2.") for k in state) else ""
    return _rename_blocks(state, prefix, "encoder.layer.", _DINOV2_BLOCK, _DINOV2_TOP)


def hf_vit(state: State) -> dict[str, torch.Tensor]:
    """transformers ``ViTModel`` (``vit.``-prefixed in ``ViTForImageClassification``, the study's
    google/vit-large-patch16-224): the encoder and its final LayerNorm; the pooler and the ImageNet
    classifier are dropped (the study's features are hidden states, never the pooler)."""
    prefix = "vit." if any(k.startswith("vit.") for k in state) else ""
    block = "encoder.layer." if any(k.startswith(prefix + "encoder.layer.") for k in state) else "layers."
    return _rename_blocks(state, prefix, block, _VIT_BLOCK, _VIT_TOP)


def hf_siglip(state: State) -> dict[str, torch.Tensor]:
    """transformers ``SiglipModel`` / ``SiglipVisionModel`` (MedSigLIP): the vision tower, no MAP head."""
    out = _rename_blocks(state, "vision_model.", "encoder.layers.", _SIGLIP_BLOCK, _SIGLIP_TOP)
    if "pos_embed" in out and out["pos_embed"].ndim == 2:     # an nn.Embedding table (N, C)
        out["pos_embed"] = out["pos_embed"].unsqueeze(0)
    return out


def open_clip_timm(state: State) -> dict[str, torch.Tensor]:
    """open_clip with a timm trunk (BiomedCLIP): ``visual.trunk.*``; projection and text dropped."""
    prefix = "visual.trunk."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def sam(state: State) -> dict[str, torch.Tensor]:
    """segment-anything ``Sam`` (MedSAM): ``image_encoder.*`` (``mlp.lin1`` is timm's ``mlp.fc1``)."""
    prefix = "image_encoder."
    return {k[len(prefix):].replace(".mlp.lin", ".mlp.fc"): v for k, v in state.items() if k.startswith(prefix)}


LAYOUTS: dict[str, Callable[[State], dict[str, torch.Tensor]]] = {
    "hf_dinov2": hf_dinov2, "hf_siglip": hf_siglip, "hf_vit": hf_vit, "open_clip_timm": open_clip_timm,
    "sam": sam,
    "dinov2_hub": dinov2_hub, "dinov3": dinov3,      # Meta's own release files (release_layouts.py)
}


def to_timm(spec: ModelSpec, state: State) -> dict[str, torch.Tensor]:
    """The state in timm's keys when it is in the spec's published layout; unchanged otherwise
    (a file already in timm's keys, e.g. saved by radbench, loads as it is)."""
    convert = LAYOUTS.get(spec.layout)
    if convert is None:
        return dict(state)
    converted = convert(state)
    return converted if converted else dict(state)


def check_config(spec: ModelSpec, folder: Path) -> None:
    """A hub folder's ``config.json`` must be the model type of the spec's layout (a RAD-DINO folder
    copied under the MedSigLIP name would otherwise fail later with a wall of key mismatches)."""
    wanted = CONFIG_MODEL_TYPES.get(spec.layout)
    config = folder / "config.json"
    if not wanted or not config.is_file():
        return
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
    except (OSError, ValueError, AttributeError) as exc:
        raise WeightsError(config, f"cannot read it as JSON ({exc})", "copy the hub folder again") from exc
    if model_type not in wanted:
        raise WeightsError(config, f"model_type {model_type!r} is not a {spec.label} folder (expected "
                           f"{' or '.join(wanted)})", f"put the {spec.hub_id or spec.label} files here")


def hub_folder_file(spec: ModelSpec, weights_dir: Path) -> Path | None:
    """The layout's weights file in ``<weights dir>/<model id>/`` or ``<weights dir>/<repo name>/``,
    or a release file under its published name in the weights dir (``RELEASE_FILES``)."""
    names = LAYOUT_FILES.get(spec.layout, ())
    folders = [weights_dir / spec.id] + ([weights_dir / spec.hub_id.split("/")[-1]] if spec.hub_id else [])
    if spec.layout == "sam":                  # a single released file, e.g. <weights dir>/medsam_vit_b.pth
        folders.append(weights_dir)
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                check_config(spec, folder)
                return folder / name
    for pattern in RELEASE_FILES.get(spec.layout, ()):   # e.g. dinov3_vits16_pretrain_lvd1689m-08c60483.pth
        found = sorted(weights_dir.glob(pattern.format(id=spec.id)))
        if found:
            return found[0]
    return None
