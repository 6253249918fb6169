"""The study's published numbers (Tables 3-9) as reference data, and records made from them.

Why: a run is only a reproduction if it can be compared, cell by cell, with what the study printed;
and the report's table layouts are only right if the study's own numbers, fed back in, come out as
the study's tables. ``published_tables.csv`` (shipped with the package) holds every printed number
once per table; this module maps each to our cell id and can write them as records
(``weights`` = :data:`PUBLISHED_WEIGHTS`, never mistaken for a run).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd

from radbench_core.core.errors import DatasetError
from radbench_core.report.frame import PUBLISHED_WEIGHTS
from radbench_core.core.results import CellResult, Metric

STUDY_SEG_METRIC = "dice_jaccard_study"      # the study's (Dice + Jaccard) / 2, pooled test slices
DATA_FILE = "published_tables.csv"

# (method, architecture as printed) -> our model id
MODEL_OF = {
    ("Supervised", "DenseNet201"): "densenet201", ("Supervised", "ResNet152"): "resnet152",
    ("Supervised", "VGG19"): "vgg19", ("Supervised", "ViT-L/16"): "vit_l16_in21k",
    ("DINOv2", "ViT-S/14"): "dinov2_vits14", ("DINOv2", "ViT-B/14"): "dinov2_vitb14",
    ("DINOv2", "ViT-L/14"): "dinov2_vitl14", ("DINOv2", "ViT-g/14"): "dinov2_vitg14",
    ("MAE", "ViT-L/16"): "mae_vitl16", ("MSN", "ViT-L/16"): "msn_vitl16",
    ("CLIP", "ViT-L/14"): "clip_vitl14", ("OpenCLIP", "ViT-H/14"): "openclip_vith14",
    ("SAM", "ViT-L/16"): "sam_vitl16", ("Scratch", "U-Net"): "unet",
    ("Scratch", "TransUnet"): "transunet",
}
DATASET_OF = {"braintumor": "brain_tumor"}   # the CSV's spelling -> our dataset id
MODALITY = {"nih": "xray", "chexpert": "xray", "sarscov2": "ct", "brain_tumor": "mri", "mc": "xray",
            "amos": "ct", "msd_spleen": "ct", "msd_hippocampus": "mri", "msd_heart": "mri"}
SEGMENTATION = ("mc", "amos", "msd_heart", "msd_hippocampus", "msd_spleen")


@dataclass(frozen=True)
class PublishedValue:
    table: int                  # 3..9
    model: str
    dataset: str
    protocol: str
    variant: str
    metric: str                 # "auroc" | "dice_jaccard_study"
    value: float

    @property
    def cell_id(self) -> str:
        base = f"{self.model}-{self.dataset}-{self.protocol}"
        return f"{base}@{self.variant}" if self.variant else base


def _where(line: int) -> str:
    return f"radbench_core/report/{DATA_FILE}:{line}"


def _cell_of(line: int, table: int, method: str, arch: str, protocol: str) -> tuple[str, str, str]:
    """(model, protocol, variant) of one printed number, following the study's table captions."""
    arch, _, size = arch.partition("@")
    model = MODEL_OF.get((method, arch))
    if model is None:
        raise DatasetError(_where(line), f"unknown method/architecture {method!r} {arch!r}",
                           "add it to radbench_core.report.published.MODEL_OF")
    if protocol == "seg":                    # Table 6: the 448 px cells (scratch models too)
        return model, "scratch" if method == "Scratch" else "seg_unet", "448"
    return model, protocol, size


@lru_cache(maxsize=1)
def published_values() -> tuple[PublishedValue, ...]:
    """Every printed number, in the CSV's order (a cell printed in two tables appears twice)."""
    text = resources.files("radbench_core.report").joinpath(DATA_FILE).read_text(encoding="utf-8")
    rows = [ln for ln in text.splitlines() if not ln.startswith("#")]
    out = []
    for line, row in enumerate(csv.DictReader(io.StringIO("\n".join(rows))), start=3):
        model, protocol, variant = _cell_of(line, int(row["table"].lstrip("T")), row["method"],
                                            row["arch"], row["protocol"])
        dataset = DATASET_OF.get(row["dataset"], row["dataset"])
        if dataset not in MODALITY:
            raise DatasetError(_where(line), f"unknown dataset {row['dataset']!r}",
                               "add it to radbench_core.report.published.MODALITY")
        metric = "auroc" if row["metric"] == "auroc" else STUDY_SEG_METRIC
        out.append(PublishedValue(int(row["table"].lstrip("T")), model, dataset, protocol, variant,
                                  metric, float(row["value"])))
    return tuple(out)


@lru_cache(maxsize=1)
def published_index() -> dict[str, float]:
    """cell id -> the study's value; a cell printed twice must carry one value."""
    index: dict[str, float] = {}
    for pv in published_values():
        if index.setdefault(pv.cell_id, pv.value) != pv.value:
            raise DatasetError(_where(0), f"{pv.cell_id} is printed with two values "
                               f"({index[pv.cell_id]} and {pv.value})", "correct the data file")
    return index


def is_published(weights: str) -> bool:
    return weights == PUBLISHED_WEIGHTS


def published_records(profile: str = "published") -> list[CellResult]:
    """One record per published cell: the study's value, no CI, weights = PUBLISHED_WEIGHTS.

    Segmentation records carry the value as ``dice_jaccard_study`` (what the study measured) and as
    ``dice_jaccard`` so every reader of the headline metric works on them.
    """
    first: dict[str, PublishedValue] = {}
    for pv in published_values():
        first.setdefault(pv.cell_id, pv)
    index = published_index()
    out = []
    for cell_id, pv in first.items():
        seg = pv.dataset in SEGMENTATION
        metrics = ({STUDY_SEG_METRIC: Metric(index[cell_id]), "dice_jaccard": Metric(index[cell_id])}
                   if seg else {"auroc": Metric(index[cell_id])})
        out.append(CellResult(cell_id=cell_id, model=pv.model, dataset=pv.dataset,
                              protocol=pv.protocol, variant=pv.variant,
                              task="segmentation" if seg else "classification",
                              modality=MODALITY[pv.dataset], profile=profile, metrics=metrics,
                              weights=PUBLISHED_WEIGHTS, device="none", seed=0,
                              dataset_provenance="Baharoon et al. 2023, arXiv 2312.02366, "
                                                 f"Table {pv.table}"))
    return out


def compare_to_published(hf: pd.DataFrame) -> pd.DataFrame:
    """Each run cell (not a published record, not a demo cell) that the study printed: ours vs theirs.

    Demo cells (random-init weights on phantoms) share the study's cell ids but are never compared:
    a demo value "inside the CI" of a published number would be a coincidence that looks like a
    reproduction.

    ``hf`` is :func:`radbench_core.report.frame.headline_frame`; for segmentation the study's metric
    (``study_value``) is compared when the record has it, else our headline (``metric`` says which).
    ``inside_ci`` is None when the cell has no bootstrap CI.
    """
    index = published_index()
    rows = []
    for rec in hf.to_dict("records"):
        if rec.get("is_published") or rec.get("is_demo") or rec["cell_id"] not in index:
            continue
        value, lo, hi, metric = _compared_value(rec)
        pub = index[rec["cell_id"]]
        inside = None if lo is None or hi is None else bool(lo <= pub <= hi)
        rows.append({"cell_id": rec["cell_id"], "metric": metric, "ours": value, "ci_low": lo,
                     "ci_high": hi, "published": pub, "delta": value - pub, "inside_ci": inside})
    return pd.DataFrame(rows, columns=["cell_id", "metric", "ours", "ci_low", "ci_high", "published",
                                       "delta", "inside_ci"])


def _finite(x) -> float | None:
    return None if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else float(x)


def _compared_value(rec: dict) -> tuple[float, float | None, float | None, str]:
    if rec["task"] == "segmentation" and _finite(rec.get("study_value")) is not None:
        return (float(rec["study_value"]), _finite(rec.get("study_ci_low")),
                _finite(rec.get("study_ci_high")), STUDY_SEG_METRIC)
    return float(rec["value"]), _finite(rec["ci_low"]), _finite(rec["ci_high"]), rec["metric"]
