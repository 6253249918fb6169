"""The report's "Beyond the study" section (issue 24): the newer models beside the study's best.

Why apart from the study's tables: the study's tables and its Figure 1 stay as printed. This section
shows, per task and protocol, each model the study never ran (DINOv3, DINOv2 with registers, SigLIP,
RAD-DINO, BiomedCLIP, MedSigLIP, MedSAM) beside DINOv2 ViT-L/14 and ViT-g/14, with the difference to
ViT-g/14 on each dataset, and Figure 1's ranking recomputed over the extended model set (same rule,
``ranking.py``). Written as ``beyond_the_study.md`` and ``fig1_ranking_extended.csv`` when a run has
any of the new models.
"""

from __future__ import annotations

from typing import Iterable

from radbench_core.core.results import CellResult
from radbench_core.models.specs import FRONTIER, get_model
from radbench_core.report.frame import DATASET_ORDER, dataset_label, headline, model_label, order_key, variant_key
from radbench_core.report.ranking import (DEMO_TEXT, FIGURE1_MODELS, Figure1Ranking, figure1_cells, figure1_csv,
                                          rank_figure1)

STUDY_BEST = ("dinov2_vitl14", "dinov2_vitg14")
REFERENCE = "dinov2_vitg14"
EXTENDED_FIGURE1 = (*FIGURE1_MODELS, *FRONTIER)
SECTION_MODELS = (*FRONTIER, *STUDY_BEST)


def section_values(records: Iterable[CellResult]) -> dict[tuple[str, str], dict[tuple[str, str], float]]:
    """(task, protocol[@variant]) -> {(model, dataset): headline value} for the section's models."""
    out: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for rec in records:
        found = headline(rec) if rec.model in SECTION_MODELS else None
        if found is None:
            continue
        key = (rec.task, rec.protocol + (f"@{rec.variant}" if rec.variant else ""))
        out.setdefault(key, {})[(rec.model, rec.dataset)] = float(found[1].value)
    return out


def _protocol_order(key: tuple[str, str]) -> tuple:
    task, entry = key
    protocol, _, variant = entry.partition("@")
    return (task != "classification", protocol, variant_key(variant))


def _training(model: str) -> str:
    spec = get_model(model)
    return f"{spec.paradigm}, {spec.training_data}"


def section_table(values: dict[tuple[str, str], float]) -> str:
    """Markdown: a row per model (value, and its difference to ViT-g/14 where both exist)."""
    datasets = sorted({d for _, d in values}, key=order_key(DATASET_ORDER))
    models = sorted({m for m, _ in values}, key=order_key(SECTION_MODELS))
    head = "| model | training | " + " | ".join(dataset_label(d) for d in datasets) + " |"
    lines = [head, "|" + "---|" * (len(datasets) + 2)]
    for model in models:
        cells = []
        for dataset in datasets:
            value = values.get((model, dataset))
            ref = values.get((REFERENCE, dataset))
            if value is None:
                cells.append("—")
            elif ref is None or model == REFERENCE:
                cells.append(f"{value:.3f}")
            else:
                cells.append(f"{value:.3f} ({value - ref:+.3f})")
        study = " (study)" if model in STUDY_BEST else ""
        lines.append(f"| {model_label(model)}{study} | {_training(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extended_ranking(records: Iterable[CellResult]) -> Figure1Ranking:
    """Figure 1's rule over the study's six models plus the new ones."""
    return rank_figure1(figure1_cells(records, EXTENDED_FIGURE1), EXTENDED_FIGURE1)


def beyond_markdown(records: Iterable[CellResult]) -> tuple[str, str] | None:
    """(beyond_the_study.md, fig1_ranking_extended.csv), or None when no new model was run."""
    records = list(records)
    values = section_values(records)
    if not any(m in FRONTIER for table in values.values() for m, _ in table):
        return None
    demo = any(rec.is_demo for rec in records if rec.model in SECTION_MODELS)
    parts = ["# Beyond the study", ""]
    if demo:
        parts += [f"**{DEMO_TEXT}**", ""]
    parts += ["The models the study never ran, beside its best (DINOv2 ViT-L/14, ViT-g/14), on the same "
              "cells. In brackets: the difference to DINOv2 ViT-g/14 on that dataset (higher is better). "
              "RAD-DINO saw NIH and CheXpert images in pretraining: its numbers there are not a transfer "
              "result. No paired significance test is computed in this section yet.", ""]
    for key in sorted(values, key=_protocol_order):
        task, entry = key
        parts += [f"## {task.capitalize()}: {entry}", "", section_table(values[key]), ""]
    ranking = extended_ranking(records)
    parts += ["## Figure 1's ranking over the extended model set", "",
              "| model | classification rank | segmentation rank | datasets (cls / seg) |", "|---|---|---|---|"]
    for row in ranking.table.itertuples():
        parts.append(f"| {row.label} | {row.cls_rank:g} | {row.seg_rank:g} | "
                     f"{row.n_cls_datasets} / {row.n_seg_datasets} |")
    parts += ["", *(f"- {note}" for note in ranking.notes), ""]
    return "\n".join(parts), figure1_csv(ranking)
