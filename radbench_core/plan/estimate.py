"""``radbench plan``: what a profile will cost before it runs — FLOPs, GPU time, memory, disk.

Why: the paper profile is hundreds of cells whose costs differ by orders of magnitude (a kNN cell
reuses cached features; a ViT-g fine-tune runs 8 learning rates x 20 epochs over NIH). A lab
manager needs the total and the few cells that dominate it; the shard balancer needs per-cell times.

Model of a cell (F: forward FLOPs of one slice, S: slices per item, N: items per split; the
study's Table 1 sizes, planner_data.DATASETS): frozen protocols pay one extraction of all splits
per (model, dataset, resolution) — charged to the first such cell, the feature cache serves the
rest — plus, for the study's augmented linear probe, a backbone pass over the training images per
epoch for the sweep and the refit. Training costs 3F per image (forward + backward), PEFT 2F
(ASSUMED: no weight gradients for the frozen matrices), segmentation F + 3F_decoder per training
slice per epoch and learning rate, plus the refit; validation is scored every epoch (F + F_decoder).
Time = FLOPs / (peak bf16 x efficiency of the path); the efficiencies are planner_data.EFFICIENCY,
or a calibration JSON written by benchmarks/gpu_training.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.plan.constants import (ACT_BYTES_PER_TOKEN_WIDTH, ASSUMED, BYTES_BF16, DATASETS,
                                        EFFICIENCY, FEATURE_BYTES, GPUS, MEASURED_EXTRACT_GIB,
                                        TRAIN_BYTES_PER_PARAM)
from radbench_core.plan.flops import backbone_flops, counted_decoder, counted_scratch, vit_shape

GIB = 2.0 ** 30
FROZEN = {"knn", "linear", "linear_subset", "fewshot"}
PEFT = {"lora", "bitfit"}


@dataclass
class CellEstimate:
    cell_id: str
    path: str                    # the efficiency key used: extract | finetune | peft | seg_decoder | scratch
    resolution: int
    forward_gflop: float         # one slice through the backbone (scratch: the model)
    total_pflop: float
    gpu_hours: float
    peak_memory_gib: float
    cache_gib: float             # feature-cache disk this cell adds (0 where another cell paid it)


@dataclass
class Plan:
    gpu: str
    estimates: list[CellEstimate]
    efficiency: dict[str, float]
    assumed: set[str] = field(default_factory=set)

    @property
    def total_hours(self) -> float:
        return sum(e.gpu_hours for e in self.estimates)


def load_calibration(path: str | Path) -> dict[str, float]:
    """Efficiencies measured by benchmarks/gpu_training.py: ``{"paths": {key: {"pct_peak": x}}}``."""
    try:
        data = json.loads(Path(path).read_text())
        paths = data["paths"]
        out = {k: float(v["pct_peak"]) / 100.0 for k, v in paths.items()
               if k in EFFICIENCY and v.get("pct_peak") is not None}      # CPU smoke runs: None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"calibration file {path}", f"not a gpu_training.py result ({exc!r})",
                          "pass the JSON written by `python benchmarks/gpu_training.py --out FILE`") from exc
    bad = {k: v for k, v in out.items() if not 0.0 < v <= 1.0}
    if bad:
        raise ConfigError(f"calibration file {path}", f"efficiencies outside (0, 100] %: {bad}",
                          "re-run the benchmark on the GPU")
    return out


def _items(dataset: str, hparams: dict[str, Any]) -> dict[str, float]:
    if dataset not in DATASETS:
        raise ConfigError(f"planner: dataset {dataset!r}", "no size known (the planner knows the "
                          f"study's datasets only: {', '.join(DATASETS)})",
                          "plan those cells only (e.g. -k 'not " + dataset + "'), or add its items, slices "
                          "and split fractions to radbench_core/plan/constants.DATASETS")
    size = DATASETS[dataset]
    cap = hparams.get("max_items")
    n = {s: size["items"] * size[s] for s in ("train", "val", "test")}
    return {s: min(v, float(cap)) if cap is not None else v for s, v in n.items()}


def _per_key(value: Any, key: str) -> Any:
    return value.get(key, value.get("*")) if isinstance(value, dict) else value


def _params(model_id: str) -> float:
    from radbench_core.models.specs import get_model
    return get_model(model_id).study_params_m * 1e6


def _inference_gib(model_id: str, resolution: int, batch: int) -> float:
    """bf16 weights + activations of a batch; the constant is fitted to the measured ViT-L 224 px."""
    from radbench_core.models.specs import get_model
    weights = _params(model_id) * BYTES_BF16
    if get_model(model_id).arch == "cnn":
        return (weights + batch * 3 * resolution * resolution * 4 * 8) / GIB
    _, width, _, _, patch = vit_shape(model_id)
    per = ((224 // 14) ** 2 + 1) * 1024 * BYTES_BF16 * 128
    k = (MEASURED_EXTRACT_GIB[224] * GIB - 304e6 * BYTES_BF16) / per
    tokens = (resolution // patch) ** 2 + 1
    return (weights + k * batch * tokens * width * BYTES_BF16) / GIB


def _training_gib(model_id: str, resolution: int, batch: int, peft: bool) -> float:
    from radbench_core.models.specs import get_model
    params = _params(model_id)
    state = params * (BYTES_BF16 if peft else TRAIN_BYTES_PER_PARAM)
    if get_model(model_id).arch == "cnn":
        return (state + batch * 3 * resolution * resolution * 4 * 40) / GIB
    depth, width, _, _, patch = vit_shape(model_id)
    tokens = (resolution // patch) ** 2 + 1
    return (state + batch * depth * tokens * width * ACT_BYTES_PER_TOKEN_WIDTH) / GIB


def estimate_cell(cell: Cell, profile, gpu: str, efficiency: dict[str, float],
                  extracted: set[tuple[str, str, int]]) -> CellEstimate:
    """One cell's estimate; ``extracted`` holds the feature groups already paid for (updated)."""
    from radbench_core.protocols import get_protocol
    from radbench_core.run.runner import cell_hparams, resolution_of
    protocol = get_protocol(cell.protocol)
    hp = cell_hparams(cell, protocol, profile)
    res = resolution_of(cell, protocol, profile)
    n = _items(cell.dataset, hp)
    slices = DATASETS[cell.dataset]["slices"]
    f = backbone_flops(cell.model, res)
    flops, cache, path, memory = 0.0, 0.0, "extract", 0.0
    if cell.protocol in FROZEN:
        group = (cell.model, cell.dataset, res)
        if group not in extracted:
            extracted.add(group)
            flops += f * slices * sum(n.values())
            width = vit_shape(cell.model)[1] if cell.model not in ("densenet201", "resnet152", "vgg19") else 4096
            cache = sum(n.values()) * 5 * width * FEATURE_BYTES / GIB
        if cell.protocol in ("linear", "linear_subset") and hp.get("features") == "augmented":
            flops += int(hp.get("epochs", 10)) * f * slices * (2 * n["train"] + n["val"])
        path = "extract_448" if res >= 448 else "extract"
        memory = _inference_gib(cell.model, res, int(profile.batch_size))
    elif protocol.task == "classification":                     # finetune, lora, bitfit
        from radbench_core.models.specs import get_model
        arch = get_model(cell.model).arch
        epochs = int(_per_key(hp["epochs"], cell.dataset))
        batch = int(_per_key(hp["batch_size"], arch))
        lrs = len(hp.get("backbone_lrs", (1,)))
        step = 2.0 if cell.protocol in PEFT else 3.0
        flops = lrs * epochs * f * slices * (step * n["train"] + n["val"]) + f * slices * n["test"]
        path = "peft" if cell.protocol in PEFT else "finetune"
        memory = _training_gib(cell.model, res, batch, cell.protocol in PEFT)
    elif protocol.inputs == "scratch":
        fm, act = counted_scratch(cell.model, res)
        lrs, sweep, refit = len(hp["lrs"]), int(hp.get("sweep_epochs", hp["epochs"])), int(hp["epochs"])
        train_items = n["train"]
        if cell.protocol == "scratch_fewshot":
            shots = hp.get("shots")
            train_items = n["train"] if shots == "all" else min(float(shots), n["train"])
            lrs *= len(hp.get("seeds", [0])) if not isinstance(hp.get("seeds"), int) else int(hp["seeds"])
        flops = fm * slices * (lrs * sweep * (3 * train_items + n["val"])
                               + (refit * 3 * (n["train"] + n["val"]) if hp.get("refit") else 0) + n["test"])
        path, batch = "scratch", int(hp["batch_size"])
        memory = (_counted_params(cell.model) * TRAIN_BYTES_PER_PARAM + batch * act * 2 * BYTES_BF16) / GIB
    else:                                                        # frozen backbone + decoder
        _, width, _, _, patch = vit_shape(cell.model)
        fd, act = counted_decoder(hp.get("decoder", "unet"), width, patch, res)
        lrs, epochs, batch = len(hp["lrs"]), int(hp["epochs"]), int(hp["batch_size"])
        train_items = n["train"]
        if cell.protocol == "seg_fewshot":
            shots = hp.get("shots")
            train_items = n["train"] if shots == "all" else min(float(shots), n["train"])
            lrs *= len(hp.get("seeds", [0])) if not isinstance(hp.get("seeds"), int) else int(hp["seeds"])
        per_epoch = (f + 3 * fd) * train_items + (f + fd) * n["val"]
        flops = slices * (lrs * epochs * per_epoch
                          + (epochs * (f + 3 * fd) * (n["train"] + n["val"]) if hp.get("refit") else 0)
                          + (f + fd) * n["test"])
        path = "seg_decoder"
        memory = _inference_gib(cell.model, res, batch) + batch * act * 2 * BYTES_BF16 / GIB
    peak = GPUS[gpu]["peak_tflops"] * 1e12
    hours = flops / (peak * efficiency[path]) / 3600.0
    return CellEstimate(cell.id, path, res, f / 1e9, flops / 1e15, hours, memory, cache)


def _counted_params(model_id: str) -> float:
    from radbench_core.models.scratch_models import parameter_counts
    return float(parameter_counts(model_id)[1])


def plan(profile, cells: Iterable[Cell], gpu: str = "H200", calibration: str | Path | None = None) -> Plan:
    """Estimates of ``cells`` (in run order: the first cell of a feature group pays its extraction)."""
    if gpu not in GPUS:
        raise ConfigError(f"--gpu {gpu}", "unknown GPU kind", f"use one of {', '.join(GPUS)}")
    efficiency = dict(EFFICIENCY)
    measured = load_calibration(calibration) if calibration else {}
    efficiency.update(measured)
    extracted: set[tuple[str, str, int]] = set()
    estimates = [estimate_cell(c, profile, gpu, efficiency, extracted) for c in cells]
    return Plan(gpu, estimates, efficiency, set(ASSUMED) - set(measured))


def format_plan(p: Plan, top: int = 10, per_cell: bool = True) -> str:
    """Per-cell lines, the total, the cells that dominate, and what is assumed."""
    lines = []
    if per_cell:
        lines.append(f"{'cell':<48} {'path':<11} {'px':>5} {'GFLOP/img':>10} {'PFLOP':>10} "
                     f"{'GPU h':>9} {'peak GiB':>9} {'cache GiB':>9}")
        for e in p.estimates:
            lines.append(f"{e.cell_id:<48} {e.path:<11} {e.resolution:>5} {e.forward_gflop:>10.1f} "
                         f"{e.total_pflop:>10.2f} {e.gpu_hours:>9.3f} {e.peak_memory_gib:>9.1f} "
                         f"{e.cache_gib:>9.2f}")
    total = p.total_hours
    memory = GPUS[p.gpu]["memory_gib"]
    too_big = [e.cell_id for e in p.estimates if e.peak_memory_gib > memory]
    lines.append(f"TOTAL {len(p.estimates)} cells on one {p.gpu}: {sum(e.total_pflop for e in p.estimates):,.1f} "
                 f"PFLOP, {total:,.1f} GPU hours ({total / 24:,.1f} days), peak memory "
                 f"{max((e.peak_memory_gib for e in p.estimates), default=0):.1f} GiB of {memory:.0f}, "
                 f"feature cache {sum(e.cache_gib for e in p.estimates):.1f} GiB")
    lines.append(f"dominant cells (top {min(top, len(p.estimates))} of GPU time):")
    for e in sorted(p.estimates, key=lambda e: -e.gpu_hours)[:top]:
        share = 100.0 * e.gpu_hours / total if total else 0.0
        lines.append(f"  {e.cell_id:<48} {e.gpu_hours:>9.2f} h  {share:5.1f} %")
    if too_big:
        lines.append(f"over {p.gpu} memory at the profile's batch sizes: {', '.join(too_big)}")
    eff = ", ".join(f"{k} {100 * v:.1f} %{' (ASSUMED)' if k in p.assumed else ' (measured)'}"
                    for k, v in p.efficiency.items())
    lines.append(f"efficiency of peak bf16: {eff}")
    lines.append("dataset sizes: the study's Table 1; split fractions and slices per volume are estimates "
                 "(radbench_core/plan/constants.py)")
    return "\n".join(lines)
