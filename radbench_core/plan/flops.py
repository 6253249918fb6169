"""Forward cost of one image through a cell's network: analytic for ViTs, counted for the rest.

ViT (per image, T tokens, width D, depth L, MLP ratio r, patch p), in multiply-adds:
patch embedding (T-1)·3p²·D (the class token is not embedded); per block qkv 3TD², projection TD², MLP 2rTD², attention scores and
weighted sum 2T²D; FLOPs = 2 x multiply-adds (what torch.utils.flop_counter counts). SAM's blocks
attend within 14x14 windows except its four global ones. Decoders and scratch models are counted
with ``torch.utils.flop_counter`` on the meta device (no memory, no weights), once per shape, or
taken from ``plan/counted.py`` where that count is stored.
"""

from __future__ import annotations

import functools

from radbench_core.core.errors import ConfigError
from radbench_core.plan import counted
from radbench_core.plan.constants import CNN_GFLOPS_224, VIT_SHAPES

SAM_WINDOW, SAM_GLOBAL_BLOCKS = 14, 4


def vit_shape(model_id: str) -> tuple[int, int, int, float, int]:
    """(depth, width, heads, mlp ratio, patch) of a registered ViT/SAM model."""
    from radbench_core.models.specs import get_model
    spec = get_model(model_id)
    arch = spec.timm_arch if hasattr(spec, "timm_arch") else spec.timm_name.split(".")[0]
    for prefix, shape in sorted(VIT_SHAPES.items(), key=lambda kv: -len(kv[0])):
        if arch.startswith(prefix):
            return (*shape, spec.patch_size)
    raise ConfigError(f"planner: model {model_id!r}", f"no ViT shape for timm arch {arch!r}",
                      "add its (depth, width, heads, mlp ratio) to radbench_core/plan/constants.py VIT_SHAPES")


def vit_flops(depth: int, width: int, mlp_ratio: float, patch: int, resolution: int,
              window: int | None = None, global_blocks: int = 0, cls_token: bool = True) -> float:
    """Forward FLOPs of one image (module docstring)."""
    grid = resolution // patch
    t = grid * grid + (1 if cls_token else 0)
    d = width
    linear = (4 + 2 * mlp_ratio) * t * d * d
    full_attn = 2 * t * t * d
    attn = full_attn if window is None else 2 * t * min(t, window * window) * d
    blocks = global_blocks * (linear + full_attn) + (depth - global_blocks) * (linear + attn)
    return 2.0 * (grid * grid * 3 * patch * patch * d + blocks)


def backbone_flops(model_id: str, resolution: int) -> float:
    """Forward FLOPs per image of a registered backbone at ``resolution``."""
    from radbench_core.models.specs import get_model
    spec = get_model(model_id)
    if spec.arch == "cnn":
        if model_id not in CNN_GFLOPS_224:
            raise ConfigError(f"planner: model {model_id!r}", "no CNN cost known",
                              "add its GFLOP at 224 px to radbench_core/plan/constants.py CNN_GFLOPS_224")
        return CNN_GFLOPS_224[model_id] * 1e9 * (resolution / 224.0) ** 2
    if spec.arch == "seg_scratch":
        return counted_scratch(model_id, resolution)[0]
    depth, width, _, ratio, patch = vit_shape(model_id)
    if spec.arch == "sam":
        return vit_flops(depth, width, ratio, patch, resolution, SAM_WINDOW, SAM_GLOBAL_BLOCKS, False)
    return vit_flops(depth, width, ratio, patch, resolution)


def _count(module, *args) -> tuple[float, float]:
    """(forward FLOPs, activation elements = sum of every leaf module's output size) on meta."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    elements = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            elements[0] += out.numel()
    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    return float(counter.get_total_flops()), float(elements[0])


@functools.lru_cache(maxsize=None)
def counted_decoder(kind: str, width: int, patch: int, resolution: int, classes: int = 2
                    ) -> tuple[float, float]:
    """(FLOPs, activation elements) of the study's decoder on one image's five patch maps."""
    stored = counted.DECODERS.get((kind, width, patch, resolution, classes))
    return stored if stored is not None else count_decoder(kind, width, patch, resolution, classes)


def count_decoder(kind: str, width: int, patch: int, resolution: int, classes: int = 2
                  ) -> tuple[float, float]:
    """``counted_decoder`` counted now, on the meta device (what ``plan/counted.py`` stores)."""
    import torch
    from radbench_core.protocols.decoders import build_decoder
    grid = resolution // patch
    with torch.device("meta"):
        decoder = build_decoder(kind, [width] * 5, [patch] * 5, classes)
        maps = [torch.empty(1, width, grid, grid) for _ in range(5)]
        return _count(decoder, maps, (resolution, resolution))


@functools.lru_cache(maxsize=None)
def counted_scratch(model_id: str, resolution: int, classes: int = 2) -> tuple[float, float]:
    """(FLOPs, activation elements) of a from-scratch U-Net / TransUNet on one image."""
    stored = counted.SCRATCH.get((model_id, resolution, classes))
    return stored if stored is not None else count_scratch(model_id, resolution, classes)


def count_scratch(model_id: str, resolution: int, classes: int = 2) -> tuple[float, float]:
    """``counted_scratch`` counted now, on the meta device (what ``plan/counted.py`` stores)."""
    import torch
    from radbench_core.models.scratch_models import build_scratch_model
    with torch.device("meta"):
        net = build_scratch_model(model_id, classes, demo=False, resolution=resolution)
        return _count(net, torch.empty(1, 3, resolution, resolution))
