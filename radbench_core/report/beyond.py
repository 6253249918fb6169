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
from radbench_core.eval.significance import tied_with_best
from radbench_core.eval.weighted_metrics import METRIC_KIND
from radbench_core.models.specs import FRONTIER, get_model
from radbench_core.report.frame import DATASET_ORDER, dataset_label, headline, model_label, order_key, variant_key
from radbench_core.report.ranking import (DEMO_TEXT, FIGURE1_MODELS, Figure1Ranking, figure1_cells, figure1_csv,
                                          rank_figure1)

STUDY_BEST = ("dinov2_vitl14", "dinov2_vitg14")
REFERENCE = "dinov2_vitg14"
EXTENDED_FIGURE1 = (*FIGURE1_MODELS, *FRONTIER)
SECTION_MODELS = (*FRONTIER, *STUDY_BEST)


Entry = tuple[float, str, str]      # headline value, cell id, metric name


def section_values(records: Iterable[CellResult]) -> dict[tuple[str, str], dict[tuple[str, str], Entry]]:
    """(task, protocol[@variant]) -> {(model, dataset): (value, cell id, metric)} for the section's models."""
    out: dict[tuple[str, str], dict[tuple[str, str], Entry]] = {}
    for rec in records:
        found = headline(rec) if rec.model in SECTION_MODELS else None
        if found is None:
            continue
        key = (rec.task, rec.protocol + (f"@{rec.variant}" if rec.variant else ""))
        out.setdefault(key, {})[(rec.model, rec.dataset)] = (float(found[1].value), rec.cell_id, found[0])
    return out


def _protocol_order(key: tuple[str, str]) -> tuple:
    task, entry = key
    protocol, _, variant = entry.partition("@")
    return (task != "classification", protocol, variant_key(variant))


def _training(model: str) -> str:
    spec = get_model(model)
    return f"{spec.paradigm}, {spec.training_data}"


def paired_vs_reference(values: dict[tuple[str, str], Entry], predictions, resamples: int
                        ) -> dict[tuple[str, str], float]:
    """(model, dataset) -> Holm-adjusted p of the paired bootstrap against ViT-g/14 on that dataset
    (the family: every model of this table on the dataset); only cells whose predictions were saved."""
    out: dict[tuple[str, str], float] = {}
    for dataset in {d for _, d in values}:
        ref = values.get((REFERENCE, dataset))
        if not predictions or ref is None or ref[2] not in METRIC_KIND or predictions.get(ref[1]) is None:
            continue
        loaded = {ref[1]: predictions.get(ref[1])}
        owner = {}
        for (model, d), (_, cell_id, metric) in values.items():
            if d == dataset and model != REFERENCE and metric == ref[2] and predictions.get(cell_id) is not None:
                loaded[cell_id], owner[cell_id] = predictions.get(cell_id), model
        for cell_id, p in tied_with_best(ref[1], loaded, ref[2], resamples=resamples).items():
            out[(owner[cell_id], dataset)] = p
    return out


def section_table(values: dict[tuple[str, str], Entry], p_values: dict[tuple[str, str], float] | None = None
                  ) -> str:
    """Markdown: a row per model (value, its difference to ViT-g/14, and the paired test's Holm p)."""
    p_values = p_values or {}
    datasets = sorted({d for _, d in values}, key=order_key(DATASET_ORDER))
    models = sorted({m for m, _ in values}, key=order_key(SECTION_MODELS))
    head = "| model | training | " + " | ".join(dataset_label(d) for d in datasets) + " |"
    lines = [head, "|" + "---|" * (len(datasets) + 2)]
    for model in models:
        cells = []
        for dataset in datasets:
            entry, ref = values.get((model, dataset)), values.get((REFERENCE, dataset))
            p = p_values.get((model, dataset))
            if entry is None:
                cells.append("—")
            elif ref is None or model == REFERENCE:
                cells.append(f"{entry[0]:.3f}")
            else:
                test = "" if p is None else f", p={p:.3g}" + ("*" if p < 0.05 else "")
                cells.append(f"{entry[0]:.3f} ({entry[0] - ref[0]:+.3f}{test})")
        study = " (study)" if model in STUDY_BEST else ""
        lines.append(f"| {model_label(model)}{study} | {_training(model)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extended_ranking(records: Iterable[CellResult]) -> Figure1Ranking:
    """Figure 1's rule over the study's six models plus the new ones."""
    return rank_figure1(figure1_cells(records, EXTENDED_FIGURE1), EXTENDED_FIGURE1)


def beyond_markdown(records: Iterable[CellResult], predictions=None, *, resamples: int = 1000
                    ) -> tuple[str, str] | None:
    """(beyond_the_study.md, fig1_ranking_extended.csv), or None when no new model was run.

    ``predictions`` (cell id -> Predictions, e.g. ``marks.run_predictions``) enables the paired test."""
    records = list(records)
    values = section_values(records)
    if not any(m in FRONTIER for table in values.values() for m, _ in table):
        return None
    demo = any(rec.is_demo for rec in records if rec.model in SECTION_MODELS)
    parts = ["# Beyond the study", ""]
    if demo:
        parts += [f"**{DEMO_TEXT}**", ""]
    parts += ["The models the study never ran, beside its best (DINOv2 ViT-L/14, ViT-g/14), on the same "
              "cells. In brackets: the difference to DINOv2 ViT-g/14 on that dataset (higher is better) and, "
              "where both cells saved predictions, the paired bootstrap p against it (Holm-corrected over "
              "the models of the table on that dataset; * below 0.05). RAD-DINO saw NIH and CheXpert "
              "images in pretraining: its numbers there are not a transfer result.", ""]
    for key in sorted(values, key=_protocol_order):
        task, entry = key
        p_values = paired_vs_reference(values[key], predictions, resamples)
        parts += [f"## {task.capitalize()}: {entry}", "", section_table(values[key], p_values), ""]
    ranking = extended_ranking(records)
    parts += ["## Figure 1's ranking over the extended model set", "",
              "| model | classification rank | segmentation rank | datasets (cls / seg) |", "|---|---|---|---|"]
    for row in ranking.table.itertuples():
        parts.append(f"| {row.label} | {row.cls_rank:g} | {row.seg_rank:g} | "
                     f"{row.n_cls_datasets} / {row.n_seg_datasets} |")
    parts += ["", *(f"- {note}" for note in ranking.notes), ""]
    return "\n".join(parts), figure1_csv(ranking)
