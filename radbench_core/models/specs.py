"""The fifteen models of the study as one registry of :class:`ModelSpec` (plain data, bottom floor).

A spec says what the study calls the model, how it was trained (paradigm), the timm ``arch.tag`` it
is built from (or, for a user's own ``nn.Module``, its ``builder``), its patch size and resolution,
which tasks use it, and the tiny random-init variant the demo profile builds from the same class.
This module imports no builder: ``architectures.py`` builds a spec, ``weights.py`` finds and loads its
weights, ``features.py`` wraps it as a Backbone (timm's split: the registry never imports the builder).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from radbench_core.core.errors import ConfigError
from radbench_core.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover  (plain data: listing or planning models imports no torch)
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_DROPOUT = 0.5   # torchvision vgg19 classifier: Dropout(0.5) after fc6 and after fc7
PARADIGMS = ("supervised", "weakly-supervised", "self-supervised", "from scratch")
ARCHS = ("vit", "sam", "cnn", "seg_scratch", "module")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the study: enough to build it, find its weights and label it in reports."""
    id: str
    label: str                      # the study's name, e.g. "DINOv2 ViT-L/14"
    paradigm: str                   # one of PARADIGMS
    family: str                     # pytest marker: dinov2 | clip | mae | msn | sam | supervised_vit | cnn | scratch
    arch: str                       # vit | sam | cnn | seg_scratch | module (a user's own nn.Module)
    timm_name: str                  # "arch.tag" (arch only where timm has no such weights); "" for unet
    patch_size: int                 # ViTs: patch size; CNNs: overall stride (32)
    native_resolution: int          # the resolution its weights were trained at
    tasks: tuple[str, ...]
    demo_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    study_params_m: float = 0.0     # parameter count in the study's Table 2 / Table 6, millions
    default_resolution: int = 224   # used when a caller gives no resolution
    hub_id: str = ""                # Hugging Face repo timm loads from; "" when timm has none
    drop_prefixes: tuple[str, ...] = ("head.",)   # checkpoint keys the feature backbone does not use
    norm: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    source_note: str = ""           # where a user gets the official weights
    # weight names a file may hold in another shape, resampled by timm's converter on purpose (e.g.
    # ("pos_embed",) for a file trained at another resolution); any other wrong shape is refused
    resample_weights: tuple[str, ...] = ()
    # arch="module": "package.module:function" (or the function) building the nn.Module from keyword
    # arguments (``demo_kwargs`` for the demo); its forward(x) returns (B, D) features, and it has
    # ``embed_dim`` (or ``num_features``) = D
    builder: str | Callable[..., torch.nn.Module] | None = field(default=None, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"ModelSpec {self.id!r}", f"arch {self.arch!r} is not one of {', '.join(ARCHS)}",
                              "use 'vit' (a timm ViT), 'cnn' (a timm CNN) or 'module' with a builder")
        if self.paradigm not in PARADIGMS:
            raise ConfigError(f"ModelSpec {self.id!r}", f"paradigm {self.paradigm!r} is not one of "
                              f"{', '.join(PARADIGMS)}", "pick the one that says how it was trained")
        if self.arch == "module" and self.builder is None:
            raise ConfigError(f"ModelSpec {self.id!r}", "arch='module' needs a builder",
                              "pass builder='package.module:function' returning the nn.Module")

    @property
    def timm_arch(self) -> str:
        """The architecture half of ``timm_name`` (what ``timm.create_model`` builds)."""
        return self.timm_name.split(".")[0]


def _vit(id: str, label: str, paradigm: str, family: str, timm_name: str, patch: int, native: int,
         params: float, demo: dict[str, Any], **extra: Any) -> ModelSpec:
    return ModelSpec(id=id, label=label, paradigm=paradigm, family=family, arch="vit", timm_name=timm_name,
                     patch_size=patch, native_resolution=native, tasks=("classification", "segmentation"),
                     demo_kwargs=demo, study_params_m=params, hub_id=extra.pop("hub_id", f"timm/{timm_name}"),
                     **extra)


def _cnn(id: str, label: str, timm_name: str, params: float, demo: dict[str, Any], head: tuple[str, ...],
         source_note: str = "the torchvision ImageNet-1k weights (timm tag .tv_in1k)") -> ModelSpec:
    return ModelSpec(id=id, label=label, paradigm="supervised", family="cnn", arch="cnn", timm_name=timm_name,
                     patch_size=32, native_resolution=224, tasks=("classification",), demo_kwargs=demo,
                     study_params_m=params, hub_id=f"timm/{timm_name}", drop_prefixes=head,
                     source_note=source_note)


def _tiny_vit(width: int, heads: int, **kw: Any) -> dict[str, Any]:
    return dict(embed_dim=width, depth=4, num_heads=heads, **kw)


def _tiny_dinov2(width: int, heads: int) -> dict[str, Any]:
    # DINOv2 trains with LayerScale initialised at 1e-5: at random init its blocks are then near-identity
    # and the class token carries no image content. The demo keeps LayerScale but starts it at 1.
    return _tiny_vit(width, heads, init_values=1.0)


_SPECS = [
    _vit("dinov2_vits14", "DINOv2 ViT-S/14", "self-supervised", "dinov2", "vit_small_patch14_dinov2.lvd142m",
         14, 518, 21, _tiny_dinov2(32, 2)),
    _vit("dinov2_vitb14", "DINOv2 ViT-B/14", "self-supervised", "dinov2", "vit_base_patch14_dinov2.lvd142m",
         14, 518, 86, _tiny_dinov2(48, 3)),
    _vit("dinov2_vitl14", "DINOv2 ViT-L/14", "self-supervised", "dinov2", "vit_large_patch14_dinov2.lvd142m",
         14, 518, 300, _tiny_dinov2(64, 4)),
    _vit("dinov2_vitg14", "DINOv2 ViT-g/14", "self-supervised", "dinov2", "vit_giant_patch14_dinov2.lvd142m",
         14, 518, 1100, _tiny_dinov2(96, 6)),
    _vit("dinov2_vitl14_reg4", "DINOv2 ViT-L/14 (reg4)", "self-supervised", "dinov2",
         "vit_large_patch14_reg4_dinov2.lvd142m", 14, 518, 300, _tiny_dinov2(64, 4)),
    # OpenAI CLIP was trained with QuickGELU; timm's quickgelu variant loads the same weights exactly.
    _vit("clip_vitl14", "CLIP ViT-L/14", "weakly-supervised", "clip", "vit_large_patch14_clip_quickgelu_224.openai",
         14, 224, 300, _tiny_vit(64, 4), hub_id="timm/vit_large_patch14_clip_224.openai"),
    _vit("openclip_vith14", "OpenCLIP ViT-H/14", "weakly-supervised", "clip", "vit_huge_patch14_clip_224.laion2b",
         14, 224, 632, _tiny_vit(80, 5)),
    _vit("mae_vitl16", "MAE ViT-L/16", "self-supervised", "mae", "vit_large_patch16_224.mae",
         16, 224, 300, _tiny_vit(64, 4)),
    _vit("msn_vitl16", "MSN ViT-L/16", "self-supervised", "msn", "vit_large_patch16_224",
         16, 224, 300, _tiny_vit(64, 4), hub_id="", drop_prefixes=("head.", "fc."),
         norm=(IMAGENET_MEAN, IMAGENET_STD),
         source_note="the official MSN checkpoint vitl16_600ep.pth.tar from github.com/facebookresearch/msn"),
    ModelSpec(id="sam_vitl16", label="SAM ViT-L/16", paradigm="self-supervised", family="sam", arch="sam",
              timm_name="samvit_large_patch16.sa1b", patch_size=16, native_resolution=1024,
              tasks=("classification", "segmentation"),
              demo_kwargs=_tiny_vit(64, 4, global_attn_indexes=[1, 3], neck_chans=16), study_params_m=300,
              hub_id="timm/samvit_large_patch16.sa1b", drop_prefixes=("head.", "neck.")),
    _vit("vit_l16_in21k", "ViT-L/16 (ImageNet-21k)", "supervised", "supervised_vit",
         "vit_large_patch16_224.augreg_in21k", 16, 224, 300, _tiny_vit(64, 4)),
    _cnn("densenet201", "DenseNet201", "densenet201.tv_in1k", 20,
         dict(growth_rate=16, block_config=(1, 1, 1, 1), bn_size=2), ("classifier.",)),
    # the study: torchvision resnet152(weights=ResNet152_Weights.DEFAULT), IMAGENET1K_V2 since
    # torchvision 0.13 (resnet152-f82ba261.pth), which is timm's .tv2_in1k
    _cnn("resnet152", "ResNet152", "resnet152.tv2_in1k", 60,
         dict(layers=(1, 1, 1, 1), channels=(8, 16, 32, 64), stem_width=8), ("fc.",),
         source_note="the torchvision IMAGENET1K_V2 weights (timm tag .tv2_in1k), the study's DEFAULT"),
    # timm's vgg19 fixes its layer list, so the demo passes VGG19's own layout at 1/8 width.
    _cnn("vgg19", "VGG19", "vgg19.tv_in1k", 144,
         dict(vgg_cfg=[8, 8, "M", 16, 16, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M", 64, 64, 64, 64, "M"],
              mlp_ratio=1 / 64), ("head.",)),
    ModelSpec(id="unet", label="U-Net", paradigm="from scratch", family="scratch", arch="seg_scratch",
              timm_name="", patch_size=16, native_resolution=224, tasks=("segmentation",),
              demo_kwargs=dict(base_width=4), study_params_m=31, drop_prefixes=()),
    ModelSpec(id="transunet", label="TransUNet", paradigm="from scratch", family="scratch", arch="seg_scratch",
              timm_name="", patch_size=16, native_resolution=224, tasks=("segmentation",),
              demo_kwargs=dict(trunk_layers=(1, 1, 1), trunk_channels=(16, 32, 64), stem_chs=8, norm_groups=2,
                               embed_dim=32, depth=2, num_heads=2, head_channels=16,
                               decoder_channels=(16, 16, 16, 16)),
              study_params_m=324, drop_prefixes=()),
]

MODELS: Registry[ModelSpec] = Registry.of_builtins("model", ModelSpec, "radbench list models", _SPECS)


def get_model(model_id: str | ModelSpec) -> ModelSpec:
    """Look a model up by id, failing with the list of valid ids (a typo must not pass silently)."""
    return MODELS.get_spec(model_id)


def demo_seed(model_id: str) -> int:
    """A seed derived from the model id only, so a demo model is identical in every process."""
    return int.from_bytes(hashlib.sha256(model_id.encode()).digest()[:4], "little")


def preprocessing(spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) the weights were trained with: inputs must be normalised the same way."""
    if spec.norm is not None:
        return spec.norm
    if spec.arch in ("seg_scratch", "module"):
        return IMAGENET_MEAN, IMAGENET_STD
    import timm
    cfg = timm.get_pretrained_cfg(spec.timm_name)
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


def count_parameters(module: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts: what LoRA/BitFit/linear probing actually train."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
