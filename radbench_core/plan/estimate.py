"""``radbench plan``: what a profile will cost before it runs — FLOPs, GPU time, memory, disk.

Why: the paper profile is hundreds of cells whose costs differ by orders of magnitude (a kNN cell
reuses cached features; a ViT-g fine-tune runs 8 learning rates x 20 epochs over NIH). A lab
manager needs the total and the few cells that dominate it; the shard balancer needs per-cell times.

Model of a cell (F: forward FLOPs of one slice, S: slices per item, N: items per split; the
real dataset's split sizes, ``DatasetSpec.size``, declared beside each loader): frozen protocols pay one extraction of all splits
per (model, dataset, resolution) — charged to the first such cell, the feature cache serves the
rest — plus, for the study's augmented linear probe, a backbone pass over the training images per
epoch for the sweep and the refit. Training costs 3F per image (forward + backward), PEFT 2F
(ASSUMED: no weight gradients for the frozen matrices), segmentation F + 3F_decoder per training
slice per epoch and learning rate, plus the refit; validation is scored every epoch (F + F_decoder).
Time = FLOPs / (peak bf16 x efficiency of the path); the efficiencies are plan/constants.EFFICIENCY,
or a calibration JSON written by benchmarks/gpu_training.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from radbench_core.core.cells import Cell
from radbench_core.core.errors import ConfigError
from radbench_core.plan.constants import (ACT_BYTES_PER_TOKEN_WIDTH, ACTIVATION_COPIES, ASSUMED,
                                          BYTES_BF16, CNN_FEATURE_WIDTH, CNN_GFLOPS_224, EFFICIENCY,
                                          FEATURE_BYTES, FEATURE_VECTORS_PER_ITEM, GPUS,
                                          MEASURED_EXTRACT_GIB, PEFT_STEP_PASSES, TRAIN_BYTES_PER_PARAM,
                                          TRAIN_STEP_PASSES)
from radbench_core.plan.flops import backbone_flops, counted_decoder, counted_scratch, vit_shape

GIB = 2.0 ** 30
PEFT = {"lora", "bitfit"}
SPLITS = ("train", "val", "test")


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


def _items(dataset: str, hparams: dict[str, Any]) -> tuple[dict[str, float], int]:
    """(items per split, slices per item) of the real dataset: its spec's size (the loader's splits;
    the study's split sizes where the profile's switch runs its rule), capped by ``max_items``."""
    from radbench_core.data.datasets import get_dataset
    size = get_dataset(dataset).size
    if size is None:
        raise ConfigError(f"planner: dataset {dataset!r}", "no size known (a user dataset has no published size)",
                          "plan those cells only (e.g. -k 'not " + dataset + "'), or give its DatasetSpec a size=DatasetSize(train, val, test, slices_per_item)")
    cap = hparams.get("max_items")
    n = {s: float(size.of(s)) for s in SPLITS}
    if hparams.get("split_rule") == "study":          # switch patient_split_70_10_20 at the study's value
        from radbench_core.data.datasets.study_splits import study_split_sizes
        study = study_split_sizes(dataset, size.train, size.val, size.test)
        n = {s: float(v) for s, v in study.items()} if study else n
    return {s: min(v, float(cap)) if cap is not None else v for s, v in n.items()}, size.slices_per_item


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


@dataclass(frozen=True)
class _Sized:
    """A cell with its hyperparameters, resolution, backbone cost and data size worked out."""
    cell: Cell
    hp: dict[str, Any]
    res: int
    f: float                     # forward FLOPs of one slice through the backbone
    n: dict[str, float]          # items per split
    slices: int                  # slices per item


@dataclass(frozen=True)
class _Cost:
    flops: float
    path: str
    memory_gib: float
    cache_gib: float = 0.0


def estimate_cell(cell: Cell, profile, gpu: str, efficiency: dict[str, float],
                  extracted: set[tuple[str, str, int]]) -> CellEstimate:
    """One cell's estimate; ``extracted`` holds the feature groups already paid for (updated)."""
    from radbench_core.protocols import get_protocol
    from radbench_core.run.identity import cell_hparams, resolution_of
    protocol = get_protocol(cell.protocol)
    hp = cell_hparams(cell, protocol, profile)
    res = resolution_of(cell, protocol, profile)
    n, slices = _items(cell.dataset, hp)
    sized = _Sized(cell, hp, res, backbone_flops(cell.model, res), n, slices)
    if protocol.inputs == "frozen":
        cost = _frozen_cost(sized, profile, extracted)
    else:
        cost = _COSTS[protocol.inputs](sized, protocol.variant == "shots")
    hours = cost.flops / (GPUS[gpu]["peak_tflops"] * 1e12 * efficiency[cost.path]) / 3600.0
    return CellEstimate(cell.id, cost.path, res, sized.f / 1e9, cost.flops / 1e15, hours,
                        cost.memory_gib, cost.cache_gib)


def _frozen_cost(c: _Sized, profile, extracted: set[tuple[str, str, int]]) -> _Cost:
    """One extraction of every split per feature group (the first cell of the group pays it), plus
    the augmented linear probe's backbone passes: the training images per epoch for the sweep and
    again for the refit, and the validation images."""
    flops, cache = 0.0, 0.0
    group = (c.cell.model, c.cell.dataset, c.res)
    if group not in extracted:
        extracted.add(group)
        flops += c.f * c.slices * sum(c.n.values())
        width = CNN_FEATURE_WIDTH if c.cell.model in CNN_GFLOPS_224 else vit_shape(c.cell.model)[1]
        cache = sum(c.n.values()) * FEATURE_VECTORS_PER_ITEM * width * FEATURE_BYTES / GIB
    if c.cell.protocol in ("linear", "linear_subset") and c.hp.get("features") == "augmented":
        flops += int(c.hp.get("epochs", 10)) * c.f * c.slices * (2 * c.n["train"] + c.n["val"])
    path = "extract_448" if c.res >= 448 else "extract"
    return _Cost(flops, path, _inference_gib(c.cell.model, c.res, int(profile.batch_size)), cache)


def _live_cost(c: _Sized, few_shot: bool) -> _Cost:
    """Fine-tune, LoRA, BitFit: every rate trains every epoch, then the test pass."""
    from radbench_core.models.specs import get_model
    peft = c.cell.protocol in PEFT
    epochs = int(_per_key(c.hp["epochs"], c.cell.dataset))
    batch = int(_per_key(c.hp["batch_size"], get_model(c.cell.model).arch))
    lrs = len(c.hp.get("backbone_lrs", (1,)))
    step = PEFT_STEP_PASSES if peft else TRAIN_STEP_PASSES
    flops = (lrs * epochs * c.f * c.slices * (step * c.n["train"] + c.n["val"])
             + c.f * c.slices * c.n["test"])
    return _Cost(flops, "peft" if peft else "finetune", _training_gib(c.cell.model, c.res, batch, peft))


def _scratch_cost(c: _Sized, few_shot: bool) -> _Cost:
    """A U-Net / TransUNet trained end to end: the sweep (per rate, and per seed in few-shot), the
    refit on train + val, the test pass."""
    fm, act = counted_scratch(c.cell.model, c.res)
    runs, train_items = _sweep_runs(c, few_shot)
    sweep, refit = int(c.hp.get("sweep_epochs", c.hp["epochs"])), int(c.hp["epochs"])
    flops = fm * c.slices * (runs * sweep * (TRAIN_STEP_PASSES * train_items + c.n["val"])
                             + (refit * TRAIN_STEP_PASSES * (c.n["train"] + c.n["val"])
                                if c.hp.get("refit") else 0)
                             + c.n["test"])
    batch = int(c.hp["batch_size"])
    state = _counted_params(c.cell.model) * TRAIN_BYTES_PER_PARAM
    return _Cost(flops, "scratch", (state + batch * act * ACTIVATION_COPIES * BYTES_BF16) / GIB)


def _decoder_cost(c: _Sized, few_shot: bool) -> _Cost:
    """A decoder on a frozen backbone: the backbone forward (F) and the decoder's forward and
    backward (3 F_decoder) per training slice, epoch and run; validation every epoch; the refit."""
    _, width, _, _, patch = vit_shape(c.cell.model)
    fd, act = counted_decoder(c.hp.get("decoder", "unet"), width, patch, c.res)
    runs, train_items = _sweep_runs(c, few_shot)
    epochs, batch = int(c.hp["epochs"]), int(c.hp["batch_size"])
    train_step, score = c.f + TRAIN_STEP_PASSES * fd, c.f + fd
    per_epoch = train_step * train_items + score * c.n["val"]
    flops = c.slices * (runs * epochs * per_epoch
                        + (epochs * train_step * (c.n["train"] + c.n["val"]) if c.hp.get("refit") else 0)
                        + score * c.n["test"])
    memory = (_inference_gib(c.cell.model, c.res, batch)
              + batch * act * ACTIVATION_COPIES * BYTES_BF16 / GIB)
    return _Cost(flops, "seg_decoder", memory)


def _sweep_runs(c: _Sized, few_shot: bool) -> tuple[int, float]:
    """(training runs, training items per run): one run per rate; few-shot repeats the sweep per
    seed the protocol really runs (``fewshot_seeds``: one under the study's systematic sample, the
    paper profile's switch) on ``shots`` training images."""
    from radbench_core.protocols.segmentation import fewshot_seeds
    runs, train_items = len(c.hp["lrs"]), c.n["train"]
    if few_shot:
        shots = c.hp.get("shots")
        train_items = c.n["train"] if shots == "all" else min(float(shots), c.n["train"])
        runs *= len(fewshot_seeds(c.hp))
    return runs, train_items


_COSTS = {"live": _live_cost, "scratch": _scratch_cost, "seg": _decoder_cost}


def _counted_params(model_id: str) -> float:
    """Parameters of a full-size scratch model: stored (plan/counted.py), else counted on meta."""
    from radbench_core.plan.counted import SCRATCH_PARAMS
    if model_id in SCRATCH_PARAMS:
        return float(SCRATCH_PARAMS[model_id])
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
    lines.append("dataset sizes: each dataset's DatasetSpec.size (its loader's splits); slices per volume "
                 "and some split shares are estimates (the spec's note says which)")
    return "\n".join(lines)
