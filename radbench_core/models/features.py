"""One feature interface for every backbone of the study: ViTs, SAM's encoder and CNNs.

Protocols only ever see :class:`Backbone`: ``pooled`` for frozen probes (class tokens of the last 4
blocks, mean patch token), ``patch_maps`` for segmentation decoders (4 maps, shallow to deep),
``head_features`` for fine-tuning. :func:`load_backbone` builds it from a registry entry, either as a
tiny random-init demo variant or with real weights found by ``weights.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from radbench_core.core.errors import ConfigError
from radbench_core.models.architectures import create_architecture, strip_unused_parts
from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD, VGG_DROPOUT, ModelSpec, count_parameters, demo_seed, get_model, preprocessing
from radbench_core.core.results import DEMO_WEIGHTS
from radbench_core.models.weights import find_weights, load_weights_into

__all__ = ["Backbone", "load_backbone", "count_parameters"]
CNN_MAP_STRIDES = (4, 8, 16, 32)


def spread_blocks(depth: int, count: int = 4) -> list[int]:
    """The last block of each of ``count`` equal parts of the network (U-Net skip sources)."""
    return [max(0, (i + 1) * depth // count - 1) for i in range(count)]


MAP_BLOCKS = 5      # the study's U-Net decoder: the last block (bottleneck) + the 4 blocks before it
# switch vit_tokens_after_final_norm: a ViT's tokens after its final LayerNorm (ours), or the raw
# block outputs = transformers' hidden_states, as the study took them from its Hugging Face ViTs
TOKEN_NORMS = ("final_norm", "hidden_states")
STUDY_DECODER_NORM_EPS = 1e-6   # the study's HF wrappers: a fresh nn.LayerNorm(D, eps=1e-6) (weight 1, bias 0)


def last_blocks(depth: int, count: int) -> list[int]:
    """Indices of the last ``count`` blocks; a shallower (demo) net repeats its first block."""
    return [max(0, depth - count + i) for i in range(count)]


class Backbone(nn.Module):
    """A pretrained (or demo) image encoder with the study's feature kinds, whatever its family."""

    def __init__(self, spec: ModelSpec, model: nn.Module, *, resolution: int, weights: str) -> None:
        super().__init__()
        self.spec, self.model, self.resolution, self.weights = spec, model, resolution, weights
        self.token_norm = "final_norm"            # see with_token_norm
        mean, std = preprocessing(spec)
        self.mean: tuple[float, float, float] = tuple(mean)  # type: ignore[assignment]
        self.std: tuple[float, float, float] = tuple(std)  # type: ignore[assignment]
        if spec.arch in ("vit", "sam"):
            depth = len(model.blocks)
            self.embed_dim = int(model.embed_dim)
            self.has_patch_tokens = True
            self.n_cls_blocks = min(4, depth) if spec.arch == "vit" else 1
            self._cls_blocks = list(range(depth - self.n_cls_blocks, depth))
            self._map_blocks = last_blocks(depth, MAP_BLOCKS)
            self.map_channels = (self.embed_dim,) * MAP_BLOCKS
            self.map_strides = (spec.patch_size,) * MAP_BLOCKS
        elif spec.arch == "module":               # a user's nn.Module: forward(x) -> (B, D)
            self.embed_dim = int(getattr(model, "embed_dim", 0) or getattr(model, "num_features", 0))
            if self.embed_dim <= 0:
                raise ConfigError(f"model {spec.id!r}", "the built module has no embed_dim (or num_features)",
                                  "set self.embed_dim = D in the module (D = width of forward's output)")
            self.has_patch_tokens, self.n_cls_blocks, self._fc7 = False, 1, False
            self._map_blocks, self.map_channels, self.map_strides = [], (), ()
        else:
            info = model.feature_info
            self._map_blocks = [max(i for i, f in enumerate(info) if f["reduction"] == s) for s in CNN_MAP_STRIDES]
            self._fc7 = isinstance(getattr(model, "pre_logits", None), nn.Module) and \
                not isinstance(model.pre_logits, nn.Identity)
            self.embed_dim = int(model.head_hidden_size if self._fc7 else model.num_features)
            self.has_patch_tokens = False
            self.n_cls_blocks = 1
            self.map_channels = tuple(int(info[i]["num_chs"]) for i in self._map_blocks)
            self.map_strides = CNN_MAP_STRIDES
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ConfigError(f"{self.spec.id} input", f"expected images (B, 3, H, W), got {tuple(x.shape)}",
                              "normalise with Backbone.normalize, which also turns grayscale into 3 channels")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, 1 or 3, H, W) -> the normalised 3-channel input these weights expect."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ConfigError(f"{self.spec.id} input", f"expected (B, 1|3, H, W) images, got {tuple(images.shape)}",
                              "stack slices into a batch with 1 (grayscale) or 3 channels")
        images = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return (images.to(self._mean.dtype) - self._mean) / self._std

    def pooled(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frozen-probe features: ``cls`` (B, n_cls_blocks, D), last block last; ``patch_mean`` (B, D)."""
        self._check(x)
        if self.spec.arch == "vit" and not self.model.num_prefix_tokens:
            # SigLIP has no class token: its per-block summary is the mean patch token (timm's gap)
            outs = self.model.forward_intermediates(x, indices=self._cls_blocks, norm=self._final_norm,
                                                    output_fmt="NLC", intermediates_only=True)
            cls = torch.stack([tokens.mean(dim=1) for tokens in outs], dim=1)
            return {"cls": cls, "patch_mean": cls[:, -1]}
        if self.spec.arch == "vit":
            outs = self.model.forward_intermediates(x, indices=self._cls_blocks, return_prefix_tokens=True,
                                                    norm=self._final_norm, output_fmt="NLC",
                                                    intermediates_only=True)
            cls = torch.stack([prefix[:, 0] for _, prefix in outs], dim=1)
            return {"cls": cls, "patch_mean": outs[-1][0].mean(dim=1)}
        if self.spec.arch == "sam":
            mean = self.head_features(x)
            return {"cls": mean.unsqueeze(1), "patch_mean": mean}
        return {"cls": self.head_features(x).unsqueeze(1)}

    def patch_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Maps (B, C_i, H/s_i, W/s_i), shallow to deep, as inputs of a segmentation decoder.

        ViT/SAM: the normed patch tokens of the last 5 blocks (the study's U-Net decoder takes the last
        as bottleneck and the 4 before it as skips; the linear decoder uses the last). CNN: 4 stages.
        With ``token_norm="hidden_states"`` a ViT's maps are the raw block outputs (see
        :func:`study_linear_decoder_input` for the study's linear decoder).
        """
        self._check(x)
        if self.spec.arch == "module":
            raise ConfigError(f"model {self.spec.id!r}", "a module backbone gives pooled features only",
                              "use it with classification protocols (tasks=('classification',))")
        unique = sorted(set(self._map_blocks))        # timm returns each block once (a demo net repeats)
        if self.spec.arch == "vit":
            maps = self.model.forward_intermediates(x, indices=unique, norm=self._final_norm,
                                                    output_fmt="NCHW", intermediates_only=True)
        else:
            maps = self.model.forward_intermediates(x, indices=unique, intermediates_only=True)
        return [maps[unique.index(b)] for b in self._map_blocks]

    def head_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D), differentiable: last-block class token (ViT), mean of the last block's tokens
        (SAM, neck removed), pooled last stage (ResNet, DenseNet), fc7 (VGG)."""
        self._check(x)
        if self.spec.arch == "module":
            return self.model(x)
        if self.spec.arch == "vit" and not self._final_norm:     # the raw last block (hidden_states[-1])
            tokens = self.model.forward_intermediates(x, indices=[len(self.model.blocks) - 1], norm=False,
                                                      output_fmt="NLC", return_prefix_tokens=True,
                                                      intermediates_only=True)[0]
            return tokens[1][:, 0] if self.model.num_prefix_tokens else tokens[0].mean(dim=1)
        feats = self.model.forward_features(x)
        if self.spec.arch == "vit":
            return feats[:, 0] if self.model.num_prefix_tokens else feats.mean(dim=1)
        if self.spec.arch == "cnn" and self._fc7:
            return self._vgg_fc7(feats)
        return feats.mean(dim=(2, 3))

    @property
    def _final_norm(self) -> bool:
        return self.token_norm != "hidden_states"

    def _vgg_fc7(self, feats: torch.Tensor) -> torch.Tensor:
        # torchvision's vgg19 with classifier[6] = Identity, as the study took it: avgpool to 7x7,
        # fc6, ReLU, Dropout, fc7, ReLU, Dropout (timm holds fc6/fc7 as convolutions in pre_logits)
        fc7 = self.model.pre_logits(nn.functional.adaptive_avg_pool2d(feats, 7)).flatten(1)
        return nn.functional.dropout(fc7, VGG_DROPOUT, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``head_features``: so a Backbone drops into ``nn.Sequential(backbone, head)`` for fine-tuning."""
        return self.head_features(x)

    def frozen(self) -> "Backbone":
        """Eval mode and no parameter gradients: the state of every frozen protocol."""
        self.eval()
        self.requires_grad_(False)
        return self


def _check_resolution(spec: ModelSpec, resolution: int) -> None:
    step = spec.patch_size if spec.arch in ("vit", "sam") else 1
    if isinstance(resolution, int) and resolution >= 32 and resolution % step == 0:
        return
    near = max(32, resolution // step * step if isinstance(resolution, int) else 224)
    near = (near + step - 1) // step * step
    raise ConfigError(f"model {spec.id} resolution", f"got {resolution!r}; expected an integer >= 32"
                      + (f" that is a multiple of the patch size {step}" if step > 1 else ""),
                      f"use e.g. {near} or {spec.default_resolution} (the study's default)")


def _device(device: str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError("device", f"{device!r} is not a torch device", "use 'cpu' or 'cuda:N'") from exc


def build_demo_model(spec: ModelSpec, arch_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """The tiny random-init variant, seeded from the model id alone (identical in every process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(demo_seed(spec.id))
        model = create_architecture(spec, spec.demo_kwargs if arch_kwargs is None else arch_kwargs)
    return strip_unused_parts(spec, scale_demo_patch_kernels(spec, model))


def scale_demo_patch_kernels(spec: ModelSpec, model: nn.Module) -> nn.Module:
    """A random init assumes standardised inputs (zero mean, unit spread). A model whose own
    preprocessing does not standardise (MedSAM: [0, 1] images, std 1) sees the image at ~1/4.4 of
    that contrast on top of a large constant, which its random blocks carry to every token (demo
    MedSAM's patch maps varied 3.4x less across the image than SAM's: Dice 0.000). The demo variant
    folds ImageNet's mean/std into its patch embedding (kernels / std, bias - kernels . mean / std):
    it computes what the same random net computes on standardised images. Real weights: untouched."""
    proj = getattr(getattr(model, "patch_embed", None), "proj", None)
    if not isinstance(proj, nn.Conv2d) or proj.bias is None or any(s != 1.0 for s in preprocessing(spec)[1]):
        return model
    mean, std = (torch.tensor(v, dtype=proj.weight.dtype).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        proj.weight.div_(std)
        proj.bias.sub_((proj.weight * mean).sum(dim=(1, 2, 3)))
    return model


def load_backbone(model_id: str | ModelSpec, *, demo: bool, resolution: int | None = None,
                  weights_dir: Path | str | None = None, device: str = "cpu",
                  arch_kwargs: dict[str, Any] | None = None, hf_cache_dir: Path | None = None) -> Backbone:
    """Build a registry model as a :class:`Backbone`, in eval mode, on ``device``.

    ``demo=True`` builds the tiny random-init variant. ``demo=False`` loads real weights (see
    ``weights.py``) and raises ``WeightsMissing`` when there are none; ``arch_kwargs`` overrides the
    architecture (tests load small checkpoints through the real code path this way).
    """
    spec = get_model(model_id)
    if spec.arch == "seg_scratch":
        raise ConfigError(f"model {spec.id!r}", "is a from-scratch segmentation model, not a feature backbone",
                          "build it with radbench_core.models.scratch_models.build_scratch_model")
    resolution = spec.default_resolution if resolution is None else resolution
    _check_resolution(spec, resolution)
    target = _device(device)
    if demo:
        model, provenance = build_demo_model(spec, arch_kwargs), DEMO_WEIGHTS
    else:
        source = find_weights(spec, weights_dir, hf_cache_dir=hf_cache_dir)
        model = strip_unused_parts(spec, create_architecture(spec, arch_kwargs))
        load_weights_into(model, spec, source.path)
        provenance = source.provenance
    backbone = Backbone(spec, model, resolution=resolution, weights=provenance).to(target).eval()
    if spec.arch == "cnn" and target.type == "cuda":
        backbone.model.to(memory_format=torch.channels_last)
    return backbone


def with_input_norm(backbone: "Backbone", mean: tuple[float, float, float],
                    std: tuple[float, float, float]) -> "Backbone":
    """The same backbone (shared weights) normalising its inputs with other constants.

    Switch ``input_norm_per_model``: the study fed every model ImageNet mean/std after a per-image
    min-max; ours uses each model's own constants. A shallow copy, so the pooled original (and
    the cells that use its constants) is untouched; the feature cache keys on ``mean``/``std``.
    """
    if tuple(backbone.mean) == tuple(mean) and tuple(backbone.std) == tuple(std):
        return backbone
    import copy
    new = copy.copy(backbone)
    new._buffers = dict(backbone._buffers)
    new.mean, new.std = tuple(mean), tuple(std)
    device = backbone._mean.device
    new._buffers["_mean"] = torch.tensor(new.mean, device=device).view(1, 3, 1, 1)
    new._buffers["_std"] = torch.tensor(new.std, device=device).view(1, 3, 1, 1)
    return new


def with_token_norm(backbone: "Backbone", token_norm: str) -> "Backbone":
    """The same backbone (shared weights) giving its ViT tokens before or after the final LayerNorm.

    Switch ``vit_tokens_after_final_norm``: the study's wrappers of the Hugging Face ViTs (CLIP,
    OpenCLIP, MAE, MSN, ViT-L/16; its dinov2/eval/utils.py) return ``hidden_states[-n:]``, the block
    outputs before the final LayerNorm, to kNN, the linear probe, few-shot, the fine-tune head and the
    U-Net decoder. A shallow copy, so the pooled original keeps its tokens; the feature cache keys on
    ``token_norm``.
    """
    if token_norm not in TOKEN_NORMS:
        raise ConfigError(f"hparams['vit_tokens']={token_norm!r}", "unknown ViT token normalisation",
                          f"use one of {', '.join(TOKEN_NORMS)}")
    if token_norm == backbone.token_norm:
        return backbone
    import copy
    new = copy.copy(backbone)
    new.token_norm = token_norm
    return new


def study_linear_decoder_input(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """The study's linear decoder input for its Hugging Face ViTs: ``forward_features`` returns a fresh
    ``nn.LayerNorm(D, eps=1e-6)`` (weight 1, bias 0, never trained) of the last block's raw patch
    tokens, not the model's own final LayerNorm. ``maps`` (B, D, h, w): the last one is normalised
    over D."""
    last = maps[-1]
    normed = nn.functional.layer_norm(last.movedim(1, -1), (last.shape[1],), eps=STUDY_DECODER_NORM_EPS)
    return [*maps[:-1], normed.movedim(-1, 1)]
