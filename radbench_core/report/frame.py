"""Recorded cells -> pandas: the long results table and the one-row-per-cell headline view.

Everything in the report reads these two frames, so the choice of headline metric, the display
labels and the handling of duplicate cells (several shards of one grid) live here and nowhere else.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable

import pandas as pd

from radbench_core.core.results import CellResult, Metric

PUBLISHED_WEIGHTS = "published (Baharoon et al. 2023)"   # weights of records made from the study
HEADLINE_METRIC = {"classification": "auroc", "segmentation": "dice_jaccard"}
STUDY_METRIC = {"segmentation": "dice_jaccard_study"}   # what the study's code computed, if recorded
METRIC_LABEL = {"auroc": "AUROC", "dice_jaccard": "(Dice + Jaccard) / 2",
                "dice_jaccard_study": "(Dice + Jaccard) / 2 as the study computed it", "dice": "Dice",
                "jaccard": "Jaccard"}

# The study's display labels; radbench_core.models.specs.MODELS (spec.label) wins where it exists.
_MODEL_LABELS = {
    "dinov2_vits14": "DINOv2 ViT-S/14", "dinov2_vitb14": "DINOv2 ViT-B/14",
    "dinov2_vitl14": "DINOv2 ViT-L/14", "dinov2_vitg14": "DINOv2 ViT-g/14",
    "clip_vitl14": "CLIP ViT-L/14", "openclip_vith14": "OpenCLIP ViT-H/14",
    "mae_vitl16": "MAE ViT-L/16", "msn_vitl16": "MSN ViT-L/16", "sam_vitl16": "SAM ViT-L/16",
    "vit_l16_in21k": "ViT-L/16 (IN21k)", "densenet201": "DenseNet201", "resnet152": "ResNet152",
    "vgg19": "VGG19", "unet": "U-Net", "transunet": "TransUNet",
}
MODEL_ORDER = tuple(_MODEL_LABELS)

DATASET_LABELS = {
    "nih": "NIH", "chexpert": "CheXpert", "sarscov2": "SARS-CoV-2", "brain_tumor": "Brain tumor",
    "mc": "MC", "amos": "AMOS", "msd_spleen": "Spleen", "msd_hippocampus": "Hippocampus",
    "msd_heart": "Heart",
}
DATASET_ORDER = tuple(DATASET_LABELS)
PROTOCOL_LABELS = {
    "knn": "kNN", "linear": "Linear", "finetune": "Fine-tune", "lora": "LoRA", "bitfit": "BitFit",
    "fewshot": "Few-shot", "seg_linear": "Linear decoder", "seg_unet": "U-Net decoder",
    "seg_fewshot": "Few-shot", "scratch": "Scratch",
}

RESULT_COLUMNS = ("cell_id", "model", "dataset", "protocol", "variant", "task", "modality",
                  "metric", "value", "ci_low", "ci_high", "higher_is_better", "weights",
                  "params_trainable", "params_total", "wall_time_s", "seed", "device", "status")


def _registry_labels() -> dict[str, str]:
    """Labels from the model registry (built-in and user-registered models, read live so a model
    registered by a conftest hook is labelled too); the report never fails on it."""
    try:
        from radbench_core.models.specs import MODELS  # type: ignore[attr-defined]
        return {k: str(getattr(spec, "label")) for k, spec in dict(MODELS).items()
                if not callable(spec) and getattr(spec, "label", None)}
    except Exception:  # noqa: BLE001 - a broken or missing registry falls back to the study's labels
        return {}


def model_label(model: str) -> str:
    """The study's name for a model id, e.g. ``dinov2_vitl14`` -> ``DINOv2 ViT-L/14``."""
    return _registry_labels().get(model) or _MODEL_LABELS.get(model, model)


def dataset_label(dataset: str) -> str:
    """Short column label for a dataset id (``msd_spleen`` -> ``Spleen``); a user dataset's title."""
    if dataset in DATASET_LABELS:
        return DATASET_LABELS[dataset]
    try:
        from radbench_core.data.datasets import get_dataset
        return str(get_dataset(dataset).title or dataset)
    except Exception:  # noqa: BLE001 - the report never fails on a label
        return dataset


def order_key(order: tuple[str, ...]):
    """Sort key: the canonical order first, unknown ids after, alphabetically."""
    return lambda x: (order.index(x), "") if x in order else (len(order), x)


def variant_key(variant: str) -> tuple[int, float, str]:
    """Numeric variants ascending ("8" < "16"), then words ("all"), then ""."""
    try:
        return (0, float(variant), "")
    except ValueError:
        return (1 if variant else 2, 0.0, variant)


def merge_records(records: Iterable[CellResult]) -> list[CellResult]:
    """One record per cell_id: the first one given wins (pass the newest run first); warn on drops.

    Shards of one grid do not overlap, so a duplicate means two runs measured the same cell.
    """
    kept: dict[str, CellResult] = {}
    dropped: list[str] = []
    for rec in records:
        if rec.cell_id in kept:
            dropped.append(rec.cell_id)
        else:
            kept[rec.cell_id] = rec
    if dropped:
        warnings.warn(f"report: {len(dropped)} duplicate cell record(s) ignored, the first one given "
                      f"was kept: {', '.join(sorted(set(dropped)))}", stacklevel=2)
    return list(kept.values())


def headline(rec: CellResult) -> tuple[str, Metric] | None:
    """The metric a table shows for this cell; (Dice + Jaccard)/2 is derived if only its parts exist."""
    name = HEADLINE_METRIC.get(rec.task)
    if name is None:
        return None
    metric = rec.metrics.get(name)
    if metric is None and name == "dice_jaccard" and {"dice", "jaccard"} <= set(rec.metrics):
        metric = Metric((rec.metrics["dice"].value + rec.metrics["jaccard"].value) / 2)
    if metric is None or metric.value is None or not math.isfinite(metric.value):
        return None
    return name, metric


def records_frame(records: Iterable[CellResult]) -> pd.DataFrame:
    """One row per cell x metric (the columns of results.csv)."""
    rows = []
    for rec in records:
        for name, m in rec.metrics.items():
            rows.append({"cell_id": rec.cell_id, "model": rec.model, "dataset": rec.dataset,
                         "protocol": rec.protocol, "variant": rec.variant, "task": rec.task,
                         "modality": rec.modality, "metric": name, "value": m.value,
                         "ci_low": m.ci_low, "ci_high": m.ci_high,
                         "higher_is_better": m.higher_is_better, "weights": rec.weights,
                         "params_trainable": rec.params_trainable, "params_total": rec.params_total,
                         "wall_time_s": rec.wall_time_s, "seed": rec.seed, "device": rec.device,
                         "status": rec.status})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def headline_frame(records: Iterable[CellResult]) -> pd.DataFrame:
    """One row per cell that has its headline metric: what tables, ranking and bars read."""
    rows = []
    for rec in records:
        found = headline(rec)
        if found is None:
            continue
        name, m = found
        per_seed = rec.extra.get("per_seed") if isinstance(rec.extra, dict) else None
        study = rec.metrics.get(STUDY_METRIC.get(rec.task, ""))
        if study is not None and (study.value is None or not math.isfinite(study.value)):
            study = None
        rows.append({"cell_id": rec.cell_id, "model": rec.model, "dataset": rec.dataset,
                     "protocol": rec.protocol, "variant": rec.variant or "", "task": rec.task,
                     "modality": rec.modality, "metric": name, "value": float(m.value),
                     "ci_low": m.ci_low, "ci_high": m.ci_high,
                     "higher_is_better": bool(m.higher_is_better),
                     "params_trainable": rec.params_trainable, "params_total": rec.params_total,
                     "wall_time_s": rec.wall_time_s, "is_demo": rec.is_demo,
                     "per_seed": list(per_seed) if isinstance(per_seed, (list, tuple)) else None,
                     "study_value": float(study.value) if study else None,
                     "study_ci_low": study.ci_low if study else None,
                     "study_ci_high": study.ci_high if study else None,
                     "weights": rec.weights, "is_published": rec.weights == PUBLISHED_WEIGHTS})
    columns = ["cell_id", "model", "dataset", "protocol", "variant", "task", "modality", "metric",
               "value", "ci_low", "ci_high", "higher_is_better", "params_trainable", "params_total",
               "wall_time_s", "is_demo", "per_seed", "study_value", "study_ci_low", "study_ci_high",
               "weights", "is_published"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(records: Iterable[CellResult]) -> str:
    """A fixed-width terminal table: cell, headline metric, value, 95% CI, wall time."""
    records = list(records)
    head = ("cell", "metric", "value", "95% CI", "time")
    rows = []
    for rec in sorted(records, key=lambda r: r.cell_id):
        found = headline(rec)
        if found is None:
            rows.append((rec.cell_id, "—", "—", "—", f"{rec.wall_time_s:.1f}s"))
            continue
        name, m = found
        ci = (f"[{m.ci_low:.3f}, {m.ci_high:.3f}]"
              if m.ci_low is not None and m.ci_high is not None else "—")
        rows.append((rec.cell_id, name, f"{m.value:.3f}", ci, f"{rec.wall_time_s:.1f}s"))
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head))]
    align = ("<", "<", ">", ">", ">")

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    demo = sum(1 for r in records if r.is_demo)
    out = [line(head), rule, *(line(r) for r in rows)]
    if demo:
        out.append(f"{demo} cell(s) on random-init (demo) weights: these numbers say nothing "
                   "about the models")
    return "\n".join(out) + "\n"
