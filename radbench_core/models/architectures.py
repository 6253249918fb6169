"""Build the module of a :class:`ModelSpec`: timm architectures, a user's builder, random-init.

Why apart from ``models.py``: the registry is plain data on the bottom floor; building pulls in timm,
the positional-embedding installers and the scratch models, and sits one floor up.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from radbench_core.core.errors import ConfigError
from radbench_core.models.specs import VGG_DROPOUT, ModelSpec
from radbench_core.models.pos_embed import install
from radbench_core.models.scratch_models import build_scratch_model


def resolve_builder(spec: ModelSpec):
    """The function building a ``module`` spec (``"pkg.mod:function"`` imported on first use)."""
    builder = spec.builder
    if callable(builder):
        return builder
    module, _, name = str(builder).partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"model {spec.id!r} builder {builder!r}", f"cannot import it ({exc})",
                          "write it as 'package.module:function' importable from the project") from exc


def create_architecture(spec: ModelSpec, arch_kwargs: dict[str, Any] | None = None, *,
                        keep_classifier: bool = False) -> torch.nn.Module:
    """Build the timm module of a spec, random-init, at its native input size.

    ViTs get ``dynamic_img_size`` so one set of weights serves every resolution: the position
    table is resized on every forward by the family's official formula (``pos_embed.py``), from
    the table the weights were trained with. VGG gets torchvision's dropout (0.5) in its fc6/fc7
    block, which the study fine-tuned through. ``arch_kwargs`` overrides timm's architecture
    arguments (the demo variants); ``keep_classifier`` keeps the ImageNet head (parameter counts as
    the study reports them for CNNs).
    """
    import timm

    if spec.arch == "module":
        model = resolve_builder(spec)(**dict(arch_kwargs or {}))
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"model {spec.id!r} builder", f"returned {type(model).__name__}",
                              "return a torch.nn.Module whose forward(x) gives (B, D) features")
        return model
    if spec.arch == "seg_scratch":
        raise ConfigError(f"model {spec.id!r}", "a from-scratch segmentation model has no feature backbone",
                          "build it with radbench_core.models.scratch_models.build_scratch_model")
    kwargs = {**spec.arch_kwargs, **(arch_kwargs or {})}
    if "norm_eps" in kwargs:          # plain data in the spec; timm takes a LayerNorm with that eps
        from functools import partial
        from timm.layers import LayerNorm
        kwargs["norm_layer"] = partial(LayerNorm, eps=kwargs.pop("norm_eps"))
    kwargs["num_classes"] = 1000 if keep_classifier else 0
    if spec.arch == "vit":
        kwargs.setdefault("dynamic_img_size", True)
    if spec.id == "vgg19":
        kwargs.setdefault("drop_rate", VGG_DROPOUT)
    if "vgg_cfg" in kwargs:
        from timm.models.vgg import VGG
        return VGG(cfg=kwargs.pop("vgg_cfg"), **kwargs)
    return install(timm.create_model(spec.timm_arch, pretrained=False, **kwargs), spec.pos_rule or spec.family)


def strip_unused_parts(spec: ModelSpec, model: torch.nn.Module) -> torch.nn.Module:
    """Remove what feature extraction never runs (SAM's neck) so it is not trained.

    The study replaced SAM's neck by an identity and averaged the last block's tokens; VGG keeps
    its fc6/fc7 block (``pre_logits``): the study's VGG feature is fc7.
    """
    if spec.arch == "sam" and not isinstance(model.neck, torch.nn.Identity):
        model.prune_intermediate_layers(indices=None, prune_norm=True, prune_head=True)
    return model


def reference_parameter_count(spec: ModelSpec, *, exclude_pos_embed: bool = False) -> int:
    """Parameters of the full-size model counted as the study did, built on the meta device.

    ViTs without any head (SAM with its neck: the published image encoder); CNNs with their
    ImageNet classifier, as torchvision publishes them; scratch models whole, with a 2-class head.
    ``exclude_pos_embed`` leaves out the absolute position table, whose size depends on the
    pretraining resolution rather than the architecture (DINOv2's 37x37 table is 0.5M of ViT-S).
    """
    with torch.device("meta"):
        if spec.arch == "seg_scratch":
            model = build_scratch_model(spec.id, 2, demo=False, resolution=spec.native_resolution)
        else:
            model = create_architecture(spec, keep_classifier=spec.arch == "cnn")
    skip = "pos_embed" if exclude_pos_embed else None
    return sum(p.numel() for name, p in model.named_parameters() if skip is None or name.split(".")[-1] != skip)
