"""The official checkpoint layouts radbench reads, and the one it converts only on request.

Why: a user drops the file the model's authors publish into the weights folder and it must load
with every tensor equal. Key layouts differ from timm's:

* torchvision DenseNet201 (``densenet201-c1103571.pth``): old-style ``denselayerN.norm.1.weight``
  keys (torchvision renames them with a regex on load; timm has the same converter);
* torchvision VGG19 (``vgg19-dcbb9e9d.pth``): ``classifier.0/3/6`` Linear layers, timm's VGG holds
  fc6/fc7 as convolutions (``pre_logits.fc1/fc2``): the weights are reshaped, values untouched;
* torchvision ResNet152: the same keys as timm's ResNet (its ``fc`` head is dropped);
* OpenAI CLIP ``ViT-L-14.pt``, DINOv2 hub, MAE, MSN and SAM files: timm's ``checkpoint_filter_fn``
  of the model's family converts them (``weights.py``);
* OpenAI's ``ViT-L-14.pt`` is a **TorchScript archive**: reading it runs TorchScript deserialisation,
  which is not a safe format to load silently. :func:`convert_torchscript` does it once, on the user's
  explicit ``radbench convert-weights`` command, and writes a safetensors file of tensors only.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Callable, Mapping

import torch

from radbench_core.core.errors import WeightsError

_DENSE_OLD = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
_VGG_LINEAR = {"classifier.0.": "pre_logits.fc1.", "classifier.3.": "pre_logits.fc2.", "classifier.6.": "head.fc."}


def torchvision_densenet(state: Mapping[str, torch.Tensor],
                         expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``denselayer1.norm.1.weight`` -> ``denselayer1.norm1.weight`` (torchvision's own fix)."""
    out = {}
    for key, value in state.items():
        match = _DENSE_OLD.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def torchvision_vgg(state: Mapping[str, torch.Tensor],
                    expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's fc6/fc7 Linear weights -> timm's equivalent convolutions (same values)."""
    out = {}
    for key, value in state.items():
        for old, new in _VGG_LINEAR.items():
            if key.startswith(old):
                key = new + key[len(old):]
                target = expected.get(key)
                if target is not None and target.ndim == 4 and value.numel() == target.numel():
                    value = value.reshape(target.shape)
                break
        out[key] = value
    return out


# layout name -> converter(state, expected state) -> state; tried when a file does not fit as written
CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "torchvision_densenet": torchvision_densenet,
    "torchvision_vgg": torchvision_vgg,
}


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (``torch.jit.save``) holds ``constants.pkl`` and a ``code/`` folder."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def torchscript_refusal(path: Path, model_id: str) -> WeightsError:
    """The error for a TorchScript file found where a state dict was expected."""
    return WeightsError(path, "this is a TorchScript archive (the format of OpenAI's CLIP release, e.g. "
                        "ViT-L-14.pt), not a state dict; TorchScript is not a safe format to load "
                        "silently, so radbench never reads it during a run",
                        f"convert it once: radbench convert-weights {model_id} {path} "
                        "(writes <weights dir>/" f"{model_id}.safetensors with the tensors only)")


def convert_torchscript(source: Path, target: Path, *, keep_prefix: str | None = "visual.") -> dict[str, int]:
    """Read a TorchScript checkpoint with ``torch.jit.load`` and write its tensors as safetensors.

    Only keys under ``keep_prefix`` are kept when any exist (CLIP: the image tower; the text tower
    is never used). Tensors are copied as stored (OpenAI's fp16 stays fp16). Returns
    ``{"kept": n, "dropped": m}``.
    """
    from safetensors.torch import save_file
    source, target = Path(source), Path(target)
    if not is_torchscript(source):
        raise WeightsError(source, "not a TorchScript archive", "pass the .pt file of OpenAI's CLIP release")
    try:
        module = torch.jit.load(str(source), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any reader failure means the same to the user
        raise WeightsError(source, f"torch.jit.load failed ({type(exc).__name__}: {str(exc)[:160]})",
                           "download the file again from the official release") from exc
    state = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
    kept = {k: v for k, v in state.items() if keep_prefix and k.startswith(keep_prefix)} or state
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    save_file({k: v.detach().clone().contiguous() for k, v in kept.items()}, str(tmp),
              metadata={"converted_from": source.name, "format": "torchscript"})
    tmp.replace(target)
    return {"kept": len(kept), "dropped": len(state) - len(kept)}
