"""Find a model's weights and load them strictly: a wrong or corrupt file fails loudly, never silently.

Official layouts (torchvision, OpenAI CLIP, DINOv2 hub with and without registers, DINOv3 release, MAE,
MSN, SAM, Hugging Face / open_clip folders) are converted on load (``checkpoint_formats.py``,
``hf_layouts.py``, ``release_layouts.py``); non-persistent buffers a file holds (DINOv3's RoPE periods)
are set from it after loading; a TorchScript archive is refused with the ``radbench convert-weights``
command that converts it once.

Resolution order: the user weights directory (``<dir>/<model_id>.safetensors``, ``.pth``, ``.pt`` or
``.pth.tar``) -> a file already in the Hugging Face cache for ``timm/<arch.tag>`` (never downloaded)
-> :class:`WeightsMissing` naming both. Pickled checkpoints are read with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from radbench_core.models.checkpoint_formats import CONVERTERS, is_torchscript, torchscript_refusal
from radbench_core.models.hf_layouts import LAYOUT_FILES, check_config, hub_folder_file, to_timm
from radbench_core.core.errors import WeightsError, WeightsMissing
from radbench_core.models.specs import ModelSpec

WEIGHTS_ENV = "RADBENCH_WEIGHTS"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".pth.tar")
HUB_FILENAMES = ("model.safetensors", "pytorch_model.bin")
_WRAPPERS = ("target_encoder", "state_dict", "model", "module")   # MSN, Lightning, DeiT/MAE, DDP
_PREFIXES = ("module.", "model.")


@dataclass(frozen=True)
class WeightsSource:
    """A weights file that exists, and the provenance string recorded with every result."""
    path: Path
    provenance: str


def expected_filenames(spec: ModelSpec) -> list[str]:
    """The file names looked for in the weights directory, in order of preference."""
    return [f"{spec.id}{suffix}" for suffix in WEIGHT_SUFFIXES]


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's sha256: which exact file a result came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _hub_cached_file(spec: ModelSpec, hf_cache_dir: Path | None) -> Path | None:
    if not spec.hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache
    for filename in LAYOUT_FILES.get(spec.layout, HUB_FILENAMES):
        found = try_to_load_from_cache(spec.hub_id, filename, cache_dir=hf_cache_dir)
        if isinstance(found, str) and Path(found).is_file():
            check_config(spec, Path(found).parent)
            return Path(found)
    return None


def find_weights(spec: ModelSpec, weights_dir: Path | str | None = None, *,
                 hf_cache_dir: Path | None = None) -> WeightsSource:
    """Locate the weights of ``spec`` without downloading anything, or say exactly what is missing."""
    if weights_dir is None and os.environ.get(WEIGHTS_ENV):
        weights_dir = os.environ[WEIGHTS_ENV]
    names = expected_filenames(spec)
    if weights_dir is not None:
        for name in names:
            path = Path(weights_dir) / name
            if path.is_file():
                return WeightsSource(path, f"{path} sha256:{file_digest(path)}")
        path = hub_folder_file(spec, Path(weights_dir))     # a published folder / file, as released
        if path is not None:
            return WeightsSource(path, f"{path} sha256:{file_digest(path)}")
    cached = _hub_cached_file(spec, hf_cache_dir)
    if cached is not None:
        return WeightsSource(cached, f"hf-cache:{spec.hub_id}")
    where = f"weights dir {weights_dir}" if weights_dir is not None else f"model {spec.id} (no weights dir set)"
    if weights_dir is not None and not Path(weights_dir).is_dir():
        where += " (directory does not exist)"
    hub = f"the Hugging Face cache for {spec.hub_id} ({' or '.join(HUB_FILENAMES)})" if spec.hub_id else \
        "no Hugging Face repo (timm has none for this model)"
    source = f"; get them from {spec.source_note}" if spec.source_note else ""
    raise WeightsMissing(
        where, f"no weights for {spec.label}: looked for {', '.join(names)} and in {hub}",
        f"put one of {', '.join(names)} in the weights directory (--radbench-weights or ${WEIGHTS_ENV})"
        + (f", or cache {spec.hub_id} with `huggingface-cli download {spec.hub_id}`" if spec.hub_id else "")
        + source)


def read_state_dict(path: Path, model_id: str = "") -> dict[str, torch.Tensor]:
    """Read a safetensors or pickled checkpoint (tensors only) and unwrap it to a flat state dict."""
    path = Path(path)
    if not path.name.endswith(".safetensors") and is_torchscript(path):
        raise torchscript_refusal(path, model_id or path.name.split(".")[0])
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file
            raw: Any = load_file(str(path), device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader failure means the same thing to the user
        first = str(exc).strip().split("\n")[0].split(". ")[0][:160]
        raise WeightsError(path, f"cannot read the weights file ({type(exc).__name__}: {first}); it is corrupt, "
                           "truncated, or holds pickled objects other than tensors",
                           "download it again, or re-save only the state dict of tensors "
                           "(it is never unpickled with weights_only=False)") from exc
    return unwrap_state_dict(raw, path)


def unwrap_state_dict(raw: Any, path: Path | str) -> dict[str, torch.Tensor]:
    """Unwrap ``{"target_encoder"|"state_dict"|"model": {...}}`` and strip ``module.``/``model.``."""
    while isinstance(raw, Mapping):
        inner = next((raw[k] for k in _WRAPPERS if isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            break
        raw = inner
    keys = f" with keys {list(raw)[:5]}" if isinstance(raw, Mapping) else ""
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)} if isinstance(raw, Mapping) else {}
    if not tensors:
        raise WeightsError(path, f"expected a state dict of tensors, found {type(raw).__name__}{keys}",
                           "save the model's state_dict() (or a checkpoint wrapping it in 'model'/'state_dict')")
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _drop(state: dict[str, torch.Tensor], prefixes: tuple[str, ...], keep: set[str]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k in keep or not k.startswith(prefixes)}


def _timm_filter(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """timm's own converter for official checkpoints (OpenAI CLIP, DINOv2, SAM) of this family."""
    # the class's own module, or its timm base's (pos_embed.py re-classes timm's ViT)
    convert = next((fn for cls in type(model).__mro__
                    if (fn := getattr(sys.modules.get(cls.__module__), "checkpoint_filter_fn", None))), None)
    if convert is None:
        return state
    try:
        return dict(convert(dict(state), model))
    except Exception:  # noqa: BLE001 - an unconvertible file is reported as a key mismatch below
        return state


def describe_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """The first few missing, unexpected and wrongly-shaped keys: enough to see which model a file is."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs expected {tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            parts.append(f"{len(items)} {title} (e.g. {'; '.join(items[:3])})")
    return ", ".join(parts)


def fill_batch_counters(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                        ) -> dict[str, torch.Tensor]:
    """BatchNorm's ``num_batches_tracked`` buffers, absent from torchvision's 2017 files (DenseNet201,
    ResNet152), set to 0 as torch's own BatchNorm does when it loads such a file; values untouched."""
    out = dict(state)
    for key, value in expected.items():
        if key.endswith(".num_batches_tracked") and key not in out:
            out[key] = torch.zeros_like(value)
    return out


def wrong_shapes(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                 allowed: tuple[str, ...] = ()) -> list[str]:
    """Keys the file holds under the model's own name but in another shape (not in ``allowed``)."""
    return [k for k, v in expected.items()
            if k in state and tuple(state[k].shape) != tuple(v.shape) and k not in allowed]


def _key_errors(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> int:
    return len(set(state) ^ set(expected)) + sum(tuple(state[k].shape) != tuple(v.shape)
                                                  for k, v in expected.items() if k in state)


def _take_buffers(state: dict[str, torch.Tensor], model: torch.nn.Module,
                  expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors the file holds for the model's *non-persistent* buffers (DINOv3's RoPE periods, which
    timm recomputes instead of loading): taken out of ``state`` and set after loading, so the model
    runs with the file's values as the official one does."""
    buffers = dict(model.named_buffers())
    return {k: state.pop(k) for k in [k for k in state if k not in expected and k in buffers]}


def _set_buffers(model: torch.nn.Module, values: Mapping[str, torch.Tensor], path: Path) -> None:
    for key, value in values.items():
        target = model.get_buffer(key)
        if tuple(target.shape) != tuple(value.shape):
            raise WeightsError(path, f"{key} has shape {tuple(value.shape)}, the model's is {tuple(target.shape)}",
                               "use the weights of this model size")
        target.copy_(value.to(target.dtype))


def load_weights_into(model: torch.nn.Module, spec: ModelSpec, path: Path) -> None:
    """Load a weights file into ``model`` strictly, converting official layouts timm knows."""
    state = to_timm(spec, read_state_dict(path, spec.id))
    expected = model.state_dict()
    buffers = _take_buffers(state, model, expected)
    keep = set(expected)
    state = fill_batch_counters(_drop(state, spec.drop_prefixes, keep), expected)
    # a tensor of the model's own name in another shape is refused before timm's converter, which
    # would silently resample a position table or patch kernel, unless the spec names it
    reshaped = wrong_shapes(state, expected, spec.resample_weights)
    if describe_mismatch(state, expected):
        candidates = ([] if reshaped else [_timm_filter(state, model)]) + \
            [convert(state, expected) for convert in CONVERTERS.values()]
        # keep the conversion that fits best; a hopeless file is reported as it was written
        for converted in (fill_batch_counters(_drop(c, spec.drop_prefixes, keep), expected) for c in candidates):
            if _key_errors(converted, expected) < _key_errors(state, expected):
                state = converted
    problem = describe_mismatch(state, expected)
    if problem:
        resample = (f"; to resample it on purpose, declare ModelSpec(resample_weights={tuple(reshaped[:2])!r})"
                    if reshaped else "")
        raise WeightsError(path, f"not a {spec.label} ({spec.timm_arch or spec.id}) checkpoint: {problem}",
                           f"use the {spec.label} weights or rename the file; it must hold the state dict of "
                           f"timm's {spec.timm_arch}{resample}")
    with torch.no_grad():
        model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
        _set_buffers(model, buffers, path)
