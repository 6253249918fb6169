"""A protocol's inputs, built from its input kind through one table (``BUILDERS``).

Why a table: ``ProtocolSpec.inputs`` names what a protocol consumes (cached features, a trainable
backbone copy, a frozen backbone with mask datasets, or nothing but a scratch model id); each kind
has exactly one builder, so the runner never branches on the kind. What a protocol needs beyond its
hyperparameters (the linear probe's rate, where to save examples, augmented feature draws) arrives
as an explicit field of its inputs, never as a key added to the already hashed hyperparameters.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from radbench_core.core import progress
from radbench_core.core.cells import Cell
from radbench_core.data.datasets import DatasetIndex
from radbench_core.protocols import ProtocolSpec, get_protocol
from radbench_core.protocols.base import FrozenInputs, LiveInputs, SegInputs, choice, cis_from_predictions
from radbench_core.run.context import BackbonePool, RunContext
from radbench_core.run.extraction import extract_splits
from radbench_core.run.feature_cache import FeatureCache, index_files, sources_fingerprint

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CellSetup:
    """Everything a builder may read: the cell, its hashed hyperparameters (read only), its data."""
    cell: Cell
    protocol: ProtocolSpec
    hparams: Mapping[str, Any]
    resolution: int
    index: DatasetIndex
    ctx: RunContext
    pool: BackbonePool
    cache: FeatureCache

    def backbone(self):
        """The pooled pretrained backbone (loaded once per model and resolution)."""
        progress.update("backbone")
        ctx = self.ctx
        backbone = self.pool.get(self.cell.model, demo=ctx.profile.demo, resolution=self.resolution,
                                 weights_dir=ctx.weights_dir, device=ctx.device)
        if self.hparams.get("input_norm", "model") == "imagenet":     # switch input_norm_per_model
            from radbench_core.models.features import with_input_norm
            from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD
            backbone = with_input_norm(backbone, IMAGENET_MEAN, IMAGENET_STD)
        tokens = vit_tokens(self.cell, self.hparams)
        if tokens != "final_norm":                   # switch vit_tokens_after_final_norm
            from radbench_core.models.features import with_token_norm
            backbone = with_token_norm(backbone, tokens)
        return backbone

    def forward(self, backbone=None):
        """The pooled forward of ``backbone``: the pool's (compiled when asked) unless the cell's
        backbone gives other tokens than the pooled one (a token-norm copy has its own ``pooled``)."""
        if backbone is not None and getattr(backbone, "token_norm", "final_norm") != "final_norm":
            return backbone.pooled
        return self.pool.pooled_forward(self.ctx.compile)


def vit_tokens(cell: Cell, hparams: Mapping[str, Any]) -> str:
    """The cell's ViT token normalisation: the study's ``hidden_states`` only for the models the
    switch ``vit_tokens_after_final_norm`` names (its Hugging Face ViTs); every other model's tokens
    are normalised in both profiles (DINOv2's were in the study too)."""
    from radbench_core.config.switches import switches
    switch = switches()["vit_tokens_after_final_norm"]
    if not switch.affects(cell.model, cell.dataset, cell.protocol):
        return "final_norm"
    return str(hparams.get(switch.key, switch.sound))


@dataclass(frozen=True)
class BuiltInputs:
    """A protocol's inputs and the pooled backbone they came from (None for scratch models): the
    record takes its weights and, for a frozen probe, the whole model's size from it."""
    inputs: FrozenInputs | LiveInputs | SegInputs
    backbone: Any = None


def frozen(setup: CellSetup) -> BuiltInputs:
    """Cached features; the study's linear probe adds per-epoch augmented draws."""
    backbone = setup.backbone()
    progress.update("features")
    inputs = cached_features(setup, backbone)
    if setup.hparams.get("features") == "augmented":
        inputs = with_augmented(setup, backbone, inputs, setup.hparams)
    return BuiltInputs(inputs, backbone)


def with_augmented(setup: CellSetup, backbone, inputs: FrozenInputs, hparams: Mapping[str, Any]) -> FrozenInputs:
    """``inputs`` plus per-epoch augmented train/val features, drawn as ``hparams`` say (the
    augmentation kind, the eval resize) through the cell's backbone (its token normalisation)."""
    return dataclasses.replace(inputs, augmented=augmented_features(
        setup.index, backbone, setup.cell, setup.resolution, setup.ctx, setup.forward(backbone),
        augment_kind=str(hparams.get("cls_augment", "square_crop")), resize=eval_resize(hparams)))


def live(setup: CellSetup) -> BuiltInputs:
    """A trainable copy of the backbone; ``head_lr="linear"`` brings the linear probe's rate."""
    backbone = setup.backbone()
    probe_lr = linear_probe_lr(setup, backbone) if setup.hparams.get("head_lr") == "linear" else None
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ClassificationAugment
    transform = _transform(backbone, setup.resolution, resize=eval_resize(setup.hparams))
    index, ctx = setup.index, setup.ctx
    augment = ClassificationAugment(kind=str(setup.hparams.get("cls_augment", "square_crop")),
                                    resolution=setup.resolution)
    datasets = {s: SliceDataset(index, s, transform, seed=ctx.seed,
                                augment=augment if s == "train" else None)
                for s in SPLITS}
    inputs = LiveInputs(backbone=copy.deepcopy(backbone), datasets=datasets,
                        labels={s: index.labels(s) for s in SPLITS},
                        label_kind=index.spec.label_kind, num_classes=index.spec.num_classes,
                        device=ctx.device, num_workers=ctx.workers, dataset=index.spec.id,
                        linear_probe_lr=probe_lr)
    return BuiltInputs(inputs, backbone)


def seg(setup: CellSetup) -> BuiltInputs:
    """A frozen pretrained backbone under a trained decoder."""
    backbone = setup.backbone()
    return BuiltInputs(_seg_inputs(setup, backbone), backbone)


def scratch(setup: CellSetup) -> BuiltInputs:
    """No pretrained backbone: the protocol builds the scratch model the cell names."""
    return BuiltInputs(_seg_inputs(setup, None, scratch_model=setup.cell.model))


BUILDERS: dict[str, Callable[[CellSetup], BuiltInputs]] = {
    "frozen": frozen, "live": live, "seg": seg, "scratch": scratch}


def _seg_inputs(setup: CellSetup, backbone, scratch_model: str | None = None) -> SegInputs:
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import SegmentationAugment
    transform = _transform(backbone, setup.resolution,
                           imagenet_norm=setup.hparams.get("input_norm", "model") == "imagenet")
    augment = bool(setup.hparams.get("augment", True))
    index, ctx = setup.index, setup.ctx
    datasets = {s: SliceDataset(index, s, transform, with_masks=True, seed=ctx.seed,
                                augment=SegmentationAugment() if s == "train" and augment else None)
                for s in SPLITS}
    return SegInputs(index=index, datasets=datasets, num_classes=index.spec.num_classes + 1,
                     resolution=setup.resolution, backbone=backbone, scratch_model=scratch_model,
                     device=ctx.device, num_workers=ctx.workers,
                     examples_path=examples_path(ctx, setup.cell))


def _transform(backbone_or_none, resolution: int, crop_from: int | None = None,
               resize: str = "bilinear_antialias", *, imagenet_norm: bool = False):
    from radbench_core.data.datasets.transforms import ModelTransform
    if backbone_or_none is None:                  # scratch models: 0.5 / 0.5 (ours) or ImageNet (the
        from radbench_core.models.specs import IMAGENET_MEAN, IMAGENET_STD   # study; input_norm_per_model)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_norm else ((0.5,) * 3, (0.5,) * 3)
        return ModelTransform(resolution, mean, std)
    mean, std = tuple(backbone_or_none.mean), tuple(backbone_or_none.std)
    if crop_from is None:
        return ModelTransform(resolution, mean, std, resize=resize)
    return ModelTransform(resolution, mean, std, crop_from=crop_from, resize=resize)


def eval_resize(hparams: Mapping[str, Any]) -> str:
    """How a classification cell resizes its inputs (switch ``cls_eval_resize_antialiased``):
    bilinear antialiased (ours, the default) or the study's bicubic without antialiasing."""
    return str(hparams.get("eval_resize", "bilinear_antialias"))


KNN_INPUTS = ("resize", "resize256_crop224")      # switch knn_plain_resize


def knn_crop_from(hparams: Mapping[str, Any], resolution: int) -> int | None:
    """The size a cell's images are resized to before the centre crop: None (whole image, ours), or
    the study's kNN Resize 256 -> CenterCrop 224 scaled to the cell's size (256/224 of it)."""
    value = hparams.get("knn_input", "resize")
    if value not in KNN_INPUTS:
        from radbench_core.core.errors import ConfigError
        raise ConfigError(f"hparams['knn_input']={value!r}", "unknown kNN input",
                          f"use one of {', '.join(KNN_INPUTS)}")
    return None if value == "resize" else int(round(resolution * 256 / 224))


@functools.lru_cache(maxsize=None)
def extractor_fingerprint() -> str:
    """The source of the modules that turn images into features: editing them invalidates the cache."""
    from radbench_core.models import features
    from radbench_core.models import specs as models
    from radbench_core.models import pos_embed
    from radbench_core.data.datasets import transforms
    digest = hashlib.sha256()
    for module in (features, models, pos_embed, transforms):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def cached_features(setup: CellSetup, backbone) -> FrozenInputs:
    """Every split's features from the shared cache (one backbone pass on a miss)."""
    from radbench_core.data.datasets.torch_data import SliceDataset
    index, cell, ctx = setup.index, setup.cell, setup.ctx
    crop_from = knn_crop_from(setup.hparams, setup.resolution)
    resize = eval_resize(setup.hparams)
    transform = _transform(backbone, setup.resolution, crop_from, resize)
    parts = {"model": cell.model, "weights": backbone.weights, "dataset": cell.dataset,
             "extractor": extractor_fingerprint(),
             "sources": sources_of(index),
             "root": str(index.root), "resolution": setup.resolution, "mean": list(backbone.mean),
             "std": list(backbone.std), "demo_arch": repr(getattr(backbone.spec, "demo_kwargs", None))
             if ctx.profile.demo else None,
             "items": hashlib.sha256(json.dumps({s: [index.items[i].key for i in idx]
                                                 for s, idx in sorted(index.splits.items())}
                                                ).encode()).hexdigest()}
    if crop_from is not None:                 # only then: the keys of uncropped features stay valid
        parts["crop_from"] = crop_from
    if getattr(backbone, "token_norm", "final_norm") != "final_norm":     # likewise
        parts["token_norm"] = backbone.token_norm
    if resize != "bilinear_antialias":                                     # likewise
        parts["eval_resize"] = resize

    def compute() -> dict[str, dict[str, np.ndarray]]:
        datasets = {split: SliceDataset(index, split, transform) for split in SPLITS}
        return extract_splits(backbone, datasets, device=ctx.device, batch_size=ctx.profile.batch_size,
                              num_workers=ctx.workers, progress=ctx.progress,
                              desc=f"{cell.model}/{cell.dataset}", forward=setup.forward(backbone))

    features = setup.cache.get_or_compute(parts, compute)
    return FrozenInputs(
        features={s: {k: np.asarray(v, dtype=np.float32) for k, v in kinds.items()}
                  for s, kinds in features.items()},
        labels={s: index.labels(s) for s in SPLITS},
        patients={s: index.patients(s) for s in SPLITS},
        label_kind=index.spec.label_kind, num_classes=index.spec.num_classes, device=ctx.device,
        dataset=cell.dataset)


def sources_of(index: DatasetIndex) -> str:
    """The size+mtime fingerprint of the index's files, taken once per index (one stat per file;
    NIH has 112k): an index lives for the session in ``_INDEXES`` like its items and splits."""
    fingerprint = getattr(index, "_sources_fingerprint", None)
    if fingerprint is None:
        fingerprint = sources_fingerprint(index.root, index_files(index))
        index._sources_fingerprint = fingerprint
    return fingerprint


def augmented_features(index: DatasetIndex, backbone, cell: Cell, resolution: int, ctx: RunContext,
                       forward=None, augment_kind: str = "square_crop",
                       resize: str = "bilinear_antialias") -> dict[str, Any]:
    """split -> (epoch -> item features of that split under that epoch's augmentation draw).

    The study trains linear heads on randomly scaled and flipped images, so these cannot come from
    the cache: every call is one frozen backbone pass over the split (all heads share it).
    """
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ClassificationAugment
    transform = _transform(backbone, resolution, resize=resize)

    def features_at(split: str):
        whole = SliceDataset(index, split, transform, seed=ctx.seed,
                             augment=ClassificationAugment(kind=augment_kind, resolution=resolution))

        def at(epoch: int, items: list[int] | None = None) -> dict[str, np.ndarray]:
            """That epoch's draw of the split, or of the items at ``items`` only (a few-shot sample:
            the study augmented only the sample, FewShotDatasetWrapper around its train set)."""
            dataset = whole if items is None else whole.subset(items)
            dataset.set_epoch(epoch)
            out = extract_splits(backbone, {split: dataset}, device=ctx.device,
                                 batch_size=ctx.profile.batch_size, num_workers=ctx.workers,
                                 progress=ctx.progress, desc=f"{cell.model}/{cell.dataset} {split} "
                                 f"augmented epoch {epoch}", forward=forward)[split]
            return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
        return at
    return {split: features_at(split) for split in ("train", "val")}


HEAD_LR_PROBES = ("cached", "as_run")            # switch finetune_head_lr_from_cached_probe


def head_lr_probe_rule(hparams: Mapping[str, Any]) -> str:
    """``hparams["head_lr_probe"]``: "cached" (ours, the default) or "as_run" (the study's)."""
    return choice(hparams, "head_lr_probe", HEAD_LR_PROBES, "cached", "head-rate probe")


def linear_probe_lr(setup: CellSetup, backbone) -> float:
    """The learning rate the linear probe of this (model, dataset) selects on validation.

    Switch finetune_head_lr_from_cached_probe: ours ("cached") trains the probe on the cached
    features, so after the linear cell this costs no backbone forward; the study's ("as_run") runs
    the probe as the linear cell runs it, on augmented images every epoch where its hyperparameters
    say ``features="augmented"`` (one backbone pass per epoch).
    """
    frozen_inputs = cached_features(setup, backbone)
    hparams = dict(setup.ctx.profile.hparams_for("linear"))
    if head_lr_probe_rule(setup.hparams) == "cached" or hparams.get("features") != "augmented":
        hparams["features"] = "cached"
    else:                                  # as the linear cell runs it (frozen above)
        frozen_inputs = with_augmented(setup, backbone, frozen_inputs, hparams)
    with cis_from_predictions():           # only its chosen rate is used: no CI wanted
        probe = get_protocol("linear").resolve()(frozen_inputs, hparams, setup.ctx.seed)
    return float(probe.chosen["lr"])


def examples_path(ctx: RunContext, cell: Cell) -> str | None:
    """Where a segmentation cell saves its qualitative predictions (None: no run directory)."""
    if ctx.run_dir is None:
        return None
    from radbench_core.core.results import cell_filename
    return str(Path(ctx.run_dir) / "examples" / cell_filename(cell.id).replace(".json", ".npz"))
