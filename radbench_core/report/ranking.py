"""Figure 1's numbers: the six weakly-/self-supervised models ranked on classification and segmentation.

Models (paper 4.2, Figure 1): CLIP ViT-L/14, OpenCLIP ViT-H/14, MAE ViT-L/16, MSN ViT-L/16, DINOv2
ViT-L/14 and ViT-g/14. Supervised models are left out: the study compares them separately (T7, T8).

Cells compared, one per model and dataset:
- classification: the linear probe at the profile's classification size (variant "", 224 px in the
  paper profile, as the study), AUROC.
- segmentation: the U-Net decoder at 224 px, the one size at which the study ran all six (T5: only
  DINOv2 also ran at 448; ranking DINOv2 at 448 against the others at 224 would favour it). Where a
  dataset has no 224 px cell (the demo runs at 112), the size most of the six share, ties to the one
  nearest 224. Metric: ``dice_jaccard_study`` (the study's pooled (Dice + Jaccard) / 2) on a dataset
  where every compared cell carries it, else our ``dice_jaccard`` for the whole dataset (never mixed).

Scores (paper 4.2): on each dataset the M models score M (best) down to 1, ties sharing the mean
score; a model's task score is its mean over datasets; rank 1 = highest mean score, ties share the
mean rank.

Missing values: a dataset counts for a task only when every model ranked in that task has a value on
it. Ranked among fewer rivals, a score says more about who was missing than about the model (the
published tables give SARS-CoV-2 and Brain tumor only for DINOv2: ViT-L/14 would score last of two
there). When no dataset of a task is complete, each dataset's scores among the m models present are
scaled linearly onto 1..N (N = models ranked in the task) and averaged over the datasets a model has;
``rule`` says which of the two ran. ``n_cls_datasets`` / ``n_seg_datasets`` count the datasets behind
each rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from radbench_core.report.frame import DATASET_ORDER, headline, model_label, order_key, variant_key
from radbench_core.core.results import CellResult

FIGURE1_MODELS = ("clip_vitl14", "openclip_vith14", "mae_vitl16", "msn_vitl16", "dinov2_vitl14",
                  "dinov2_vitg14")
STUDY_SEG_SIZE = 224
STUDY_SEG_METRIC = "dice_jaccard_study"
CSV_COLUMNS = ["model", "label", "cls_rank", "seg_rank", "n_cls_datasets", "n_seg_datasets"]
RANK_COLUMNS = CSV_COLUMNS + ["cls_score", "seg_score", "is_demo"]
CELL_COLUMNS = ["model", "dataset", "task", "protocol", "variant", "metric", "value", "value_study",
                "higher_is_better", "is_demo"]
TASKS = (("classification", "cls"), ("segmentation", "seg"))


@dataclass
class Figure1Ranking:
    """The ranks, the cells behind them and, per task, the rule that ran and the datasets used."""
    table: pd.DataFrame                                   # RANK_COLUMNS, one row per ranked model
    scores: pd.DataFrame                                  # per compared cell: its dataset score
    rule: dict[str, str] = field(default_factory=dict)    # task -> "complete datasets" | "scaled"
    notes: list[str] = field(default_factory=list)        # datasets used / left out, metric, size
    present: dict[str, set[str]] = field(default_factory=dict)  # model -> tasks with any candidate cell

    @property
    def is_demo(self) -> bool:
        return bool(self.scores["is_demo"].any()) if len(self.scores) else False


def figure1_cells(records: Iterable[CellResult], models: tuple[str, ...] = FIGURE1_MODELS) -> pd.DataFrame:
    """Candidate cells of the six models (or ``models``: the extended set of the "Beyond the study"
    section): linear (default size) and seg_unet (every size)."""
    rows = []
    for rec in records:
        linear = rec.protocol == "linear" and not rec.variant
        if rec.model not in models or not (linear or rec.protocol == "seg_unet"):
            continue
        found = headline(rec)
        if found is None:
            continue
        name, metric = found
        study = rec.metrics.get(STUDY_SEG_METRIC) if rec.task == "segmentation" else None
        study_value = study.value if study is not None and study.value is not None else math.nan
        rows.append({"model": rec.model, "dataset": rec.dataset, "task": rec.task,
                     "protocol": rec.protocol, "variant": rec.variant or "", "metric": name,
                     "value": float(metric.value), "value_study": float(study_value),
                     "higher_is_better": bool(metric.higher_is_better), "is_demo": rec.is_demo})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _with_defaults(cells: pd.DataFrame) -> pd.DataFrame:
    defaults = {"variant": "", "metric": "", "value_study": math.nan, "higher_is_better": True,
                "is_demo": False}
    cells = cells.copy()
    for column, value in defaults.items():
        if column not in cells:
            cells[column] = value
    cells["variant"] = cells["variant"].fillna("").astype(str)
    return cells


def _seg_size(group: pd.DataFrame) -> str:
    """224 px when the study's size is there, else the size most models share (ties: nearest 224)."""
    counts = group.groupby("variant")["model"].nunique()
    if str(STUDY_SEG_SIZE) in counts.index:
        return str(STUDY_SEG_SIZE)

    def distance(v: str) -> float:
        key = variant_key(v)
        return abs(key[1] - STUDY_SEG_SIZE) if key[0] == 0 else math.inf
    return max(counts.index, key=lambda v: (counts[v], -distance(v), variant_key(v)))


def compared_cells(cells: pd.DataFrame, models: tuple[str, ...] = FIGURE1_MODELS
                   ) -> tuple[pd.DataFrame, list[str]]:
    """One cell per model and dataset: the protocol, size and metric the figure compares."""
    cells = _with_defaults(cells)
    cells = cells[cells["model"].isin(models)]
    cls = cells[(cells["task"] == "classification") & (cells["protocol"] == "linear")
                & (cells["variant"] == "")]
    parts, notes = [cls], []
    seg = cells[(cells["task"] == "segmentation") & (cells["protocol"] == "seg_unet")]
    for dataset, group in sorted(seg.groupby("dataset"), key=lambda kv: order_key(DATASET_ORDER)(kv[0])):
        size = _seg_size(group)
        group = group[group["variant"] == size].copy()
        study = group["value_study"].notna().all()
        if study:
            group["value"], group["metric"] = group["value_study"], STUDY_SEG_METRIC
        notes.append(f"{dataset}: U-Net decoder at {size} px, "
                     f"{STUDY_SEG_METRIC if study else 'dice_jaccard (no study metric on every cell)'}")
        parts.append(group)
    out = pd.concat(parts, ignore_index=True).drop_duplicates(["model", "dataset"])
    return out, notes


def _scores(group: pd.DataFrame) -> np.ndarray:
    values = group["value"].to_numpy(dtype=float)
    signed = values if bool(group["higher_is_better"].iloc[0]) else -values
    return rankdata(signed, method="average")


def _task_scores(cells: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str, list[str]]:
    """Per-cell scores of one task, the rule used and notes on the datasets left out."""
    mine = cells[cells["task"] == task]
    models = set(mine["model"])
    complete = {d for d, g in mine.groupby("dataset") if set(g["model"]) == models}
    notes, out = [], []
    rule = "complete datasets" if complete else "scaled"
    for dataset, group in mine.groupby("dataset"):
        if complete and dataset not in complete:
            notes.append(f"{task}: {dataset} left out ({group['model'].nunique()} of {len(models)} "
                         "models have a value)")
            continue
        score = _scores(group)
        m, n = len(group), len(models)
        if not complete:
            score = np.full(m, (n + 1) / 2) if m == 1 else 1 + (n - 1) * (score - 1) / (m - 1)
        out.append(group.assign(score=score))
    frame = pd.concat(out, ignore_index=True) if out else mine.assign(score=np.nan).iloc[0:0]
    return frame, rule, notes


def rank_figure1(cells: pd.DataFrame, models: tuple[str, ...] = FIGURE1_MODELS) -> Figure1Ranking:
    """Rank the six models (or ``models``) per task from candidate cells (``figure1_cells`` or a
    hand-built frame)."""
    compared, notes = compared_cells(cells, models)
    order = models
    models = sorted(set(compared["model"]), key=order_key(order))
    table = pd.DataFrame({"model": models, "label": [model_label(m) for m in models]})
    rules, all_scores = {}, []
    for task, short in TASKS:
        scores, rule, left_out = _task_scores(compared, task)
        notes += left_out
        if len(scores):
            rules[task] = rule
        all_scores.append(scores)
        mean = scores.groupby("model")["score"].mean()
        table[f"{short}_score"] = table["model"].map(mean).astype(float)
        table[f"n_{short}_datasets"] = table["model"].map(scores.groupby("model").size()) \
            .fillna(0).astype(int)
        rank = np.full(len(table), np.nan)
        present = table[f"{short}_score"].notna().to_numpy()
        if present.any():
            rank[present] = rankdata(-table.loc[present, f"{short}_score"].to_numpy(), method="average")
        table[f"{short}_rank"] = rank
    demo = compared.groupby("model")["is_demo"].any()
    table["is_demo"] = table["model"].map(demo).fillna(False).astype(bool)
    scores = pd.concat([s for s in all_scores if len(s)], ignore_index=True) if any(
        len(s) for s in all_scores) else compared.assign(score=np.nan).iloc[0:0]
    present = {m: set(g["task"]) for m, g in _with_defaults(cells).groupby("model")} if len(cells) else {}
    return Figure1Ranking(table[RANK_COLUMNS], scores, rules, notes, present)


def rank_models(records: Iterable[CellResult]) -> Figure1Ranking:
    """Figure 1's ranking of a run's records."""
    return rank_figure1(figure1_cells(records))


RULE_TEXT = ("Ranks: on each dataset the M models score M (best) .. 1; mean over datasets; rank 1 = "
             "highest mean. Classification: linear probe, AUROC. Segmentation: U-Net decoder at 224 px "
             "(the size the study ran all six at; without 224 px cells, the size most models share), "
             "(Dice + Jaccard) / 2 as the study pooled it where recorded. A dataset counts only when "
             "every ranked model has a value on it (if none does: ranks among the models present, "
             "scaled to 1..N).")
DEMO_TEXT = "DEMO — random-init weights, not a real result"


def figure1_csv(ranking: Figure1Ranking) -> str:
    """fig1_ranking.csv: '#' header lines (rule, rule per task, notes, demo) then the CSV_COLUMNS."""
    lines = [f"# Figure 1 ranking. {RULE_TEXT}"]
    if ranking.is_demo:
        lines.append(f"# {DEMO_TEXT}")
    lines += [f"# {task}: {rule}" for task, rule in ranking.rule.items()]
    lines += [f"# {note}" for note in ranking.notes]
    body = ranking.table[CSV_COLUMNS].to_csv(index=False, lineterminator="\n")
    return "\n".join(lines) + "\n" + body
