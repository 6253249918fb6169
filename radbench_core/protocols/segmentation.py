"""Segmentation protocols: decoders on a frozen backbone, scratch baselines, few-shot on Montgomery.

Each is a plain ``(inputs, hparams, seed) -> ProtocolResult`` function (issue 6, study section 3.3 and
appendix B.4). Training/selection/scoring live in :mod:`seg_training`; this module wires the backbone
or the scratch model into it and turns per-volume scores into metrics with bootstrap CIs.

Metrics (our headline): per foreground class, Dice, Jaccard and (Dice + Jaccard) / 2 of each test
VOLUME at its native size, averaged over test items (classes absent from both prediction and truth
are excluded), then over classes; 95% percentile bootstrap over test items (seeded). Beside them the
study's own metric (``*_study``): torchmetrics-style Dice / Jaccard pooled over all test slices at the
training resolution (see :func:`radbench_core.eval.metrics.study_jaccard` for its quirk). Beside the
Dice of each organ its HD95 (:mod:`radbench_core.eval.surface_distance`, MONAI's convention) per test
volume at the volume's voxel spacing (``index.voxel_spacing``: mm, else pixels), averaged over the
volumes where prediction and truth both hold the organ: ``extra["per_class"][organ]["hd95"]`` and
``extra["hd95"]`` (unit, class mean, volume counts). Not a gated metric: it is clinical detail.
"""

from __future__ import annotations

import dataclasses
import io
import resource
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from radbench_core.core import progress
from radbench_core.core.atomic import atomic_write_bytes
from radbench_core.core.errors import ConfigError
from radbench_core.eval.metrics import bootstrap_ci, metric, study_dice, study_jaccard
from radbench_core.protocols.base import ProtocolResult, SegInputs, own_resamples
from radbench_core.protocols.decoders import DECODER_KINDS, build_decoder
from radbench_core.eval.predictions import ArrayPayload
from radbench_core.eval.surface_distance import CONVENTION, per_item_hd95, summarise_hd95
from radbench_core.protocols.seg_training import (SegTask, bn_mode_of, mean_dice, per_item_scores,
                                                  predict_items, refit, report_epoch_rule, rerun_selected,
                                                  train_and_select, watch_test_split)

METRIC_NAMES = ("dice", "jaccard", "dice_jaccard", "dice_study", "jaccard_study", "dice_jaccard_study")


def run_seg_decoder(inputs: SegInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Train a linear or U-Net decoder on the frozen backbone's patch maps; score the test volumes."""
    _check_hparams(hparams)
    return _run(inputs, hparams, seed, _frozen_task(inputs, hparams), inputs.datasets)


def run_seg_scratch(inputs: SegInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """Train a U-Net / TransUNet end to end on the same data, splits and budget (Table 6 baseline)."""
    _check_hparams(hparams)
    if inputs.scratch_model is None:
        raise ConfigError("SegInputs.scratch_model", "a scratch cell needs a model id",
                          "pass scratch_model='unet' or 'transunet'")
    return _run(inputs, hparams, seed, _scratch_task(inputs, hparams), inputs.datasets)


def _scratch_task(inputs: SegInputs, hparams: dict[str, Any]) -> SegTask:
    """The whole network trained from scratch: no encoder, the model maps images to logits."""
    from radbench_core.models.scratch_models import build_scratch_model

    def make_head() -> nn.Module:
        return build_scratch_model(inputs.scratch_model, inputs.num_classes,
                                   demo=bool(hparams.get("demo", False)), resolution=inputs.resolution)

    return SegTask(make_head=make_head, encode=lambda x: [x],
                   apply=lambda head, enc, size: head(enc[0]), cacheable=False)


def run_seg_fewshot(inputs: SegInputs, hparams: dict[str, Any], seed: int) -> ProtocolResult:
    """The decoder (or, for a scratch model, the whole network) trained on n training images,
    repeated over seeds: mean, spread and per seed.

    ``hparams["shots"]`` is n (or "all"); ``hparams["seeds"]`` a list of seeds, or a count k meaning
    seed..seed+k-1. Each seed draws its n images and initialises the decoder. Metric values are the
    means over seeds, their CIs the mean per-seed bootstrap bounds; ``extra["spread"]`` holds the
    standard deviation over seeds, ``extra["per_seed"]`` every seed's headline (Dice + Jaccard) / 2 and
    ``extra["per_seed_detail"]`` every seed's metrics and chosen configuration.
    """
    _check_hparams(hparams)
    shots = hparams.get("shots")
    train = inputs.datasets["train"]
    n_items = int(getattr(train, "n_items", len(np.unique(train.item_of_slice))))
    if shots == "all":
        n = n_items
    elif isinstance(shots, int) and not isinstance(shots, bool) and 1 <= shots <= n_items:
        n = shots
    else:
        raise ConfigError("hparams['shots']", f"got {shots!r} with {n_items} training images",
                          f"use an int in 1..{n_items} or 'all'")
    seeds = fewshot_seeds(hparams, seed)
    systematic = _fewshot_sample(hparams) == "systematic"
    start = time.perf_counter()
    _reset_peak(inputs.device)
    runs: list[ProtocolResult] = []
    for k, s in enumerate(seeds):
        chosen = (study_fewshot_items(n_items, n) if systematic else
                  np.sort(np.random.default_rng(s).choice(n_items, size=n, replace=False)))
        datasets = dict(inputs.datasets, train=ItemSubset(train, chosen))
        # the study retrains the chosen rate on the same n images (no val merge): that is the
        # selected run itself, so no refit here
        hp = {**hparams, "refit": False}
        task = _scratch_task(inputs, hparams) if inputs.scratch_model else _frozen_task(inputs, hparams)
        seed_inputs = inputs if k == 0 else dataclasses.replace(inputs, examples_path=None)  # examples once
        res = _run(seed_inputs, hp, s, task, datasets)
        res.chosen["train_items"] = chosen.tolist()
        runs.append(res)
    return _aggregate_seeds(runs, seeds, n, start, inputs.device)


def fewshot_seeds(hparams: dict[str, Any], seed: int = 0) -> list[int]:
    """The seeds a few-shot segmentation cell runs (one training sweep each): ``hparams["seeds"]``
    (a list, or a count k meaning seed..seed+k-1), cut to the first under the study's systematic
    sample (switch seg_fewshot_random_seeds), which is one run. The planner counts these."""
    seeds = hparams.get("seeds", 3)
    seeds = [seed + k for k in range(int(seeds))] if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("hparams['seeds']", "no seeds", "give a list of seeds or a count >= 1")
    if _fewshot_sample(hparams) == "systematic":     # the study: one evenly spaced sample, one run
        seeds = seeds[:1]
    return seeds


def _fewshot_sample(hparams: dict[str, Any]) -> str:
    value = str(hparams.get("fewshot_sample", "random"))
    if value not in ("random", "systematic"):
        raise ConfigError("hparams['fewshot_sample']", f"unknown sample {value!r}",
                          "use 'random' (one draw per seed) or 'systematic' (the study's)")
    return value


def study_fewshot_items(n_items: int, shots: int) -> np.ndarray:
    """The study's FewShotDatasetWrapper (repo dinov2/data/wrappers.py:17): evenly spaced positions
    ``np.arange(0, n, n / shots).round()`` of the training images."""
    return np.arange(0, n_items, n_items / shots).round().astype(int)


class ItemSubset(Dataset):
    """The slices of some items of a SliceDataset (few-shot), forwarding epoch and augmentation."""

    def __init__(self, base: Any, items: np.ndarray):
        self.base = base
        self.indices = np.flatnonzero(np.isin(np.asarray(base.item_of_slice), items))
        self.item_of_slice = np.asarray(base.item_of_slice)[self.indices]
        self.n_items = len(items)
        self.augment = getattr(base, "augment", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.base[int(self.indices[i])]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)


def _frozen_task(inputs: SegInputs, hparams: dict[str, Any]) -> SegTask:
    backbone = inputs.backbone
    if backbone is None:
        raise ConfigError("SegInputs.backbone", "a decoder cell needs a frozen backbone",
                          "pass the loaded Backbone (scratch cells use run_seg_scratch)")
    if hasattr(backbone, "frozen"):
        backbone.frozen()
    backbone.eval().requires_grad_(False).to(inputs.device)
    kind = hparams.get("decoder", "unet")
    if kind not in DECODER_KINDS:
        raise ConfigError("hparams['decoder']", f"unknown decoder {kind!r}",
                          f"use one of: {', '.join(DECODER_KINDS)}")

    # switch vit_tokens_after_final_norm: with the study's raw hidden states, its linear decoder read
    # them through a fresh parameter-free LayerNorm (the U-Net decoder read them raw)
    study_norm = kind == "linear" and getattr(backbone, "token_norm", "final_norm") == "hidden_states"

    @torch.no_grad()
    def encode(x: torch.Tensor) -> list[torch.Tensor]:
        maps = [m.float() for m in backbone.patch_maps(x)]
        if not study_norm:
            return maps
        from radbench_core.models.features import study_linear_decoder_input
        return study_linear_decoder_input(maps)

    return SegTask(make_head=lambda: build_decoder(kind, backbone.map_channels, backbone.map_strides,
                                                   inputs.num_classes),
                   encode=encode, apply=lambda head, enc, size: head(enc, size), cacheable=True)


def _check_hparams(hparams: dict[str, Any]) -> None:
    lrs = hparams.get("lrs")
    if not isinstance(lrs, (list, tuple)) or not lrs or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in lrs):
        raise ConfigError("hparams['lrs']", f"expected a non-empty list of positive rates, got {lrs!r}",
                          "set e.g. lrs=[1e-2, 5e-2, 1e-3, 5e-3] in the profile")
    for key in ("epochs", "batch_size"):
        v = hparams.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"hparams[{key!r}]", f"expected a positive int, got {v!r}",
                              f"set {key} to an int >= 1 in the profile")


def _run(inputs: SegInputs, hparams: dict[str, Any], seed: int, task: SegTask,
         datasets: dict[str, Any]) -> ProtocolResult:
    start = time.perf_counter()
    _reset_peak(inputs.device)
    names = _class_names(inputs)
    compact = np.uint8 if inputs.num_classes <= 256 else np.int32     # full CT volumes add up
    targets = {s: [np.asarray(inputs.index.load_mask(it)).astype(compact, copy=False)
                   for it in inputs.index.split_items(s)] for s in ("val", "test")}
    sel = train_and_select(task, datasets, targets["val"], hparams, seed, num_classes=inputs.num_classes,
                           resolution=inputs.resolution, device=inputs.device,
                           num_workers=inputs.num_workers)
    history = list(sel.history)
    report_rule = report_epoch_rule(hparams)
    refitting = bool(hparams.get("refit", False))
    if refitting or report_rule == "best_on_test":
        # the refit (or, without one, the selected run itself again), watched on test every
        # test_every epochs when the study's report_epoch rule is asked for
        watched_epochs = hparams["epochs"] if refitting else (hparams.get("sweep_epochs") or hparams["epochs"])
        tester = (watch_test_split(task, datasets["test"], targets["test"], {**hparams, "epochs": watched_epochs},
                                   num_classes=inputs.num_classes, resolution=inputs.resolution,
                                   device=inputs.device, num_workers=inputs.num_workers)
                  if report_rule == "best_on_test" else None)
        head, rows = (refit if refitting else rerun_selected)(
            task, datasets, sel, hparams, seed, resolution=inputs.resolution, device=inputs.device,
            num_workers=inputs.num_workers, after_epoch=tester.watching(sel.lr) if tester else None)
        history += rows
        if refitting:
            sel.head = head
        if tester is not None and tester.best is not None:      # the study's reported checkpoint
            sel.head, sel.epoch = tester.best.head.to(inputs.device), tester.best.epoch
    sizes = [tuple(t.shape[-2:]) for t in targets["test"]]
    cms = np.zeros((len(sizes), inputs.num_classes, inputs.num_classes), dtype=np.int64)
    progress.update("test")
    preds = predict_items(task, sel.head, datasets["test"], sizes, inputs.resolution, inputs.device,
                          int(hparams.get("eval_batch_size", hparams["batch_size"])), inputs.num_workers,
                          confmats=cms, bn_mode=bn_mode_of(hparams))
    if len(preds) != len(targets["test"]):
        raise ConfigError("SegInputs.datasets['test']", f"{len(preds)} predicted items for "
                          f"{len(targets['test'])} test items", "build the test SliceDataset from the "
                          "same index and split")
    dice, jac = per_item_scores(preds, targets["test"], inputs.num_classes)
    resamples = own_resamples(hparams, "bootstrap_resamples")
    metrics, per_class = summarise(dice, jac, names, resamples, seed)
    metrics.update(study_metrics(cms, resamples, seed))
    hd95 = surface_summary(preds, targets["test"], inputs, names)
    for organ, value in hd95["per_class"].items():
        per_class[organ]["hd95"] = value
    trainable = sum(p.numel() for p in sel.head.parameters())
    total = trainable + (sum(p.numel() for p in inputs.backbone.parameters())
                         if task.cacheable and inputs.backbone is not None else 0)
    extra: dict[str, Any] = {"per_class": per_class, "hd95": hd95, "history": history, "val_score": sel.val_score,
                             "n_test_items": len(preds),
                             # per-item values: the runner writes them to <run>/predictions/
                             "test_predictions": ArrayPayload(dice=dice[None], jaccard=jac[None],
                                                               confmats=cms[None])}
    path, n_examples = inputs.examples_path, int(hparams.get("n_examples", 4))
    if path and n_examples > 0:                  # n_examples=0: no qualitative examples wanted
        extra["examples"] = save_examples(path, n_examples, task, sel.head,
                                          datasets["test"], targets["test"], inputs, _is_vit(inputs, task))
    extra["wall_time_s"] = time.perf_counter() - start
    extra["peak_memory_mb"] = _peak_memory_mb(inputs.device)
    chosen = {"lr": sel.lr, "epoch": sel.epoch, "optimizer": hparams.get("optimizer", "sgd"),
              "select_metric": hparams.get("select_metric", "dice_study"),
              "refit": bool(hparams.get("refit", False)), "report_epoch": report_rule}
    if task.cacheable:
        chosen["decoder"] = hparams.get("decoder", "unet")
    return ProtocolResult(metrics=metrics, chosen=chosen, params_trainable=trainable,
                          params_total=total, extra=extra)


def summarise(dice: np.ndarray, jac: np.ndarray, class_names: list[str], resamples: int,
              seed: int) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Class-mean Dice / Jaccard / (Dice+Jaccard)/2 with item-bootstrap CIs, and per-class values."""
    arrays = {"dice": dice, "jaccard": jac, "dice_jaccard": (dice + jac) / 2.0}
    metrics = {}
    for name, arr in arrays.items():
        ci = (bootstrap_ci(lambda idx, a=arr: mean_dice(a[idx]), len(arr), resamples=resamples,
                           seed=seed) if resamples > 0 else None)
        metrics[name] = metric(name, mean_dice(arr), ci)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = {c: {name: float(np.nanmean(arr[:, k])) for name, arr in arrays.items()}
                     for k, c in enumerate(class_names)}
    return metrics, per_class


def surface_summary(preds: list[np.ndarray], targets: list[np.ndarray], inputs: SegInputs,
                    names: list[str]) -> dict[str, Any]:
    """HD95 per test volume at its voxel spacing, summarised per organ (the mean over volumes where
    both hold it); in mm when the index knows every test volume's spacing, else in pixels."""
    spacing_of = getattr(inputs.index, "voxel_spacing", None)
    spacings = ([spacing_of(it) for it in inputs.index.split_items("test")] if spacing_of else [None])
    if len(spacings) != len(preds) or any(s is None for s in spacings):
        spacings = [None] * len(preds)
    out = summarise_hd95(per_item_hd95(preds, targets, inputs.num_classes, spacings), names)
    return {"unit": "px" if spacings[0] is None else "mm", **out, "convention": CONVENTION}


def study_metrics(confmats: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """The study's metric beside ours: Dice / Jaccard pooled over all test slices at the training
    resolution (torchmetrics macro, ignore_index=0), with a bootstrap over test items."""
    def values(idx: np.ndarray) -> tuple[float, float]:
        cm = confmats[idx].sum(axis=0)
        return study_dice(cm), study_jaccard(cm)

    everything = np.arange(len(confmats))
    out = {}
    for k, name in enumerate(("dice_study", "jaccard_study", "dice_jaccard_study")):
        def fn(idx: np.ndarray, k: int = k) -> float:
            d, j = values(idx)
            return (d, j, (d + j) / 2.0)[k]
        ci = bootstrap_ci(fn, len(confmats), resamples=resamples, seed=seed) if resamples > 0 else None
        out[name] = metric(name, fn(everything), ci)
    return out


def _aggregate_seeds(runs: list[ProtocolResult], seeds: list[int], shots: int, start: float,
                     device: str) -> ProtocolResult:
    metrics = {}
    spread = {}
    for name in METRIC_NAMES:
        vals = np.array([r.metrics[name].value for r in runs])
        lows = [r.metrics[name].ci_low for r in runs]
        highs = [r.metrics[name].ci_high for r in runs]
        ci = None if any(v is None for v in lows + highs) else (float(np.mean(lows)), float(np.mean(highs)))
        metrics[name] = metric(name, float(np.mean(vals)), ci)
        spread[name] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    classes = runs[0].extra["per_class"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = {c: {n: float(np.nanmean([r.extra["per_class"][c].get(n, np.nan) for r in runs]))
                         for n in (*METRIC_NAMES[:3], "hd95")} for c in classes}
    per_seed_detail = [{"seed": s, "metrics": {n: r.metrics[n].value for n in METRIC_NAMES},
                        "chosen": r.chosen} for s, r in zip(seeds, runs)]
    # per_seed: the headline value of each seed, as every few-shot protocol records it (Figure 5)
    per_seed = [d["metrics"]["dice_jaccard"] for d in per_seed_detail]
    extra = {"per_class": per_class, "hd95": _seeds_hd95(runs, per_class),
             "per_seed": per_seed, "per_seed_detail": per_seed_detail,
             "spread": spread,
             "wall_time_s": time.perf_counter() - start, "peak_memory_mb": _peak_memory_mb(device)}
    if "examples" in runs[0].extra:
        extra["examples"] = runs[0].extra["examples"]
    extra["test_predictions"] = ArrayPayload(
        {k: np.concatenate([r.extra["test_predictions"][k] for r in runs]) for k in ("dice", "jaccard", "confmats")})
    return ProtocolResult(metrics=metrics, chosen={"shots": shots, "seeds": seeds,
                                                   "decoder": runs[0].chosen.get("decoder")},
                          params_trainable=runs[0].params_trainable, params_total=runs[0].params_total,
                          extra=extra)


def _seeds_hd95(runs: list[ProtocolResult], per_class: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A few-shot cell's HD95: per organ the mean over seeds, volume counts summed over seeds."""
    first = runs[0].extra["hd95"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = float(np.nanmean([v["hd95"] for v in per_class.values()]))
    return {"unit": first["unit"], "per_class": {c: v["hd95"] for c, v in per_class.items()},
            **{k: {c: sum(r.extra["hd95"][k][c] for r in runs) for c in per_class}
               for k in ("volumes_scored", "volumes_one_empty")},
            "mean": mean, "convention": first["convention"], "seeds": len(runs)}


@torch.no_grad()
def save_examples(path: str, n: int, task: SegTask, head: nn.Module, dataset: Any,
                  targets: list[np.ndarray], inputs: SegInputs, with_features: bool) -> str:
    """A few test slices (foreground first) with truth and prediction for the qualitative figure."""
    items = np.asarray(dataset.item_of_slice)
    slice_no = np.arange(len(items)) - np.searchsorted(items, items, side="left")
    has_fg = np.array([bool(targets[i][s].any()) for i, s in zip(items, slice_no)])
    pool = np.flatnonzero(has_fg) if has_fg.any() else np.arange(len(items))
    picks = np.unique(np.linspace(0, len(pool) - 1, min(n, len(pool))).round().astype(int))
    batch = default_collate([dataset[int(pool[p])] for p in picks])
    head.eval()
    enc = task.encode(batch["image"].to(inputs.device))
    logits = task.apply(head, enc, (inputs.resolution, inputs.resolution))
    img = batch["image"][:, 0].float()
    lo = img.amin(dim=(1, 2), keepdim=True)
    hi = img.amax(dim=(1, 2), keepdim=True)
    arrays = {"image": ((img - lo) / (hi - lo).clamp_min(1e-8)).numpy().astype(np.float32),
              "truth": batch["mask"].numpy().astype(np.int64),
              "pred": logits.argmax(dim=1).cpu().numpy().astype(np.int64)}
    if with_features:
        arrays["features"] = enc[-1].permute(0, 2, 3, 1).cpu().numpy().astype(np.float16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return str(atomic_write_bytes(path, buf.getvalue()))


def _is_vit(inputs: SegInputs, task: SegTask) -> bool:
    spec = getattr(inputs.backbone, "spec", None)
    return task.cacheable and getattr(spec, "arch", None) == "vit"


def _class_names(inputs: SegInputs) -> list[str]:
    names = list(getattr(getattr(inputs.index, "spec", None), "class_names", ()) or ())
    if not names:
        names = [f"class{c}" for c in range(1, inputs.num_classes)]
    if len(names) != inputs.num_classes - 1:
        raise ConfigError("SegInputs.num_classes", f"{inputs.num_classes} classes (with background) but "
                          f"the dataset names {len(names)} foreground classes",
                          "set num_classes = len(spec.class_names) + 1")
    return names


def _reset_peak(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def _peak_memory_mb(device: str) -> float:
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
