"""Run one cell: resolve data and backbone, feed the protocol, time it, build the CellResult.

No pytest here: the plugin calls ``run_cell`` and records what it returns, and so could any script.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import hashlib
import json
import os
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radbench_core.core import progress
from radbench_core.core.cells import Cell
from radbench_core.data.datasets import DatasetIndex, LoadOptions, get_dataset, open_dataset
from radbench_core.data.source import dataset_root, phantom_fingerprint
from radbench_core.run.extraction import extract_splits
from radbench_core.run.feature_cache import FeatureCache, index_files, sources_fingerprint
from radbench_core.core.finite import check_headline, check_state_finite
from radbench_core.config.fidelity import deviations_in_effect
from radbench_core.config.profiles import Profile
from radbench_core.protocols import ProtocolSpec, get_protocol
from radbench_core.protocols.base import FrozenInputs, LiveInputs, ProtocolResult, SegInputs
from radbench_core.core.results import DEMO_WEIGHTS, CellResult


@dataclass
class RunContext:
    profile: Profile
    cache_dir: Path
    data_dir: Path | None = None
    weights_dir: Path | None = None
    device: str = "cpu"
    seed: int = 0
    run_dir: Path | None = None
    num_workers: int | None = None          # None: the profile's
    progress: bool = True
    compile: bool = False                   # torch.compile the frozen feature forward
    load_options: dict[str, LoadOptions] = field(default_factory=dict)

    @property
    def workers(self) -> int:
        return self.profile.num_workers if self.num_workers is None else self.num_workers


class BackbonePool:
    """Keeps the backbone of the current model; releases it when a worker moves to another model."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._backbone: torch.nn.Module | None = None
        self._compiled = None
        self.loads = 0

    def get(self, model_id: str, *, demo: bool, resolution: int, weights_dir: Path | None,
            device: str) -> torch.nn.Module:
        from radbench_core.models.features import load_backbone
        key = (model_id, demo, resolution, str(weights_dir), device)
        if key != self._key:
            self.release()
            self._backbone = load_backbone(model_id, demo=demo, resolution=resolution,
                                           weights_dir=weights_dir, device=device)
            check_state_finite(self._backbone.state_dict().items(), self._backbone.weights)
            self._key = key
            self.loads += 1
        assert self._backbone is not None
        return self._backbone

    def pooled_forward(self, compile: bool):
        """The frozen feature forward, ``torch.compile``d once per backbone when asked."""
        assert self._backbone is not None
        if not compile:
            return self._backbone.pooled
        if self._compiled is None:
            self._compiled = torch.compile(self._backbone.pooled)
        return self._compiled

    def release(self) -> None:
        self._backbone, self._key, self._compiled = None, None, None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


_INDEXES: dict[tuple, DatasetIndex] = {}


def load_options_of(dataset_id: str, ctx: RunContext, hparams: dict[str, Any] | None = None
                    ) -> LoadOptions:
    """The user's load options of a dataset, with a protocol's per-split cap (Table 8's subset)."""
    options = ctx.load_options.get(dataset_id, LoadOptions())
    cap = (hparams or {}).get("max_items")
    return dataclasses.replace(options, max_items=int(cap)) if cap is not None else options


def load_index(dataset_id: str, ctx: RunContext, options: LoadOptions | None = None
               ) -> tuple[DatasetIndex, str]:
    spec = get_dataset(dataset_id)
    root, provenance = dataset_root(spec, demo=ctx.profile.uses_phantoms, data_dir=ctx.data_dir,
                                    cache_dir=ctx.cache_dir, phantom_size=ctx.profile.phantom_size)
    options = options if options is not None else load_options_of(dataset_id, ctx)
    key = (dataset_id, str(root), options)
    if key not in _INDEXES:
        if len(_INDEXES) > 8:
            _INDEXES.clear()
        _INDEXES[key] = open_dataset(spec, root, options)
    return _INDEXES[key], provenance


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolution_of(cell: Cell, protocol: ProtocolSpec, profile: Profile) -> int:
    if protocol.variant == "resolution" and cell.variant:
        return fit_to_patches(cell.model, int(cell.variant))
    if protocol.task == "segmentation":
        seg_default = profile.hparams_for(protocol.id).get("resolution")
        return int(seg_default or profile.cls_resolution)
    return profile.cls_resolution


def fit_to_patches(model_id: str, resolution: int) -> int:
    """A ViT's input must be whole patches: 1024 px (Table 8) is 1022 px (73 patches) at patch 14.

    The official DINOv2 patch embedding asserts divisibility too, so the study cannot have fed it
    1024 px exactly; the fidelity registry declares this (``table8_patch14_at_1022px``).
    """
    from radbench_core.models.specs import get_model
    spec = get_model(model_id)
    if spec.arch in ("vit", "sam") and resolution % spec.patch_size:
        return resolution // spec.patch_size * spec.patch_size
    return resolution


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


def cell_hparams(cell: Cell, protocol: ProtocolSpec, profile: Profile) -> dict[str, Any]:
    hparams = profile.hparams_for(protocol.id)
    hparams.update(dict(protocol.fixed))
    if protocol.variant == "shots" and cell.variant:
        hparams["shots"] = cell.variant if cell.variant == "all" else int(cell.variant)
    hparams["demo"] = profile.demo
    return hparams


def config_hash(cell: Cell, hparams: dict[str, Any], resolution: int, profile: Profile,
                options: LoadOptions) -> str:
    """What must match for two records of a cell to be comparable."""
    parts = {"cell": cell.id, "hparams": hparams,
             "resolution": resolution, "demo": profile.demo, "phantom_size": profile.phantom_size,
             "phantom": phantom_fingerprint(get_dataset(cell.dataset)) if profile.uses_phantoms else None,
             "options": repr(options)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_cell(cell: Cell, ctx: RunContext, pool: BackbonePool, cache: FeatureCache) -> CellResult:
    from radbench_core.models.specs import get_model
    start = time.perf_counter()
    progress.start_cell(cell.id, "data")          # the live line (fixtures/progress.py)
    get_model(cell.model)                       # an unknown id fails here, naming the valid ones
    dataset, profile = get_dataset(cell.dataset), ctx.profile
    protocol, hparams, resolution, planned_hash = _plan(cell, ctx)
    if ctx.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(ctx.device))
    index, provenance = load_index(cell.dataset, ctx, load_options_of(cell.dataset, ctx, hparams))
    deviations = deviations_in_effect(cell.model, cell.dataset, cell.protocol, hparams,
                                      tuple(getattr(index, "deviations", ())))
    seed_everything(ctx.seed)
    weights = DEMO_WEIGHTS if profile.demo else "none (trained from scratch)"
    if protocol.inputs == "scratch":
        inputs = _seg_inputs(index, None, resolution, ctx, hparams)
        inputs.scratch_model = cell.model
    else:
        progress.update("backbone")
        backbone = pool.get(cell.model, demo=profile.demo, resolution=resolution,
                            weights_dir=ctx.weights_dir, device=ctx.device)
        weights = backbone.weights
        if protocol.inputs == "frozen":
            progress.update("features")
            inputs = _frozen_inputs(index, backbone, cell, resolution, ctx, cache,
                                    pool.pooled_forward(ctx.compile))
            if hparams.get("features") == "augmented":   # the study's linear probe: augmented heads
                inputs.augmented = _augmented_features(index, backbone, cell, resolution, ctx,
                                                       pool.pooled_forward(ctx.compile))
        elif protocol.inputs == "live":
            if hparams.get("head_lr") == "linear":       # the study: the best linear-probe rate
                hparams["head_lr"] = _best_linear_lr(index, backbone, cell, resolution, ctx, cache, pool)
            inputs = _live_inputs(index, copy.deepcopy(backbone), resolution, ctx)
        else:
            inputs = _seg_inputs(index, backbone, resolution, ctx, hparams)
    if protocol.task == "segmentation":
        hparams["examples_path"] = _examples_path(ctx, cell)
    progress.update("train")
    result: ProtocolResult = protocol.resolve()(inputs, hparams, ctx.seed)
    check_headline(result, protocol.task, cell.id)
    extra = dict(result.extra)
    examples = extra.get("examples")
    if examples and ctx.run_dir is not None:
        extra["examples"] = os.path.relpath(examples, ctx.run_dir)
    extra.setdefault("n_items", {s: len(index.splits[s]) for s in ("train", "val", "test")})
    if "auroc_per_class" in extra:                         # the per-class list, named (report tables)
        extra.setdefault("class_names", list(index.spec.class_names))
    payload = extra.pop("test_predictions", None)          # big arrays: a file, never the record
    if payload is not None and ctx.run_dir is not None:
        from radbench_core.eval.predictions import predictions_from_protocol, save_predictions
        extra["predictions"] = save_predictions(ctx.run_dir, cell.id, predictions_from_protocol(
            payload, index.split_items("test"), index.spec.label_kind, protocol.task))
    params_total = result.params_total
    if params_total is None and result.params_trainable is not None and protocol.inputs == "frozen":
        # a probe on a frozen backbone: the whole model is backbone + head (Table 9's percentage)
        params_total = sum(p.numel() for p in backbone.parameters()) + result.params_trainable
    return CellResult(
        cell_id=cell.id, model=cell.model, dataset=cell.dataset, protocol=cell.protocol,
        variant=cell.variant, task=dataset.task, modality=dataset.modality, profile=profile.name,
        metrics=result.metrics, hparams={**result.chosen, "resolution": resolution},
        params_trainable=result.params_trainable, params_total=params_total,
        wall_time_s=round(time.perf_counter() - start, 4), peak_memory_mb=peak_memory_mb(ctx.device),
        seed=ctx.seed, deterministic=bool(torch.are_deterministic_algorithms_enabled()),
        device=ctx.device, weights=weights, dataset_provenance=provenance,
        config_hash=planned_hash, extra=extra, deviations=deviations)


def _transform(backbone_or_none, resolution: int):
    from radbench_core.data.datasets.transforms import ModelTransform
    if backbone_or_none is None:                  # scratch models: ImageNet-style normalisation
        return ModelTransform(resolution, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return ModelTransform(resolution, tuple(backbone_or_none.mean), tuple(backbone_or_none.std))


def _frozen_inputs(index: DatasetIndex, backbone, cell: Cell, resolution: int, ctx: RunContext,
                   cache: FeatureCache, forward=None) -> FrozenInputs:
    from radbench_core.data.datasets.torch_data import SliceDataset
    transform = _transform(backbone, resolution)
    parts = {"model": cell.model, "weights": backbone.weights, "dataset": cell.dataset,
             "extractor": extractor_fingerprint(),
             "sources": _sources_of(index),
             "root": str(index.root), "resolution": resolution, "mean": list(backbone.mean),
             "std": list(backbone.std), "demo_arch": repr(getattr(backbone.spec, "demo_kwargs", None))
             if ctx.profile.demo else None,
             "items": hashlib.sha256(json.dumps({s: [index.items[i].key for i in idx]
                                                 for s, idx in sorted(index.splits.items())}
                                                ).encode()).hexdigest()}

    def compute() -> dict[str, dict[str, np.ndarray]]:
        datasets = {split: SliceDataset(index, split, transform) for split in ("train", "val", "test")}
        return extract_splits(backbone, datasets, device=ctx.device, batch_size=ctx.profile.batch_size,
                              num_workers=ctx.workers, progress=ctx.progress,
                              desc=f"{cell.model}/{cell.dataset}", forward=forward)

    features = cache.get_or_compute(parts, compute)
    return FrozenInputs(
        features={s: {k: np.asarray(v, dtype=np.float32) for k, v in kinds.items()}
                  for s, kinds in features.items()},
        labels={s: index.labels(s) for s in ("train", "val", "test")},
        patients={s: index.patients(s) for s in ("train", "val", "test")},
        label_kind=index.spec.label_kind, num_classes=index.spec.num_classes, device=ctx.device,
        dataset=cell.dataset)


def _sources_of(index: DatasetIndex) -> str:
    """The size+mtime fingerprint of the index's files, taken once per index (one stat per file;
    NIH has 112k): an index lives for the session in ``_INDEXES`` like its items and splits."""
    fingerprint = getattr(index, "_sources_fingerprint", None)
    if fingerprint is None:
        fingerprint = sources_fingerprint(index.root, index_files(index))
        index._sources_fingerprint = fingerprint
    return fingerprint


def _augmented_features(index: DatasetIndex, backbone, cell: Cell, resolution: int, ctx: RunContext,
                        forward=None) -> dict[str, Any]:
    """split -> (epoch -> item features of that split under that epoch's augmentation draw).

    The study trains linear heads on randomly scaled and flipped images, so these cannot come from
    the cache: every call is one frozen backbone pass over the split (all heads share it).
    """
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ClassificationAugment
    transform = _transform(backbone, resolution)

    def features_at(split: str):
        dataset = SliceDataset(index, split, transform, seed=ctx.seed, augment=ClassificationAugment())

        def at(epoch: int) -> dict[str, np.ndarray]:
            dataset.set_epoch(epoch)
            out = extract_splits(backbone, {split: dataset}, device=ctx.device,
                                 batch_size=ctx.profile.batch_size, num_workers=ctx.workers,
                                 progress=ctx.progress, desc=f"{cell.model}/{cell.dataset} {split} "
                                 f"augmented epoch {epoch}", forward=forward)[split]
            return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
        return at
    return {split: features_at(split) for split in ("train", "val")}


def _best_linear_lr(index: DatasetIndex, backbone, cell: Cell, resolution: int, ctx: RunContext,
                    cache: FeatureCache, pool: BackbonePool) -> float:
    """The learning rate the linear probe of this (model, dataset) selects on validation.

    Features come from the shared cache, so after the linear cell this costs no backbone forward.
    """
    frozen = _frozen_inputs(index, backbone, cell, resolution, ctx, cache, pool.pooled_forward(ctx.compile))
    # cached features even where the linear cell trains on augmented ones (declared deviation
    # finetune_head_lr_from_cached_probe): an augmented probe per fine-tune cell would repeat the
    # linear cell's backbone passes
    hparams = {**ctx.profile.hparams_for("linear"), "features": "cached"}
    probe = get_protocol("linear").resolve()(frozen, hparams, ctx.seed)
    return float(probe.chosen["lr"])


def _live_inputs(index: DatasetIndex, backbone, resolution: int, ctx: RunContext) -> LiveInputs:
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import ClassificationAugment
    transform = _transform(backbone, resolution)
    datasets = {s: SliceDataset(index, s, transform, seed=ctx.seed,
                                augment=ClassificationAugment() if s == "train" else None)
                for s in ("train", "val", "test")}
    return LiveInputs(backbone=backbone, datasets=datasets,
                      labels={s: index.labels(s) for s in ("train", "val", "test")},
                      label_kind=index.spec.label_kind, num_classes=index.spec.num_classes,
                      device=ctx.device, num_workers=ctx.workers, dataset=index.spec.id)


def _seg_inputs(index: DatasetIndex, backbone, resolution: int, ctx: RunContext,
                hparams: dict[str, Any]) -> SegInputs:
    from radbench_core.data.datasets.torch_data import SliceDataset
    from radbench_core.data.datasets.transforms import SegmentationAugment
    transform = _transform(backbone, resolution)
    augment = bool(hparams.get("augment", True))
    datasets = {s: SliceDataset(index, s, transform, with_masks=True, seed=ctx.seed,
                                augment=SegmentationAugment() if s == "train" and augment else None)
                for s in ("train", "val", "test")}
    return SegInputs(index=index, datasets=datasets, num_classes=index.spec.num_classes + 1,
                     resolution=resolution, backbone=backbone, device=ctx.device,
                     num_workers=ctx.workers)


def _examples_path(ctx: RunContext, cell: Cell) -> str | None:
    if ctx.run_dir is None:
        return None
    from radbench_core.core.results import cell_filename
    return str(Path(ctx.run_dir) / "examples" / cell_filename(cell.id).replace(".json", ".npz"))


def _plan(cell: Cell, ctx: RunContext) -> tuple[ProtocolSpec, dict[str, Any], int, str]:
    """Protocol, hyperparameters, resolution and config hash of a cell, before anything runs.

    The hash is taken from the configured hyperparameters, before the runner resolves any of them
    (``head_lr="linear"`` becomes a number), so resume and the gate see the same hash as a rerun.
    """
    protocol = get_protocol(cell.protocol)
    hparams = cell_hparams(cell, protocol, ctx.profile)
    resolution = resolution_of(cell, protocol, ctx.profile)
    options = load_options_of(cell.dataset, ctx, hparams)
    return protocol, hparams, resolution, config_hash(cell, hparams, resolution, ctx.profile, options)


def planned_config_hash(cell: Cell, ctx: RunContext) -> str:
    """The config hash ``run_cell`` will record, computed without running anything (for resume)."""
    return _plan(cell, ctx)[3]
