"""Meta's own release layouts of DINOv2 (torch hub, with registers) and DINOv3, converted to timm's keys.

Why here and not only in timm's ``checkpoint_filter_fn``: timm's converters run after radbench's
shape check, and differ from the official forward in two places radbench must not inherit.

* DINOv2 hub files with registers (``dinov2_vitl14_reg4_pretrain.pth``) hold a ``(1, 1 + 37*37, D)``
  position table whose first row is the class token's; timm's ``no_embed_class`` model keeps only
  the patch rows and folds that row into ``cls_token`` (the official forward adds it to the class
  token and never resizes it, so the sum is the same tensor). ``register_tokens`` -> ``reg_token``,
  ViT-g's SwiGLU ``mlp.w12``/``mlp.w3`` -> ``mlp.fc1``/``mlp.fc2`` (timm's packed SwiGLU, same
  chunk order), ``mask_token`` (pretraining only) dropped. Mirrors timm's ``_convert_dinov2``,
  applied before the shape check (which would otherwise refuse the 1 + 37*37 table).
* DINOv3 release files (``dinov3_vits16_pretrain_lvd1689m-08c60483.pth``): ``storage_tokens`` ->
  ``reg_token``, ``ls1/ls2.gamma`` -> ``gamma_1/gamma_2``, and the k-masked qkv bias
  (``LinearKMaskedBias``: ``bias * bias_mask``) -> timm's ``q_bias``/``v_bias`` *after* the mask,
  as the official forward applies it (timm's filter splits the raw bias and ignores the mask; the
  released masks are all zero). The key third is dropped: a key bias adds the same ``q . b_k`` to
  every logit of a query, which softmax ignores. ``rope_embed.periods`` is kept as ``rope.periods``:
  the released periods are rounded to bfloat16, timm recomputes them in float32 and drops the
  file's, so radbench sets timm's (non-persistent) buffer from the file (``weights.py``).
  ``mask_token`` and ViT-L SAT's ``local_cls_norm`` (training only) are dropped.

A file already in timm's keys (a timm hub copy, or a file radbench saved) is returned as empty
(= unchanged) by each converter; a timm DINOv3 file without qkv bias gets zero ``q_bias``/``v_bias``
(no bias and a zero bias are the same model).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

State = Mapping[str, torch.Tensor]

# released file names in the weights folder, as the authors name them ({id} = the spec id)
RELEASE_FILES: dict[str, tuple[str, ...]] = {
    "dinov3": ("{id}_pretrain_lvd1689m-*.pth",),
    "dinov2_hub": ("{id}_pretrain.pth",),
}
_SWIGLU = re.compile(r"^(blocks\.\d+\.mlp\.)(w12|w3)\.(weight|bias)$")


def dinov2_hub(state: State) -> dict[str, torch.Tensor]:
    """facebookresearch/dinov2 hub layout (``register_tokens``, ``mask_token``) -> timm's ViT."""
    if "mask_token" not in state and "register_tokens" not in state:
        return {}
    out = {k: v for k, v in state.items() if k != "mask_token"}
    if "register_tokens" in out:
        out["reg_token"] = out.pop("register_tokens")
        pos = out.pop("pos_embed")
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    for key in [k for k in out if _SWIGLU.match(k)]:
        head, name, kind = _SWIGLU.match(key).groups()   # type: ignore[union-attr]
        out[f"{head}{'fc1' if name == 'w12' else 'fc2'}.{kind}"] = out.pop(key)
    return out


def dinov3(state: State) -> dict[str, torch.Tensor]:
    """facebookresearch/dinov3 release layout (``storage_tokens``, ``rope_embed``) -> timm's Eva."""
    if "storage_tokens" not in state:
        return _timm_without_qkv_bias(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "mask_token" or key.startswith("local_cls_norm.") or key.endswith(".bias_mask"):
            continue
        if key.endswith(".attn.qkv.bias"):
            mask = state.get(key + "_mask")
            bias = value * (mask.to(value.dtype) if mask is not None else 1)
            q, _, v = bias.chunk(3)
            stem = key[: -len("qkv.bias")]
            out[stem + "q_bias"], out[stem + "v_bias"] = q, v
            continue
        key = key.replace("storage_tokens", "reg_token").replace("rope_embed.periods", "rope.periods")
        out[re.sub(r"\.ls([12])\.gamma$", r".gamma_\1", key)] = value
    return out


def _timm_without_qkv_bias(state: State) -> dict[str, torch.Tensor]:
    """timm's ``vit_*_dinov3`` hub file (no qkv bias) for the ``_qkvb`` model radbench builds."""
    weights = [k for k in state if k.endswith(".attn.qkv.weight")]
    if "reg_token" not in state or not weights or any(k.replace("qkv.weight", "q_bias") in state for k in weights):
        return {}
    out = dict(state)
    for key in weights:
        zeros = state[key].new_zeros(state[key].shape[0] // 3)
        out[key.replace("qkv.weight", "q_bias")] = zeros
        out[key.replace("qkv.weight", "v_bias")] = zeros.clone()
    return out
