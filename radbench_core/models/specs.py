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
TRAINING_DATA = ("natural", "medical")
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
    # beyond the study (issue 24): what the weights saw, the position-table rule when it is not the
    # family's, timm arguments every build gets (full and demo), and the official file layout
    training_data: str = "natural"  # natural | medical
    training_note: str = ""         # e.g. "LVD-1689M web images", "chest X-rays (MIMIC-CXR, ...)"
    pos_rule: str = ""              # a key of pos_embed.RULES; "" = the family's rule
    arch_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    layout: str = "timm"            # timm | hf_dinov2 | hf_siglip | open_clip_timm | sam (hf_layouts.py)
    #                                 | dinov2_hub | dinov3 (Meta's release files, release_layouts.py)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"ModelSpec {self.id!r}", f"arch {self.arch!r} is not one of {', '.join(ARCHS)}",
                              "use 'vit' (a timm ViT), 'cnn' (a timm CNN) or 'module' with a builder")
        if self.paradigm not in PARADIGMS:
            raise ConfigError(f"ModelSpec {self.id!r}", f"paradigm {self.paradigm!r} is not one of "
                              f"{', '.join(PARADIGMS)}", "pick the one that says how it was trained")
        if self.training_data not in TRAINING_DATA:
            raise ConfigError(f"ModelSpec {self.id!r}", f"training_data {self.training_data!r} is not one of "
                              f"{', '.join(TRAINING_DATA)}", "say whether its weights saw natural or medical images")
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
         "vit_large_patch14_reg4_dinov2.lvd142m", 14, 518, 300, _tiny_dinov2(64, 4), pos_rule="dinov2_reg",
         layout="dinov2_hub", source_note="dinov2_vitl14_reg4_pretrain.pth of the torch hub "
         "(github.com/facebookresearch/dinov2) or timm's hub copy"),
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
    # the study's ViT-L/16: transformers ViTForImageClassification.from_pretrained(
    # 'google/vit-large-patch16-224') (its utils.py:63), the original ViT (ImageNet-21k pre-training +
    # ImageNet-1k fine-tune), loaded from that Hugging Face folder (hf_layouts.hf_vit) into timm's
    # ViT-L/16 with transformers' LayerNorm eps (1e-12) and the checkpoint's own 0.5/0.5 constants
    _vit("vit_l16_in21k", "ViT-L/16 (ImageNet-21k)", "supervised", "supervised_vit",
         "vit_large_patch16_224", 16, 224, 300, _tiny_vit(64, 4), hub_id="google/vit-large-patch16-224",
         layout="hf_vit", arch_kwargs=dict(norm_eps=1e-12), norm=((0.5,) * 3, (0.5,) * 3),
         drop_prefixes=("head.", "classifier.", "pooler."),
         training_note="ImageNet-21k pre-training, ImageNet-1k fine-tuning at 224 px (original ViT)",
         source_note="the Hugging Face repo google/vit-large-patch16-224 (config.json + model.safetensors "
         "or pytorch_model.bin), the study's checkpoint"),
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

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# SigLIP's MLP is 4304 wide on 1152 (so400m); big_vision and transformers use tanh-approximated GELU
_SIGLIP = dict(act_layer="gelu_tanh")
_TINY_SIGLIP = _tiny_vit(32, 2, mlp_ratio=4304 / 1152)
_MED_CXR = "chest X-rays (MIMIC-CXR, CheXpert, NIH-CXR, PadChest, BRAX): overlaps the NIH and CheXpert cells"

# Beyond the study (issue 24): the models radiology papers compare against today, loaded from the
# files their authors publish (``layout``; hf_layouts.py converts the Hugging Face / open_clip ones).
FRONTIER_SPECS = [
    _vit("dinov2_vitg14_reg4", "DINOv2 ViT-g/14 (reg4)", "self-supervised", "dinov2",
         "vit_giant_patch14_reg4_dinov2.lvd142m", 14, 518, 1100, _tiny_dinov2(96, 6), pos_rule="dinov2_reg",
         layout="dinov2_hub", training_note="LVD-142M curated web images",
         source_note="dinov2_vitg14_reg4_pretrain.pth of the torch hub (github.com/facebookresearch/dinov2) "
         "or timm's hub copy"),
    # the release has a qkv bias (k third masked to 0): timm's _qkvb variant holds it; demo features are
    # identical to the bias-free variant's (the biases start at zero)
    *[_vit(f"dinov3_vit{size[0]}16", f"DINOv3 ViT-{size[0].upper()}/16", "self-supervised", "dinov3",
           f"vit_{size}_patch16_dinov3_qkvb.lvd1689m", 16, 256, params, _tiny_dinov2(width, heads),
           layout="dinov3", training_note="LVD-1689M curated web images (RoPE: no position table to resize)",
           source_note=f"dinov3_vit{size[0]}16_pretrain_lvd1689m-<hash>.pth of the DINOv3 release "
           "(github.com/facebookresearch/dinov3) or timm's hub copy")
      for size, params, width, heads in (("small", 21, 32, 2), ("base", 86, 48, 3), ("large", 300, 64, 4))],
    _vit("siglip_so400m14", "SigLIP so400m/14", "weakly-supervised", "siglip",
         "vit_so400m_patch14_siglip_gap_384.webli", 14, 384, 413, _TINY_SIGLIP, arch_kwargs=_SIGLIP,
         drop_prefixes=("head.", "attn_pool."), training_note="WebLI image-text pairs (sigmoid loss)"),
    _vit("rad_dino", "RAD-DINO ViT-B/14", "self-supervised", "dinov2", "vit_base_patch14_dinov2", 14, 518, 86,
         _tiny_dinov2(48, 3), hub_id="microsoft/rad-dino", pos_rule="hf_dinov2", layout="hf_dinov2",
         training_data="medical", training_note=_MED_CXR, norm=((0.5307,) * 3, (0.2583,) * 3),
         source_note="the Hugging Face repo microsoft/rad-dino (config.json + model.safetensors)"),
    _vit("biomedclip_vitb16", "BiomedCLIP ViT-B/16", "weakly-supervised", "clip", "vit_base_patch16_224", 16, 224,
         86, _tiny_vit(48, 3), hub_id="microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
         layout="open_clip_timm", training_data="medical", norm=(CLIP_MEAN, CLIP_STD),
         training_note="PMC-15M figure-caption pairs from PubMed Central (all modalities)",
         source_note="the open_clip hub repo microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"),
    _vit("medsiglip_448", "MedSigLIP so400m/14", "weakly-supervised", "siglip", "vit_so400m_patch14_siglip_gap_448",
         14, 448, 413, _TINY_SIGLIP, arch_kwargs=_SIGLIP, hub_id="google/medsiglip-448", pos_rule="hf_siglip",
         layout="hf_siglip", training_data="medical", norm=HALF,
         training_note="medical image-text pairs (chest X-ray, CT/MRI slices, dermatology, ophthalmology, "
         "pathology) plus WebLI", source_note="the Hugging Face repo google/medsiglip-448 (gated)"),
    ModelSpec(id="medsam_vitb16", label="MedSAM ViT-B/16", paradigm="supervised", family="sam", arch="sam",
              timm_name="samvit_base_patch16", patch_size=16, native_resolution=1024,
              tasks=("classification", "segmentation"),
              demo_kwargs=_tiny_vit(48, 3, global_attn_indexes=[1, 3], neck_chans=16), study_params_m=90,
              drop_prefixes=("head.", "neck."), layout="sam", training_data="medical", norm=((0.0,) * 3, (1.0,) * 3),
              training_note="SAM fine-tuned on 1.57M medical image-mask pairs (CT, MRI, X-ray, ...); "
              "inputs min-max scaled to [0, 1], no mean/std",
              source_note="medsam_vit_b.pth from github.com/bowang-lab/MedSAM"),
]

MODELS: Registry[ModelSpec] = Registry.of_builtins("model", ModelSpec, "radbench list models",
                                                   _SPECS + FRONTIER_SPECS)
FRONTIER = tuple(spec.id for spec in FRONTIER_SPECS)


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
